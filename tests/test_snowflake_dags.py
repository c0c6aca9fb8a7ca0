"""The same DAGs publish to Snowflake (the fakesnow server over HTTP) when the ``warehouse``
connection is of type snowflake, and the rows are those PostgreSQL gets from the same inputs.

The module's fixture generates one app database and one landing zone, then runs
``hourly_incremental_sync``, ``daily_etl`` and ``data_quality_check`` through ``dag.test``
twice with no DAG code changed: into a fresh PostgreSQL database, then into a fresh fakesnow
database. Where the fakesnow server differs from Snowflake, the SQL or the test says so
(the quality reconciliation rounds its sums to cents: fakesnow sums NUMBER columns as DOUBLE).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
import redis

from acme_localdev.recorder import HttpRecorder
from acme_localdev.runs import run_in_process
from acme_localdev.warehouse_compare import (
    DERIVED,
    PUBLISHED,
    TableDigest,
    business_columns,
    compare,
    fakesnow_connection,
    live_cache,
    postgres_connection,
    published_rows,
)
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse_hooks import warehouse_hook
from acme_sample_data.build import build
from acme_sample_data.fx import FxServer
from acme_sample_data.generator import GeneratorConfig
from conftest import REDIS_URL, pipeline_environment, run_dag, scratch_databases, seed_the_week_before

pytestmark = pytest.mark.integration

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=3, scale=0.3, bad_share=0.01, seed=11)
DAYS = [d.isoformat() for d in CONFIG.day_list()]
CATCH_UP = {"partition": "2025-01-01T00:00", "partition_end": "2026-11-06T00:00"}  # orders change for 30 h
FAIL_DAY = date(2026, 10, 5)  # nothing was loaded for it
WEEK = date(2026, 10, 26)  # the ISO week that ends with DAYS[0], a Sunday
# after the sync, daily_etl and data_quality_check, on either warehouse: the DAGs behind the gate and the
# frequent ones, each for one partition of the generated days
ANALYTICS = (
    ("feature_engineering", {"partition": DAYS[2]}),  # after DAYS[0] and DAYS[1] (the fixture runs them)
    # with a churn horizon of 1 day (CHURN_HORIZON_DAYS), DAYS[0] and DAYS[1] are labelled: it trains and registers
    ("ml_training", {"partition": DAYS[2]}),
    ("daily_reports", {"partition": DAYS[1]}),
    ("weekly_aggregation", {"partition": WEEK.isoformat()}),
    ("anomaly_detection", {"partition": f"{DAYS[1]}T12:30"}),
    ("cache_refresh", {"partition": f"{DAYS[1]}T23:45"}),
)
ARCHIVED_TABLES = ("core.fact_payments", "core.fact_events", "core.fact_pos_sales")
# data_archival last: with hot_retention_days 0, its run for DAYS[1] moves DAYS[0] of every fact table to cold
# storage; the fixture then restores each day, so the comparison covers the restored rows
ARCHIVAL = ("data_archival", {"partition": DAYS[1]})
CHURN_HORIZON_DAYS = "1"


@dataclass
class Warehouses:
    pg_dsn: str
    snowflake: dict  # connect() kwargs of the fakesnow database
    dagbag: Any
    monkeypatch: pytest.MonkeyPatch
    comparison: list[tuple[str, TableDigest, TableDigest]]
    analytics: dict[str, dict[str, str]]  # warehouse name -> dag_id -> run state
    reports: dict[str, bytes]  # warehouse name -> the day's report.csv
    caches: dict[str, dict[str, Any]]  # warehouse name -> the live cache version's keys and values
    archival: dict[str, dict[str, Any]]  # warehouse name -> what data_archival and the restores did

    def snow(self) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(**self.snowflake)

    def snowflake_state(self) -> dict[str, TableDigest]:
        """Digests of every published table (and the rejects) on Snowflake, columns as PostgreSQL names them."""
        import psycopg2

        pg, snow = psycopg2.connect(self.pg_dsn), self.snow()
        try:
            selects = {t: f"{', '.join(business_columns(pg, t))} FROM {t}" for t in PUBLISHED}
            selects["ops.rejected_rows"] = "source, partition, locator, reason FROM ops.rejected_rows"
            return {t: published_rows(snow, s) for t, s in selects.items()}
        finally:
            pg.close()
            snow.close()

    def snowflake_query(self, statement: str, params: tuple = ()) -> list[tuple]:
        conn = self.snow()
        try:
            cur = conn.cursor()
            cur.execute(statement, params)
            return cur.fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, fakesnow_server, airflow_db, dagbag):
    import psycopg2
    import snowflake.connector

    database = f"ACME_{uuid.uuid4().hex[:8].upper()}"
    snowflake_json = fakesnow_connection(fakesnow_server, database)
    with (
        scratch_databases() as make,
        pytest.MonkeyPatch.context() as mp,
        HttpRecorder() as slack,
        FxServer(CONFIG.day_list()) as fx,
    ):
        app_dsn, pg_dsn = make(), make()
        landing = tmp_path_factory.mktemp("snowflake-dags") / "landing"
        build(CONFIG, landing, app_dsn)
        for name, value in pipeline_environment(app_dsn, snowflake_json, fx.url, slack.url, landing).items():
            mp.setenv(name, value)
        mp.setenv("AIRFLOW_CONN_SLACK_REPORTS", os.environ["AIRFLOW_CONN_SLACK_ALERTS"])
        mp.setenv("AIRFLOW_CONN_REDIS_CACHE", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 6379}))
        mp.setenv("AIRFLOW_VAR_CHURN_HORIZON_DAYS", CHURN_HORIZON_DAYS)
        analytics, reports, caches, archival = {}, {}, {}, {}
        for name, connection in (("postgres", postgres_connection(pg_dsn)), ("snowflake", snowflake_json)):
            mp.setenv("AIRFLOW_CONN_WAREHOUSE", connection)
            artifacts = landing.parent / name / "artifacts"
            mp.setenv("AIRFLOW_VAR_ARTIFACTS_ROOT", f"file://{artifacts}")
            mp.setenv("AIRFLOW_VAR_CACHE_KEY_PREFIX", prefix := f"test:{uuid.uuid4().hex[:8]}:{name}")
            hook = warehouse_hook("warehouse")
            upgrade(hook)  # the setup step, on either warehouse
            run_dag(dagbag, "hourly_incremental_sync", **CATCH_UP)
            for day in DAYS:
                run_dag(dagbag, "daily_etl", partition=day)
            for day in DAYS:  # daily_etl's trigger of it stays queued under dag.test
                run_dag(dagbag, "data_quality_check", partition=day)
            seed_the_week_before(hook, date.fromisoformat(DAYS[0]))  # WEEK ends with DAYS[0]
            for day in DAYS[:-1]:  # the features ml_training learns from; ANALYTICS runs the last day's
                run_dag(dagbag, "feature_engineering", partition=day)
            analytics[name] = {
                dag_id: str(run_in_process(dagbag.dags[dag_id], conf).state) for dag_id, conf in ANALYTICS
            }
            reports[name] = (artifacts / "reports" / f"dt={DAYS[1]}" / "report.csv").read_bytes()
            caches[name] = live_cache(redis.Redis.from_url(REDIS_URL), prefix)
            archival[name] = archive_and_restore(hook, landing.parent / name / "cold", dagbag)
        snow_kwargs = {**fakesnow_server, "database": database}
        pg, snow = psycopg2.connect(pg_dsn), snowflake.connector.connect(**snow_kwargs)
        try:
            comparison = compare(pg, snow)
        finally:
            pg.close()
            snow.close()
        yield Warehouses(pg_dsn, snow_kwargs, dagbag, mp, comparison, analytics, reports, caches, archival)


def archive_and_restore(hook: Any, cold: Any, dagbag: Any) -> dict[str, Any]:
    """data_archival's run (ARCHIVAL) into the folder ``cold``, then ``python -m acme_pipelines.archive restore``'s
    function for every day it archived: the run's state, the day's rows and digest before, in the manifest, after
    the archival and after the restore, per table."""
    from acme_localdev.warehouse_compare import table_digest
    from acme_pipelines import archive

    day = date.fromisoformat(DAYS[0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_VAR_COLD_STORAGE_ROOT", f"file://{cold}")
        mp.setenv("AIRFLOW_VAR_HOT_RETENTION_DAYS", "0")
        with hook.scoped_connection() as conn:
            before = {t: table_digest(conn, t, f"dt = '{day}'") for t in ARCHIVED_TABLES}
        state = str(run_in_process(dagbag.dags[ARCHIVAL[0]], ARCHIVAL[1]).state)
    with hook.scoped_connection() as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT table_name, partition, row_count, checksum, deleted_from_warehouse_at IS NOT NULL "
            "FROM ops.archive_manifest ORDER BY 1, 2"
        )
        manifest = [tuple(row) for row in cur.fetchall()]
        left = {t: table_digest(conn, t, f"dt = '{day}'").rows for t in ARCHIVED_TABLES}
    restored = {t: archive.restore_partition(hook, t, day) for t in ARCHIVED_TABLES}
    with hook.scoped_connection() as conn:
        after = {t: table_digest(conn, t, f"dt = '{day}'") for t in ARCHIVED_TABLES}
    files = sorted(str(p.relative_to(cold)) for p in cold.rglob("*.parquet"))
    return {"state": state, "before": before, "manifest": manifest, "left": left, "restored": restored,
            "after": after, "files": files}  # fmt: skip


def test_snowflake_gets_the_same_rows_as_postgres(warehouses):
    by_table = {table: (pg, snow) for table, pg, snow in warehouses.comparison}
    assert set(by_table) == {*PUBLISHED, *DERIVED, "ops.load_audit", "ops.rejected_rows", "ops.quality_results",
                             "ops.quality_gate", "ops.archive_manifest", "ml.model_registry",
                             "ops.anomalies"}  # fmt: skip
    for table, (pg, snow) in by_table.items():
        assert (table, snow.rows, snow.digest) == (table, pg.rows, pg.digest)
        assert pg.rows > 0, f"{table} is empty: the comparison would prove nothing"
    # the inputs exercise the contract: rejects, exact duplicates and every landing day
    [(rejected, duplicate)] = warehouses.snowflake_query(
        "SELECT SUM(rows_rejected), SUM(rows_duplicate) FROM ops.load_audit WHERE source LIKE 'landing:%'"
    )
    assert rejected > 0
    assert duplicate > 0
    assert by_table["marts.daily_revenue"][1].rows == len(DAYS) + 6  # and the rest of WEEK
    # data_quality_check passed each day on both warehouses, check by check
    assert warehouses.snowflake_query("SELECT dt, status FROM ops.quality_gate ORDER BY dt") == [
        (date.fromisoformat(day), "passed") for day in DAYS
    ]
    [(pos_days,)] = warehouses.snowflake_query("SELECT COUNT(DISTINCT dt) FROM core.fact_pos_sales")
    assert pos_days == len(DAYS)


def test_reruns_on_snowflake_change_nothing(warehouses):
    before = warehouses.snowflake_state()
    run_dag(warehouses.dagbag, "daily_etl", partition=DAYS[0])
    # an overlapping window, then the same window again
    for _ in range(2):
        run_dag(
            warehouses.dagbag, "hourly_incremental_sync", partition="2026-11-01T00:00", partition_end="2026-11-03T00:00"
        )
    after = warehouses.snowflake_state()
    assert after == before
    for table, digest in after.items():
        if table != "ops.rejected_rows":
            assert digest.distinct_rows == digest.rows, f"{table} has duplicate rows"
    [(keys, rows)] = warehouses.snowflake_query("SELECT COUNT(DISTINCT payment_id), COUNT(*) FROM core.fact_payments")
    assert keys == rows


def test_a_load_over_the_reject_ratio_publishes_nothing_on_snowflake(warehouses):
    before = warehouses.snowflake_state()
    warehouses.monkeypatch.setenv("AIRFLOW_VAR_MAX_REJECT_RATIO", "0.0001")
    try:
        dag_run = run_dag(warehouses.dagbag, "daily_etl", expect="failed", partition=DAYS[1])
    finally:
        warehouses.monkeypatch.setenv("AIRFLOW_VAR_MAX_REJECT_RATIO", "0.05")
    # refused for good: failed on its first try, not up for retry (a retry reads the same files)
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}
    refused = {source for (source,) in warehouses.snowflake_query(
        "SELECT source FROM ops.load_audit WHERE run_id = %s AND status = 'failed'", (dag_run.run_id,)
    )}  # fmt: skip
    assert refused == {"landing:payments", "landing:events", "landing:pos"}  # the day's files have rejects > 0.01%
    for source in refused:
        assert tries[f"load_{source.split(':')[1]}"] == ("failed", 1), tries
    after = warehouses.snowflake_state()
    assert {t: after[t] for t in PUBLISHED} == {t: before[t] for t in PUBLISHED}
    failed = warehouses.snowflake_query(
        "SELECT source, error FROM ops.load_audit WHERE run_id = %s AND status = 'failed'", (dag_run.run_id,)
    )
    assert failed
    assert all("max_reject_ratio" in error for _, error in failed)


def test_a_load_that_fails_after_staging_or_before_commit_changes_nothing_and_leaves_no_staging(warehouses):
    from airflow.sdk import ObjectStoragePath

    from acme_pipelines.accounting import AuditEntry
    from acme_pipelines.contract import SOURCES
    from acme_pipelines.snowflake_loads import load_partition
    from acme_pipelines.warehouse_hooks import warehouse_hook

    hook = warehouse_hook("warehouse")
    assert hook.backend == "snowflake"
    spec = SOURCES["payments"]
    root = ObjectStoragePath(os.environ["AIRFLOW_VAR_LANDING_ROOT"])
    day = date.fromisoformat(DAYS[0])

    def load(fail: str = ""):
        audit = AuditEntry("test", "load", f"manual__{uuid.uuid4().hex}", "landing:payments", spec.target, DAYS[0],
                           datetime.now(UTC))  # fmt: skip
        return load_partition(hook, spec, root, day, audit, max_reject_ratio=0.05, batch_rows=100,
                              fail_after_staging=fail == "after_staging",
                              fail_before_commit=fail == "before_commit")  # fmt: skip

    state = warehouses.snowflake_state()
    before, rejects_before = state["core.fact_payments"], state["ops.rejected_rows"]
    with pytest.raises(RuntimeError, match="injected failure after staging"):
        load(fail="after_staging")
    assert warehouses.snowflake_state()["core.fact_payments"] == before
    # inside the publish transaction, after the day and its rejects were deleted and the new rows inserted
    with pytest.raises(RuntimeError, match="injected failure before commit"):
        load(fail="before_commit")
    state = warehouses.snowflake_state()
    assert (state["core.fact_payments"], state["ops.rejected_rows"]) == (before, rejects_before)
    leftovers = warehouses.snowflake_query(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name LIKE 'ACME_STAGE%'"
    )
    assert leftovers == []
    result = load()  # the retry
    [(published_that_day,)] = warehouses.snowflake_query(
        "SELECT COUNT(*) FROM core.fact_payments WHERE dt = %s", (DAYS[0],)
    )
    assert result.counts.rows_loaded == published_that_day > 0
    assert warehouses.snowflake_state()["core.fact_payments"] == before


def test_a_day_that_fails_its_checks_fails_the_gate_and_the_dags_behind_it_on_snowflake(warehouses):
    from acme_pipelines.quality import days_passed, gate_status

    dag_run = run_dag(warehouses.dagbag, "data_quality_check", expect="failed", partition=FAIL_DAY.isoformat())
    tries = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert tries["publish_gate"] == "failed"
    assert tries["check_payments_table"] == "failed"  # nothing was loaded for FAIL_DAY: has_rows fails
    hook = warehouse_hook("warehouse")
    status, failed = gate_status(hook, FAIL_DAY)
    assert status == "failed"
    assert "core.fact_payments:check_payments_table" in failed, failed
    assert days_passed(hook, [FAIL_DAY, *map(date.fromisoformat, DAYS)]) == set(map(date.fromisoformat, DAYS))
    # the gate's sensor reads the failed gate and refuses the day at once
    behind = run_dag(warehouses.dagbag, "feature_engineering", expect="failed", partition=FAIL_DAY.isoformat())
    assert {ti.task_id: ti.state for ti in behind.get_task_instances()}["wait_for_quality"] == "failed"


def test_the_dags_behind_the_gate_and_the_frequent_ones_run_alike_on_snowflake(warehouses):
    expected = {dag_id: "success" for dag_id, _ in ANALYTICS}
    assert warehouses.analytics == {"postgres": expected, "snowflake": expected}
    # their tables are in the comparison above; the report file and the cache are compared here
    assert warehouses.reports["snowflake"] == warehouses.reports["postgres"]
    assert len(warehouses.reports["postgres"].splitlines()) > 5
    postgres, snowflake = warehouses.caches["postgres"], warehouses.caches["snowflake"]
    assert sum(key.startswith("customer:") for key in postgres) > 10
    assert snowflake == postgres


def test_data_archival_archives_and_restores_a_day_alike_on_snowflake(warehouses):
    """data_archival moves DAYS[0] of each fact table to Parquet and deletes it, on either warehouse; the restore
    puts the same rows back. The manifests agree but for the checksums: a file holds the rows' _run_id and
    _loaded_at too, which differ by run (and fact_events' JSON text as each database writes it)."""
    pg, snow = warehouses.archival["postgres"], warehouses.archival["snowflake"]
    day = date.fromisoformat(DAYS[0])
    for side in (pg, snow):
        assert side["state"] == "success"
        assert side["files"] == [f"{t}/dt={DAYS[0]}/part-000.parquet" for t in sorted(ARCHIVED_TABLES)]
        assert side["left"] == dict.fromkeys(ARCHIVED_TABLES, 0)  # deleted from the warehouse
        assert [(t, d, deleted) for t, d, _, _, deleted in side["manifest"]] == [
            (t, day, True) for t in sorted(ARCHIVED_TABLES)
        ]
        for table in ARCHIVED_TABLES:
            assert side["before"][table].rows > 100
            assert side["restored"][table] == side["before"][table].rows
            assert side["after"][table] == side["before"][table]  # the same rows back
    assert {t: r for t, _, r, _, _ in snow["manifest"]} == {t: r for t, _, r, _, _ in pg["manifest"]}
    assert snow["after"] == pg["after"]  # the business columns of the restored days


def test_the_model_registry_keeps_one_champion_on_snowflake(warehouses):
    """The registry's writes beyond ml_training's one run (a first model, compared with no champion), directly on
    the fakesnow warehouse with a model trained on generated rows: a promotion leaves one champion (the DAG's
    model is demoted), a rerun of a version updates its row."""
    import numpy as np

    from acme_pipelines import churn_model as cm

    rng = np.random.default_rng(3)
    dates = np.repeat(np.arange("2026-10-01", "2026-10-09", dtype="datetime64[D]"), 40)
    y = np.tile([True, False], len(dates) // 2)
    x = rng.normal(size=(len(dates), len(cm.FEATURES))) + y[:, None]
    trained = cm.train(cm.time_split(cm.Dataset(dates, x, y)), seed=7)
    hook = warehouse_hook("warehouse")
    assert hook.backend == "snowflake"

    def register(version: str, run_id: str, champion: tuple[str, float] | None, promote: bool) -> None:
        with hook.scoped_connection() as conn:
            cur = conn.cursor()
            hook.begin(cur)
            hook.lock(cur, "ml.model_registry")
            cm.register(hook, cur, version=version, dt=date(2026, 10, 9), run_id=run_id, trained=trained,
                        artifact_path=f"file:///models/{version}", champion=champion, promote=promote)  # fmt: skip
            conn.commit()

    register("churn-1", "r1", None, True)
    register("churn-2", "r2", ("churn-1", 0.5), True)
    register("churn-1", "r3", ("churn-2", 0.9), False)  # a rerun of the first version, not promoted
    rows = warehouses.snowflake_query(
        "SELECT model_version, is_champion, run_id, compared_with, params FROM ml.model_registry "
        "WHERE model_version IN ('churn-1', 'churn-2') ORDER BY 1"
    )
    assert [r[:4] for r in rows] == [("churn-1", False, "r3", "churn-2"), ("churn-2", True, "r2", "churn-1")]
    assert json.loads(rows[0][4]) == trained.params
    with hook.scoped_connection() as conn:
        assert cm.current_champion(conn.cursor(), excluding="churn-1") == (
            "churn-2", "file:///models/churn-2", trained.sha256
        )  # fmt: skip
    assert warehouses.snowflake_query("SELECT COUNT(*) FROM ml.model_registry WHERE is_champion") == [(1,)]


def test_ml_training_trains_and_registers_the_same_model_on_snowflake(warehouses):
    """ml_training's run (ANALYTICS) trained on both warehouses' features: one registry row each, the same
    training rows, metric and artifact bytes (the comparison's ml.model_registry holds the rest)."""
    by_table = {table: (pg, snow) for table, pg, snow in warehouses.comparison}
    pg, snow = by_table["ml.model_registry"]
    assert pg.rows == snow.rows == 1
    assert snow.digest == pg.digest
    [(version, train_rows, metric)] = warehouses.snowflake_query(
        "SELECT model_version, train_rows, metric_value FROM ml.model_registry "
        "WHERE model_version NOT IN ('churn-1', 'churn-2')"
    )
    assert version.endswith(DAYS[2].replace("-", ""))
    assert train_rows > 50
    assert 0.0 <= metric <= 1.0

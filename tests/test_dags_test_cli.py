"""``airflow dags test DAG -c CONF`` exits 0 when the run succeeds and non-zero when it fails, for every DAG.

The real CLI as a subprocess (``python -m airflow dags test``), in this session's AIRFLOW_HOME
with a PostgreSQL metadata DB of the module's own, with connections and variables as AIRFLOW_CONN_* /
AIRFLOW_VAR_* pointing at this module's databases and stand-ins. No test code runs in the
subprocess: daily_etl (Deadline Alerts, apache/airflow#73428) exits 0 through the project's
global workaround (plugins/airflow_local_settings.py -> acme_pipelines.upstream_fixes), as it
does in a deployment. PagerDuty has no connection here, as on a laptop: a failing critical
run's callback says "PagerDuty off" instead of failing.

Data: one generated day, DAY (Sunday 2026-11-08), synced and loaded by the CLI runs
themselves. Each good run is a run of DAY (or its window, hour, week):

- hourly_incremental_sync catches up every order and customer, with their changes of the days after;
- daily_etl loads DAY; data_quality_check passes it (its interval checks against the day and
  the week before find nothing there: a day without rows reads as 0, which they accept);
- feature_engineering, ml_training (nothing labelled yet: training skips) and daily_reports
  run behind DAY's passed quality gate;
- weekly_aggregation builds the week of DAY: its precondition wants all seven days in
  marts.daily_revenue, so the six days before DAY get DAY's row (the mart is the only input
  it checks; loading six more days would cost six more daily_etl runs);
- anomaly_detection, cache_refresh and data_archival run for DAY's noon / Sunday.

The good runs go one at a time, in dependency order. The failing runs do not depend on them and
start at once in three lanes beside them (each `airflow dags test` is mostly Airflow's start-up;
a PostgreSQL metadata DB takes the concurrent writers): the four DAGs behind the quality gate in
one lane, quality first, so that the gate they refuse has been decided.

Each failing run fails for a reason the DAG meets in production: a day nothing was loaded for
(FAIL_DAY: quality fails it, and the DAGs behind the gate refuse it), an incomplete week, a
source or warehouse database that does not exist, Redis unreachable. (Not daily_etl on a day
without landing files: it waits for them, deferred, up to ``landing_wait_timeout_minutes``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from acme_localdev.recorder import HttpRecorder
from acme_localdev.warehouse_compare import postgres_connection
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse import WarehouseHook
from acme_sample_data.build import build
from acme_sample_data.fx import FxServer
from acme_sample_data.generator import GeneratorConfig
from conftest import REDIS_URL, ROOT, free_port, pipeline_environment, query, scratch_databases, seed_the_week_before

DAY = date(2026, 11, 8)  # a Sunday: the last day of the ISO week 2026-11-02..08
WEEK = DAY - timedelta(days=6)
NEXT_DAY = DAY + timedelta(days=1)  # a Monday
SYNC_END = DAY + timedelta(days=4)  # orders change for a few days after they are placed (payments, refunds)
FAIL_DAY = "2026-10-05"  # nothing was loaded for it
CONFIG = GeneratorConfig(start=DAY, days=1, scale=0.1, bad_share=0.004, seed=17)
DAG_IDS = sorted(p.stem for p in (ROOT / "dags").glob("*.py"))
CRITICAL = ("daily_etl", "data_quality_check", "hourly_incremental_sync")
TIMINGS: list[tuple[str, str, float]] = []
CLI_TIMEOUT = 420  # seconds; a run takes 15-60 s (start-up, parsing the DAG folder, Airflow's in-process API)


def missing_database() -> str:
    return postgres_connection(f"postgresql://postgres@127.0.0.1:5432/test_{uuid.uuid4().hex[:8]}_missing")


# (dag_id, conf, environment overrides) in the order they run
GOOD = [
    ("hourly_incremental_sync", {"partition": "2025-01-01T00:00", "partition_end": f"{SYNC_END}T00:00"}, {}),
    ("daily_etl", {"partition": f"{DAY}"}, {}),
    ("data_quality_check", {"partition": f"{DAY}"}, {}),
    ("feature_engineering", {"partition": f"{DAY}"}, {}),
    ("ml_training", {"partition": f"{DAY}"}, {}),
    ("daily_reports", {"partition": f"{DAY}"}, {}),
    ("weekly_aggregation", {"partition": f"{WEEK}"}, {}),
    ("anomaly_detection", {"partition": f"{DAY}T12:00"}, {}),
    ("cache_refresh", {"partition": f"{DAY}T12:00"}, {}),
    ("data_archival", {"partition": f"{DAY}"}, {}),
]  # fmt: skip
FAILING = [
    ("hourly_incremental_sync", {"partition": f"{DAY}T00:00"}, {"AIRFLOW_CONN_APP_DB": missing_database()}),
    # DAY's landing files are there (a day without them would wait for them); the warehouse is not
    ("daily_etl", {"partition": f"{DAY}"}, {"AIRFLOW_CONN_WAREHOUSE": missing_database()}),
    ("data_quality_check", {"partition": FAIL_DAY}, {}),
    ("feature_engineering", {"partition": FAIL_DAY}, {}),
    ("ml_training", {"partition": FAIL_DAY}, {}),
    ("daily_reports", {"partition": FAIL_DAY}, {}),
    ("weekly_aggregation", {"partition": f"{NEXT_DAY}"}, {}),  # the next week: none of its days loaded
    ("anomaly_detection", {"partition": f"{DAY}T12:00"}, {"AIRFLOW_CONN_WAREHOUSE": missing_database()}),
    ("cache_refresh", {"partition": f"{DAY}T12:00"},
     {"AIRFLOW_CONN_REDIS_CACHE": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": free_port()})}),
    ("data_archival", {"partition": f"{DAY}"}, {"AIRFLOW_CONN_WAREHOUSE": missing_database()}),
]  # fmt: skip


# The critical chain again, into a Snowflake warehouse (the fakesnow server): the same commands with the
# warehouse connection of type snowflake, in a lane of their own beside the failing ones; then data_archival
# moves DAY to cold storage (the run of NEXT_DAY, keeping no day) and the restore command puts each table back
SNOWFLAKE_RUNS = [*GOOD[:3], ("data_archival", {"partition": f"{NEXT_DAY}"}, {"AIRFLOW_VAR_HOT_RETENTION_DAYS": "0"})]
ARCHIVED_TABLES = ("core.fact_payments", "core.fact_events", "core.fact_pos_sales")

# Failing runs, in lanes that run side by side: within a lane, one after another
FAILING_LANES = [
    ["data_quality_check", "feature_engineering", "ml_training", "daily_reports"],
    ["hourly_incremental_sync", "daily_etl", "weekly_aggregation"],
    ["anomaly_detection", "cache_refresh", "data_archival"],
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory, fakesnow_server):
    """Runs ``airflow dags test`` in a subprocess with this module's connections, variables and metadata DB."""
    import redis

    from acme_localdev.warehouse_compare import fakesnow_connection
    from acme_pipelines.warehouse_hooks import warehouse_hook

    root = tmp_path_factory.mktemp("dags-test-cli")
    prefix = f"test:{uuid.uuid4().hex[:8]}:cache"
    with scratch_databases() as make, FxServer(CONFIG.day_list()) as fx, HttpRecorder() as slack:
        app, warehouse = make(), make()
        metadata = make().replace("postgresql://", "postgresql+psycopg2://")
        manifest = build(CONFIG, root / "landing", app).manifest_path
        upgrade(WarehouseHook(dsn=warehouse))  # the deployment's setup step: tasks only check the schema version
        slack_conn = {"conn_type": "slackwebhook", "host": f"{slack.url}/services"}
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))},
            **pipeline_environment(app, postgres_connection(warehouse), fx.url, slack.url, root / "landing"),
            "AIRFLOW_CONN_SLACK_REPORTS": json.dumps({**slack_conn, "password": "T/REPORTS/X"}),
            "AIRFLOW_CONN_REDIS_CACHE": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 6379}),
            "AIRFLOW_VAR_ARTIFACTS_ROOT": f"file://{root / 'artifacts'}",
            "AIRFLOW_VAR_COLD_STORAGE_ROOT": f"file://{root / 'cold'}",
            "AIRFLOW_VAR_CACHE_KEY_PREFIX": prefix,
            # no AIRFLOW_CONN_PAGERDUTY_EVENTS: paging is off, as on a laptop
            # a failing run fails at once, not after 1 + 2 + 4 minutes of retries
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(root / "lineage.jsonl"), "append": True}
            ),
        }

        def dags_test(dag_id: str, conf: dict, overrides: dict[str, str]) -> tuple[int | None, str]:
            """(exit code, or None if it did not finish in time; stdout + stderr)."""
            started = time.monotonic()
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)],
                    env={**environment, **overrides}, capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=root,
                )  # fmt: skip
                code, output = result.returncode, result.stdout + result.stderr
            except subprocess.TimeoutExpired as timeout:
                code = None
                output = (
                    "".join(
                        part.decode() if isinstance(part, bytes) else part or ""
                        for part in (timeout.stdout, timeout.stderr)
                    )
                    + f"\n(killed after {CLI_TIMEOUT} s)"
                )
            TIMINGS.append((dag_id, json.dumps(conf), time.monotonic() - started))
            log = root / "logs" / f"{len(TIMINGS):02d}-{dag_id}.log"  # kept for a failure's full story
            log.parent.mkdir(exist_ok=True)
            log.write_text(output)
            return code, output

        for command in (["db", "migrate"], ["dags", "reserialize"]):  # once, before runs write concurrently
            done = subprocess.run([sys.executable, "-m", "airflow", *command], env=environment, capture_output=True,
                                  text=True, timeout=CLI_TIMEOUT)  # fmt: skip
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        dags_test.warehouse = warehouse  # type: ignore[attr-defined]
        dags_test.slack = slack  # type: ignore[attr-defined]
        dags_test.manifest = json.loads(manifest.read_text())["days"]  # type: ignore[attr-defined]
        dags_test.artifacts = root / "artifacts"  # type: ignore[attr-defined]
        dags_test.failed = set()  # type: ignore[attr-defined]
        failing = dict((d, (c, o)) for d, c, o in FAILING)
        pool = ThreadPoolExecutor(max_workers=len(FAILING_LANES) + 1)

        def lane(dag_ids: list[str]) -> dict[str, tuple[int | None, str]]:
            return {dag_id: dags_test(dag_id, *failing[dag_id]) for dag_id in dag_ids}

        dags_test.failing = [pool.submit(lane, dag_ids) for dag_ids in FAILING_LANES]  # type: ignore[attr-defined]
        # the Snowflake warehouse: a database of the session's fakesnow server, migrated as a deployment does
        snowflake = fakesnow_connection(fakesnow_server, f"CLI_{uuid.uuid4().hex[:8].upper()}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_WAREHOUSE", snowflake)
            upgrade(warehouse_hook("warehouse"))

        def snowflake_lane() -> dict[str, tuple[int | None, str]]:
            into = {"AIRFLOW_CONN_WAREHOUSE": snowflake, "AIRFLOW_VAR_COLD_STORAGE_ROOT": f"file://{root / 'cold-sf'}"}
            done = {dag_id: dags_test(dag_id, conf, {**into, **more}) for dag_id, conf, more in SNOWFLAKE_RUNS}
            for table in ARCHIVED_TABLES:  # the command docs/runbook.md gives, on the Snowflake warehouse
                restore = subprocess.run(
                    [sys.executable, "-m", "acme_pipelines.archive", "restore", "--table", table, "--day", f"{DAY}"],
                    env={**environment, **into, "PYTHONPATH": str(ROOT / "plugins")}, capture_output=True, text=True,
                    timeout=CLI_TIMEOUT, cwd=root,
                )  # fmt: skip
                done[f"restore {table}"] = (restore.returncode, restore.stdout + restore.stderr)
            return done

        dags_test.snowflake = json.loads(snowflake)  # type: ignore[attr-defined]
        dags_test.snowflake_runs = pool.submit(snowflake_lane)  # type: ignore[attr-defined]
        try:
            yield dags_test
        finally:
            pool.shutdown(wait=True)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()
            for dag_id, conf, seconds in TIMINGS:
                print(f"airflow dags test {dag_id} -c '{conf}': {seconds:.1f} s")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.unit
def test_every_dag_is_run_on_a_good_and_on_a_failing_day():
    assert sorted(d for d, _, _ in GOOD) == DAG_IDS
    assert sorted(d for d, _, _ in FAILING) == DAG_IDS


@pytest.mark.integration
@pytest.mark.timeout(CLI_TIMEOUT + 60)
@pytest.mark.parametrize(("dag_id", "conf", "overrides"), GOOD, ids=[d for d, _, _ in GOOD])
def test_a_good_day_exits_0(cli, dag_id, conf, overrides):
    """In GOOD's order: each run needs the ones before it (a DAG behind the gate would wait for it)."""
    before = [d for d, _, _ in GOOD][: [d for d, _, _ in GOOD].index(dag_id)]
    if failed := [d for d in before if d in cli.failed]:
        pytest.skip(f"needs the good runs before it; {failed} failed")
    try:
        if dag_id == "weekly_aggregation":
            seed_the_week_before(WarehouseHook(dsn=cli.warehouse), DAY)
        code, output = cli(dag_id, conf, overrides)
        assert code == 0, f"exited {code}:\n{tail(output)}"
        assert f"DagRun Finished: dag_id={dag_id}" in output
        assert "state=success" in output
        good_day_outcome(cli, dag_id, output)
    except BaseException:
        cli.failed.add(dag_id)
        raise


def good_day_outcome(cli, dag_id: str, output: str) -> None:
    wh = cli.warehouse
    if dag_id == "daily_etl":  # it succeeded and the CLI said so: what made that possible is the global workaround
        assert "'dict' object has no attribute 'hex'" not in output
        assert "workaround for apache/airflow#73428 on" in output, "plugins/airflow_local_settings.py ran in the CLI"
        loaded = cli.manifest[f"{DAY}"]["payments"]["rows_loaded"]
        assert query(wh, "SELECT count(*) FROM core.fact_payments WHERE dt = %s", (DAY,)) == [(loaded,)]
    elif dag_id == "data_quality_check":
        assert query(wh, "SELECT status FROM ops.quality_gate WHERE dt = %s", (DAY,)) == [("passed",)]
    elif dag_id == "weekly_aggregation":
        assert query(wh, "SELECT week_start FROM marts.weekly_kpis") == [(WEEK,)]
    elif dag_id == "daily_reports":
        assert (cli.artifacts / "reports" / f"dt={DAY}" / "report.html").exists()


@pytest.mark.integration
@pytest.mark.timeout(CLI_TIMEOUT + 60)
@pytest.mark.parametrize(("dag_id", "conf", "overrides"), FAILING, ids=[d for d, _, _ in FAILING])
def test_a_failing_day_exits_non_zero(cli, dag_id, conf, overrides):
    """The run fails, the CLI exits 1, and the failure callbacks ran without failing themselves."""
    lane = next(f for f, dag_ids in zip(cli.failing, FAILING_LANES, strict=True) if dag_id in dag_ids)
    code, output = lane.result(timeout=CLI_TIMEOUT)[dag_id]
    assert code not in (0, None), f"exited {code}:\n{tail(output)}"
    assert "DagRun failed" in output, f"not a failed run:\n{tail(output)}"
    assert "state=failed" in output
    # each failed task posts to Slack; a failed critical run would page, but PagerDuty has no connection here
    assert "isn't defined" not in output, f"a callback failed on a connection not defined here:\n{tail(output)}"
    assert output.count("PagerDuty off: no connection pagerduty_events") == (1 if dag_id in CRITICAL else 0)
    posts = [r.json()["text"] for r in cli.slack.requests if r.path == "/services/T/B/X"]
    assert any(p.startswith(f":red_circle: Task failed: {dag_id}.") for p in posts), (
        "no Slack alert for its failed task"
    )


@pytest.mark.integration
@pytest.mark.timeout(4 * CLI_TIMEOUT)
def test_the_critical_chain_exits_0_on_snowflake_with_the_same_rows(cli, fakesnow_server):
    """hourly_incremental_sync, daily_etl and data_quality_check through the same CLI, into a Snowflake warehouse
    (the fakesnow server; only the warehouse connection differs), then data_archival of DAY and
    ``python -m acme_pipelines.archive restore`` of each table: each exits 0, and the rows are the ones the
    PostgreSQL runs above published."""
    import psycopg2
    import snowflake.connector

    from acme_localdev.warehouse_compare import table_digest

    results = cli.snowflake_runs.result(timeout=4 * CLI_TIMEOUT)
    for dag_id, (code, output) in results.items():
        assert code == 0, f"{dag_id} on Snowflake exited {code}:\n{tail(output)}"
        if dag_id.startswith("restore "):
            assert f"of {dag_id.removeprefix('restore ')} for {DAY}" in output
            continue
        assert f"DagRun Finished: dag_id={dag_id}" in output
        assert "state=success" in output
    archived = results["data_archival"][1]
    for table in ARCHIVED_TABLES:
        assert f"{table} {DAY}: archived" in archived, f"{table} was not archived:\n{tail(archived)}"
    pg = psycopg2.connect(cli.warehouse)
    snow = snowflake.connector.connect(**fakesnow_server, database=cli.snowflake["extra"]["database"])
    try:
        for table in ("core.fact_orders", "core.dim_customer", *ARCHIVED_TABLES):  # the restored days included
            mine, theirs = table_digest(pg, table), table_digest(snow, table)
            assert (table, theirs.rows, theirs.digest) == (table, mine.rows, mine.digest)
            assert mine.rows > 0
        gate = snow.cursor().execute("SELECT dt, status FROM ops.quality_gate").fetchall()
        assert gate == [(DAY, "passed")]
    finally:
        pg.close()
        snow.close()

"""data_archival against the real PostgreSQL, on local storage and the moto S3 server.

Three days of payments, events and point-of-sale sales (with NULLs, JSON, microseconds, decimals); the
run for Sunday 2026-11-08 with hot_retention_days=5 archives the days before 11-03 (11-01, 11-02) and keeps 11-03.
"""

from __future__ import annotations

from datetime import date

import pyarrow.parquet as pq
import pytest

from acme_localdev.warehouse_compare import postgres_connection as pg_conn_json
from acme_pipelines import archive
from acme_pipelines.archive_operators import ArchivePartitionsOperator
from conftest import add_day_partitions, query, run_dag

pytestmark = pytest.mark.integration

RUN_DAY = "2026-11-08"
OLD_DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
KEPT_DAY = date(2026, 11, 3)
KEYS = {"core.fact_payments": "payment_id", "core.fact_events": "event_id", "core.fact_pos_sales": "sale_id"}

FACTS = """
INSERT INTO core.fact_payments (payment_id, order_id, amount, currency, method, status, paid_at, amount_usd, dt,
                                _run_id, _loaded_at)
SELECT n, n * 3, (n %% 997) + 0.05, 'EUR', 'card', CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'captured' END,
       d + make_interval(secs => n %% 86400 + 0.123456), (n %% 997) * 1.09, d::date, 'load-' || d::date, now()
FROM generate_series(1, 3000) AS n,
     LATERAL (SELECT '2026-11-01'::timestamptz + ((n - 1) / 1000) * interval '1 day') x (d);

INSERT INTO core.fact_events (event_id, event_type, occurred_at, session_id, customer_id, product_id, properties, dt,
                              _run_id, _loaded_at)
SELECT 'e-' || n, 'page_view', d + make_interval(secs => n %% 86400), 's' || (n %% 50),
       CASE WHEN n %% 3 = 0 THEN NULL ELSE n END, NULL,
       CASE WHEN n %% 4 = 0 THEN NULL
            ELSE jsonb_build_object('n', n, 'tags', jsonb_build_array('a', n), 'q', 'x"y') END,
       d::date, 'load', now()
FROM generate_series(1, 3000) AS n,
     LATERAL (SELECT '2026-11-01'::timestamptz + ((n - 1) / 1000) * interval '1 day') x (d);

INSERT INTO core.fact_pos_sales (sale_id, store_id, product_id, quantity, amount, currency, sold_at, amount_usd, dt,
                                 _run_id, _loaded_at)
SELECT n, n %% 8 + 1, n %% 40 + 1, n %% 5 + 1, (n %% 311) + 0.99, 'GBP', d + make_interval(secs => n %% 86400 + 0.5),
       (n %% 311) * 1.27, d::date, 'load-' || d::date, now()
FROM generate_series(1, 3000) AS n,
     LATERAL (SELECT '2026-11-01'::timestamptz + ((n - 1) / 1000) * interval '1 day') x (d);
"""


def day_digest(dsn: str, table: str, day: date) -> tuple[int, str]:
    [(count, digest)] = query(
        dsn,
        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {KEYS[table]}), '')) "
        f"FROM {table} t WHERE dt = %s",
        (day,),
    )
    return count, digest


@pytest.fixture
def archive_env(monkeypatch, warehouse, airflow_db, tmp_path):
    add_day_partitions(warehouse.dsn, OLD_DAYS[0], KEPT_DAY)
    query(warehouse.dsn, FACTS)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_conn_json(warehouse.dsn))
    monkeypatch.setenv("AIRFLOW_VAR_COLD_STORAGE_ROOT", f"file://{tmp_path / 'cold'}")
    monkeypatch.setenv("AIRFLOW_VAR_HOT_RETENTION_DAYS", "5")
    before = {(t, d): day_digest(warehouse.dsn, t, d) for t in KEYS for d in [*OLD_DAYS, KEPT_DAY]}
    return {"warehouse": warehouse.dsn, "cold": tmp_path / "cold", "before": before, "hook": warehouse}


def manifest(dsn: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT table_name, partition, row_count, deleted_from_warehouse_at IS NOT NULL FROM ops.archive_manifest "
        "ORDER BY 1, 2",
    )


def operator(root: str, **kwargs) -> ArchivePartitionsOperator:
    return ArchivePartitionsOperator(
        task_id="archive_probe", cold_storage_root=root, hot_retention_days=5, storage_class="", **kwargs
    )


def context(run_id: str = "test-run") -> dict:
    return {"params": {"partition": RUN_DAY}, "run_id": run_id}


def test_archive_verify_delete_and_restore_bit_for_bit(dagbag, archive_env):
    env = archive_env
    wh = env["warehouse"]
    run_dag(dagbag, "data_archival", partition=RUN_DAY)
    assert manifest(wh) == [(t, d, 1000, True) for t in sorted(KEYS) for d in OLD_DAYS]
    for table in KEYS:
        for day in OLD_DAYS:
            assert day_digest(wh, table, day)[0] == 0
        assert day_digest(wh, table, KEPT_DAY) == env["before"][(table, KEPT_DAY)], "a hot day is untouched"

    # the Parquet file holds exactly the deleted rows
    path = env["cold"] / "core.fact_payments" / "dt=2026-11-01" / "part-000.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 1000
    assert table.column("payment_id").to_pylist() == list(range(1, 1001))
    assert str(table.column("amount").to_pylist()[0]) == "1.05"
    assert table.schema.field("paid_at").type.tz == "UTC"

    run_dag(dagbag, "data_archival", partition=RUN_DAY)  # a rerun finds nothing left to do
    assert manifest(wh) == [(t, d, 1000, True) for t in sorted(KEYS) for d in OLD_DAYS]

    for table in KEYS:
        assert archive.restore_partition(env["hook"], table, OLD_DAYS[0]) == 1000
        assert day_digest(wh, table, OLD_DAYS[0]) == env["before"][(table, OLD_DAYS[0])], table
    [(restored,)] = query(
        wh,
        "SELECT count(*) FROM ops.archive_manifest WHERE restored_at IS NOT NULL AND deleted_from_warehouse_at IS NULL",
    )
    assert restored == len(KEYS)
    with pytest.raises(ValueError, match="not archived"):
        archive.restore_partition(env["hook"], "core.fact_events", OLD_DAYS[0])


@pytest.mark.parametrize("crash", ["write", "manifest"])
def test_a_crash_then_a_rerun_loses_and_duplicates_nothing(archive_env, crash):
    env = archive_env
    wh = env["warehouse"]
    root = f"file://{env['cold']}"
    step = {"write": "writing the file", "manifest": "recording the manifest"}[crash]
    with pytest.raises(RuntimeError, match=f"injected failure after {step}"):
        operator(root, fail_after=crash, tables=["core.fact_payments"]).execute(context())
    recorded = manifest(wh)
    assert recorded == ([] if crash == "write" else [("core.fact_payments", OLD_DAYS[0], 1000, False)])
    assert day_digest(wh, "core.fact_payments", OLD_DAYS[0]) == env["before"][("core.fact_payments", OLD_DAYS[0])]

    result = operator(root, tables=["core.fact_payments"]).execute(context("retry"))
    assert result["archived"] == [("core.fact_payments", d.isoformat(), 1000) for d in OLD_DAYS]
    assert manifest(wh) == [("core.fact_payments", d, 1000, True) for d in OLD_DAYS]
    files = sorted(p.relative_to(env["cold"]).as_posix() for p in env["cold"].rglob("*.parquet"))
    assert files == [f"core.fact_payments/dt={d}/part-000.parquet" for d in OLD_DAYS]
    assert archive.restore_partition(env["hook"], "core.fact_payments", OLD_DAYS[0]) == 1000
    assert day_digest(wh, "core.fact_payments", OLD_DAYS[0]) == env["before"][("core.fact_payments", OLD_DAYS[0])]


def test_archive_to_s3_with_a_cold_storage_class(archive_env, s3_server, s3_bucket, monkeypatch):
    env = archive_env
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    root = f"s3://aws_test@{s3_bucket}/cold"
    op = ArchivePartitionsOperator(
        task_id="archive_s3", cold_storage_root=root, hot_retention_days=5, storage_class="GLACIER_IR",
        tables=["core.fact_events"],
    )  # fmt: skip
    op.execute(context())
    client = s3_server.client()
    head = client.head_object(Bucket=s3_bucket, Key="cold/core.fact_events/dt=2026-11-01/part-000.parquet")
    assert head["StorageClass"] == "GLACIER_IR"
    assert manifest(env["warehouse"]) == [("core.fact_events", d, 1000, True) for d in OLD_DAYS]
    assert archive.restore_partition(env["hook"], "core.fact_events", OLD_DAYS[1]) == 1000
    assert (
        day_digest(env["warehouse"], "core.fact_events", OLD_DAYS[1])
        == env["before"][("core.fact_events", OLD_DAYS[1])]
    )

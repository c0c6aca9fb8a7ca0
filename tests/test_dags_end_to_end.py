"""hourly_incremental_sync and daily_etl end to end through dag.test(), against the real services.

Connections and variables come from the environment (AIRFLOW_CONN_*, AIRFLOW_VAR_*), as in
production; the landing zone is a local folder, then a bucket on the moto S3 server.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from acme_sample_data.generator import GeneratorConfig
from conftest import OPENLINEAGE_EVENTS, query, run_dag, table_checksum

pytestmark = pytest.mark.integration

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=2, scale=0.3, bad_share=0.004, seed=5)


@pytest.fixture
def pipeline_config():
    return CONFIG


def run(dagbag, dag_id: str, **conf) -> None:
    run_dag(dagbag, dag_id, **conf)


def test_sync_then_etl_publish_every_row_and_rerun_identically(dagbag, pipeline_env, airflow_db):
    env = pipeline_env
    run(dagbag, "hourly_incremental_sync", partition="2025-01-01T00:00", partition_end="2026-11-05T00:00")
    for table, target in (("orders", "core.fact_orders"), ("order_items", "core.fact_order_items")):
        assert query(env["app"], f"SELECT count(*) FROM {table}") == query(
            env["warehouse"], f"SELECT count(*) FROM {target}"
        )

    run(dagbag, "daily_etl", partition="2026-11-01")
    expected = env["manifest"]["2026-11-01"]
    audit = dict(
        query(
            env["warehouse"],
            "SELECT source, (rows_in, rows_loaded, rows_rejected, rows_duplicate)::text FROM ops.load_audit "
            "WHERE partition = '2026-11-01' AND source LIKE 'landing:%%'",
        )
    )
    for source in ("payments", "events", "pos"):
        want = expected[source]
        assert audit[f"landing:{source}"] == (
            f"({want['rows_in']},{want['rows_loaded']},{want['rows_rejected']},{want['rows_duplicate']})"
        )
    [(revenue, orders)] = query(env["warehouse"], "SELECT revenue_usd, orders FROM marts.daily_revenue")
    [(captured,)] = query(env["warehouse"], "SELECT sum(amount_usd) FROM core.fact_payments WHERE status = 'captured'")
    assert revenue == captured > 0
    assert orders == CONFIG.orders_per_day

    published = (("core.fact_payments", "payment_id"), ("core.fact_events", "event_id"),
                 ("core.fact_pos_sales", "sale_id"), ("marts.daily_revenue", "dt"))  # fmt: skip
    [(sales, stores)] = query(env["warehouse"], "SELECT count(*), count(DISTINCT store_id) FROM core.fact_pos_sales")
    assert sales == expected["pos"]["rows_loaded"] > 0
    assert stores > 1
    before = {t: table_checksum(env["warehouse"], t, k) for t, k in published}
    run(dagbag, "daily_etl", partition="2026-11-01")
    run(dagbag, "hourly_incremental_sync", partition="2026-11-01T00:00", partition_end="2026-11-03T00:00")
    after = {t: table_checksum(env["warehouse"], t, k) for t, k in published}
    assert before == after


def test_daily_etl_reads_the_landing_zone_on_s3(dagbag, pipeline_env, airflow_db, s3_server, s3_bucket, monkeypatch):
    client = s3_server.client()
    for path in pipeline_env["landing"].rglob("*"):
        if path.is_file():
            key = f"landing/{path.relative_to(pipeline_env['landing'])}"
            client.upload_file(str(path), s3_bucket, key)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    monkeypatch.setenv("AIRFLOW_VAR_LANDING_ROOT", f"s3://aws_test@{s3_bucket}/landing")
    run(dagbag, "daily_etl", partition="2026-11-02")
    expected = pipeline_env["manifest"]["2026-11-02"]
    for table, source in (("core.fact_payments", "payments"), ("core.fact_pos_sales", "pos")):
        got = query(pipeline_env["warehouse"], f"SELECT count(*) FROM {table} WHERE dt = '2026-11-02'")
        assert got == [(expected[source]["rows_loaded"],)], table  # the SQLite file was copied from S3 to read
    locators = query(
        pipeline_env["warehouse"],
        "SELECT DISTINCT split_part(locator, ':', 1) FROM ops.rejected_rows WHERE partition = '2026-11-02'",
    )
    assert locators == [("s3",)], "rejects point at the S3 objects they came from"


def test_openlineage_events_name_the_files_and_tables(dagbag, pipeline_env, airflow_db):
    seen = OPENLINEAGE_EVENTS.stat().st_size if OPENLINEAGE_EVENTS.exists() else 0
    run(dagbag, "daily_etl", partition="2026-11-01")
    with OPENLINEAGE_EVENTS.open() as log:
        log.seek(seen)  # only this run's events
        events = [json.loads(line) for line in log if line.strip()]
    complete = {
        e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].count(".") == 1
    }
    payments = complete["daily_etl.load_payments"]
    inputs = {(d["namespace"], d["name"]) for d in payments["inputs"]}
    landing = str(pipeline_env["landing"])
    warehouse_db = pipeline_env["warehouse"].rsplit("/", 1)[1]
    assert inputs == {
        ("file", f"{landing}/payments/dt=2026-11-01/part-000.csv"),
        ("file", f"{landing}/payments/dt=2026-11-01/part-001.csv.gz"),
        ("postgres://127.0.0.1:5432", f"{warehouse_db}.core.fx_rates"),  # amount_usd is computed from it
    }
    [output] = payments["outputs"]
    assert output["namespace"] == "postgres://127.0.0.1:5432"
    assert output["name"].endswith(".core.fact_payments")
    # column-level schema facets: the table's columns from the warehouse, the files' from the contract
    columns = {f["name"]: f["type"] for f in output["facets"]["schema"]["fields"]}
    assert columns["amount_usd"] == "numeric"
    assert {"payment_id", "order_id", "amount", "currency", "dt", "_run_id"} <= set(columns)
    for file in (d for d in payments["inputs"] if d["namespace"] == "file"):
        assert [f["name"] for f in file["facets"]["schema"]["fields"]] == [
            "payment_id", "order_id", "amount", "currency", "method", "status", "paid_at"
        ]  # fmt: skip
    assert complete["daily_etl.build_daily_revenue"]["outputs"][0]["name"].endswith(".marts.daily_revenue")


def test_a_run_sends_the_documented_metrics_that_the_dashboards_query(dagbag, pipeline_env, statsd, airflow_db):
    """A UDP listener receives daily_etl's custom metrics, tagged, with the audited counts; every
    acme metric it receives is in the catalog, and the dashboards' queries of them map to what came."""
    from acme_localdev.observability import dashboard_coverage, parse_statsd_line
    from acme_pipelines.metrics import CATALOG

    run(dagbag, "daily_etl", partition="2026-11-01")
    lines = statsd.lines()
    samples = [parse_statsd_line(line) for line in lines]
    acme = [s for s in samples if s.name.startswith("airflow.acme.pipeline.")]
    assert {s.name.removeprefix("airflow.acme.pipeline.") for s in acme} <= set(CATALOG), "only catalogued names"
    payments = {
        s.name.rsplit(".", 1)[1]: s
        for s in acme
        if s.tags == {"dag_id": "daily_etl", "task_id": "load_payments", "table": "core.fact_payments"}
    }
    assert set(payments) == {"rows_in", "rows_loaded", "rows_rejected", "rows_duplicate", "bytes", "seconds"}
    [(rows_in, loaded, rejected, duplicate)] = query(
        pipeline_env["warehouse"],
        "SELECT rows_in, rows_loaded, rows_rejected, rows_duplicate FROM ops.load_audit "
        "WHERE task_id = 'load_payments' AND partition = '2026-11-01' AND status = 'success'",
    )
    assert (payments["rows_in"].value, payments["rows_in"].type) == (str(rows_in), "c")
    assert int(payments["rows_loaded"].value) == loaded
    assert int(payments["rows_rejected"].value) == rejected
    assert int(payments["rows_duplicate"].value) == duplicate
    assert payments["seconds"].type == "ms"
    # Airflow's own task metrics arrive too, tagged the same way
    assert any(s.name == "airflow.ti.finish" and s.tags.get("dag_id") == "daily_etl" for s in samples)
    coverage = dashboard_coverage(lines)
    assert not {name for name in coverage.unmapped if name.startswith("airflow.acme.")}, "every acme metric is mapped"
    fed = set(coverage.covered)
    for name in ("rows_in", "rows_loaded", "rows_rejected", "rows_duplicate", "bytes"):
        assert f"acme_pipeline_{name}_total" in fed, f"a dashboard metric fed by this run: {name}"
    assert "acme_pipeline_load_seconds" in fed

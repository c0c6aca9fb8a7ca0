"""The critical chain on the Celery cluster, with the warehouse on Snowflake (fakesnow).

It starts a fakesnow server in this process and the cluster (tests/cluster.py: scheduler, dag-processor,
triggerer, api-server, 2 Celery workers x 2 slots) with the ``warehouse`` connection of type snowflake
pointing at it, the warehouse migrated first as a deployment does. Then, as a user does: the hourly sync's
catch-up window through the scheduler, ``data_quality_check`` unpaused, a backfill of ``daily_etl`` over the
generated days through the REST API (the UI's dialog), and a wait until both DAGs are idle. Every run must
succeed; each day's rows in Snowflake must equal the generator's manifest (payments, events, point-of-sale
sales) with one row per key, and each day's quality gate must read passed.
"""

from __future__ import annotations

import time
import uuid
from datetime import date

import pytest

from acme_sample_data.generator import GeneratorConfig
from cluster import running_cluster

pytestmark = pytest.mark.e2e

DAYS = 2
CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=DAYS, scale=0.1, bad_share=0.004, seed=21)
CHAIN = ["daily_etl", "data_quality_check"]
FACTS = {"payments": ("core.fact_payments", "payment_id"), "events": ("core.fact_events", "event_id"),
         "pos": ("core.fact_pos_sales", "sale_id")}  # fmt: skip


@pytest.mark.timeout(2400)
def test_the_critical_chain_runs_on_snowflake_under_the_scheduler_and_celery(tmp_path, fakesnow_server):
    import snowflake.connector

    from acme_localdev.warehouse_compare import fakesnow_connection
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse_hooks import warehouse_hook

    database = f"CLUSTER_{uuid.uuid4().hex[:8].upper()}"
    warehouse = fakesnow_connection(fakesnow_server, database)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse)
        upgrade(warehouse_hook("warehouse"))  # the deployment's setup step: tasks only check the schema version

    days = [d.isoformat() for d in CONFIG.day_list()]
    with running_cluster(tmp_path / "airflow", CONFIG, AIRFLOW_CONN_WAREHOUSE=warehouse) as cluster:
        started = time.monotonic()
        cluster.catch_up_sync("2026-11-05", then_unpause=CHAIN)
        synced = time.monotonic() - started
        cluster.backfill("daily_etl", days[0], days[-1], max_active_runs=2)
        runs = cluster.wait_until_idle(CHAIN, timeout=1800)
        wall = time.monotonic() - started
        states = {d: [(r["dag_run_id"], r["state"]) for r in runs[d]] for d in CHAIN}
        print(f"\nsync catch-up {synced:.0f} s; then a {DAYS}-day backfill of daily_etl and its quality checks, "
              f"{wall:.0f} s in all; runs {states}")  # fmt: skip
        for dag_id in CHAIN:
            assert len(runs[dag_id]) == DAYS, states
            assert {r["state"] for r in runs[dag_id]} == {"success"}, states

        snow = snowflake.connector.connect(**fakesnow_server, database=database)
        try:
            cur = snow.cursor()
            for day in days:
                for source, (table, key) in FACTS.items():
                    cur.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {table} WHERE dt = %s", (day,))
                    rows, keys = cur.fetchone()
                    expected = cluster.manifest[day][source]["rows_loaded"]
                    print(f"{day} {table}: {rows} rows, {keys} keys; the manifest: {expected}")
                    assert (rows, keys) == (expected, expected), (day, table)
                cur.execute("SELECT status FROM ops.quality_gate WHERE dt = %s", (day,))
                assert [s for (s,) in cur.fetchall()] == ["passed"], day
        finally:
            snow.close()

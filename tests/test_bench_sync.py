"""``make bench`` (e)'s two parts of an alone run: the source part writes the rows the sync would send (the bad
ones left out), and the warehouse part loads them with the load's own statements, leaving the target's indexes and
column defaults as it found them."""

from __future__ import annotations

import psycopg2
import pytest

from acme_bench import sync
from acme_pipelines.migrations import upgrade

pytestmark = pytest.mark.integration


def _target_shape(dsn: str) -> tuple[list, list]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'core' AND tablename = 'fact_orders' ORDER BY 1"
        )
        indexes = cur.fetchall()
        cur.execute(
            "SELECT column_name, column_default FROM information_schema.columns "
            "WHERE table_schema = 'core' AND table_name = 'fact_orders' ORDER BY 1"
        )
        defaults = cur.fetchall()
    conn.close()
    return indexes, defaults


def test_the_parts_move_the_good_rows_and_leave_the_target_as_a_load_does(make_database, tmp_path):
    app_dsn, warehouse_dsn = make_database(), make_database()
    sync.fill(app_dsn, 300)
    with psycopg2.connect(app_dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET currency = 'us1' WHERE order_id = 7")  # bad_format:currency
    conn.close()
    hook = sync._MeteredHook(dsn=warehouse_dsn)
    upgrade(hook)
    before = _target_shape(warehouse_dsn)
    rows_file = tmp_path / "orders.copy"

    source = sync.source_part(app_dsn, "orders", rows_file)
    loaded = sync.warehouse_part(hook, "orders", rows_file)

    assert source["rows"] == loaded["rows"] == 299
    assert source["bytes"] == loaded["bytes"] == rows_file.stat().st_size > 0
    assert "source" in source["cpu"]["backends"]
    assert "warehouse" in loaded["cpu"]["backends"]
    with psycopg2.connect(warehouse_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE order_id = 7), min(_run_id), max(_run_id) FROM core.fact_orders"
        )
        assert cur.fetchone() == (299, 0, "warehouse part", "warehouse part")
    conn.close()
    assert _target_shape(warehouse_dsn) == before  # indexes rebuilt, the columns' own defaults back

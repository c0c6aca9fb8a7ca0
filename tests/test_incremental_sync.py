"""The hourly sync: COPY stream from the real app database, upserts, overlapping windows, rejects."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest

from acme_pipelines.contract import SYNC_BY_SOURCE, SYNC_TABLES
from acme_pipelines.incremental_sync import sync_table
from acme_pipelines.warehouse import AuditEntry
from acme_sample_data.build import build
from acme_sample_data.generator import GeneratorConfig
from conftest import query, table_checksum

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)
EVERYTHING = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC))


@pytest.fixture
def app_db(tmp_path, pg_database):
    build(GeneratorConfig(start=date(2026, 11, 1), days=2, scale=0.2, seed=3), tmp_path / "landing", pg_database)
    return pg_database


def sync(app_dsn, hook, source, start, end, run_id="run", ratio=0.01):
    audit = AuditEntry("test", f"sync_{source}", run_id, f"app_db:{source}", "t", f"{start}/{end}", datetime.now(UTC))
    counts, _ = sync_table(
        lambda: psycopg2.connect(app_dsn), hook, SYNC_BY_SOURCE[source], start, end, audit, max_reject_ratio=ratio
    )
    return counts


def test_full_window_copies_every_row_exactly(app_db, warehouse):
    for table in SYNC_TABLES:
        counts = sync(app_db, warehouse, table.source, *EVERYTHING)
        [(expected,)] = query(app_db, f"SELECT count(*) FROM {table.source}")
        assert counts.rows_in == counts.rows_loaded == expected > 0
        cols = ", ".join(table.names)
        key = ", ".join(table.key)
        source = query(app_db, f"SELECT md5(string_agg(({cols})::text, '|' ORDER BY {key})) FROM {table.source}")
        target = query(warehouse.dsn, f"SELECT md5(string_agg(({cols})::text, '|' ORDER BY {key})) FROM {table.target}")
        assert source == target, f"{table.target} equals {table.source} column for column"


def test_overlapping_and_repeated_windows_are_harmless(app_db, warehouse, pg_database):
    hours = [START + timedelta(hours=h) for h in range(0, 49, 6)]
    for start, end in itertools.pairwise(hours):  # consecutive windows
        sync(app_db, warehouse, "orders", start, end)
    once = table_checksum(warehouse.dsn, "core.fact_orders", "order_id")
    for start, end in zip(hours, hours[2:], strict=False):  # every window again, overlapping
        sync(app_db, warehouse, "orders", start, end)
    sync(app_db, warehouse, "orders", hours[0], hours[-1])
    assert table_checksum(warehouse.dsn, "core.fact_orders", "order_id") == once
    [(in_windows,)] = query(
        app_db, "SELECT count(*) FROM orders WHERE updated_at >= %s AND updated_at < %s", (hours[0], hours[-1])
    )
    assert once[0] == in_windows


def test_newer_update_wins_and_an_older_copy_never_overwrites(app_db, warehouse):
    sync(app_db, warehouse, "orders", *EVERYTHING)
    [(order_id, updated)] = query(app_db, "SELECT order_id, updated_at FROM orders ORDER BY order_id LIMIT 1")
    later = updated + timedelta(days=3)
    query(app_db, "UPDATE orders SET status = 'refunded', updated_at = %s WHERE order_id = %s", (later, order_id))
    sync(app_db, warehouse, "orders", later - timedelta(hours=1), later + timedelta(hours=1))
    assert query(warehouse.dsn, "SELECT status FROM core.fact_orders WHERE order_id = %s", (order_id,)) == [
        ("refunded",)
    ]
    # the warehouse already holds a newer version than the source sends (runs out of order)
    query(
        warehouse.dsn,
        "UPDATE core.fact_orders SET status = 'shipped', updated_at = %s WHERE order_id = %s",
        (later + timedelta(hours=5), order_id),
    )
    sync(app_db, warehouse, "orders", *EVERYTHING)
    assert query(warehouse.dsn, "SELECT status FROM core.fact_orders WHERE order_id = %s", (order_id,)) == [
        ("shipped",)
    ]


def test_rule_breaking_source_rows_are_rejected_with_their_key(app_db, warehouse):
    query(app_db, "UPDATE customers SET country = 'us' WHERE customer_id = 1")
    counts = sync(app_db, warehouse, "customers", *EVERYTHING, ratio=0.5)
    assert counts.rows_rejected == 1
    assert counts.rows_in == counts.rows_loaded + 1
    [(locator, reason, raw)] = query(warehouse.dsn, "SELECT locator, reason, raw_record FROM ops.rejected_rows")
    assert (locator, reason) == ("app_db:customers/customer_id=1", "bad_format:country")
    assert '"country":"us"' in raw.replace(" ", "")
    assert query(warehouse.dsn, "SELECT count(*) FROM core.dim_customer WHERE customer_id = 1") == [(0,)]

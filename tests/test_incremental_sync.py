"""The hourly sync: COPY stream from the real app database, upserts, overlapping windows, rejects."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest

from acme_pipelines.accounting import AuditEntry
from acme_pipelines.contract import SYNC_BY_SOURCE, SYNC_TABLES
from acme_pipelines.incremental_sync import sync_table
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


# -- the two publishes (load into an empty target, upsert): same rows, same rejects, same indexes -----------


def synced(app_dsn, hook, source, start, end, run_id="run", ratio=0.01, load=True):
    """``sync`` that also returns the stats (which publish, its phases)."""
    stats = {}
    audit = AuditEntry("test", f"sync_{source}", run_id, f"app_db:{source}", "t", f"{start}/{end}", datetime.now(UTC))
    counts, _ = sync_table(
        lambda: psycopg2.connect(app_dsn),
        hook,
        SYNC_BY_SOURCE[source],
        start,
        end,
        audit,
        max_reject_ratio=ratio,
        stats=stats,
        load=load,
    )
    return counts, stats


def indexes(dsn, target):
    """The target's index and constraint definitions (what a load drops and rebuilds)."""
    schema, name = target.split(".")
    return query(
        dsn,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s UNION ALL "
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "ORDER BY 1",
        (schema, name, target),
    )


def same_rows(app_dsn, warehouse_dsn, table, where="true"):
    cols, key = ", ".join(table.names), ", ".join(table.key)
    digest = "SELECT count(*), md5(string_agg(({cols})::text, '|' ORDER BY {key})) FROM {table} WHERE {where}"
    source = query(app_dsn, digest.format(cols=cols, key=key, table=table.source, where=where))
    target = query(warehouse_dsn, digest.format(cols=cols, key=key, table=table.target, where=where))
    return source == target


PUBLISHES = {  # name: (what the target holds first, load=)
    "load": (False, True),  # empty
    "upsert": (True, True),  # the first day already synced
    "upsert into an empty table": (False, False),
}


def prepare(app_db, warehouse, source, publish):
    half_there, load = PUBLISHES[publish]
    if half_there:
        sync(app_db, warehouse, source, START, START + timedelta(hours=24))
    return load


@pytest.mark.parametrize("publish", PUBLISHES)
@pytest.mark.parametrize("source", ["orders", "order_items"])
def test_either_publish_copies_the_window_and_keeps_the_indexes(app_db, warehouse, source, publish):
    table = SYNC_BY_SOURCE[source]
    before = indexes(warehouse.dsn, table.target)
    load = prepare(app_db, warehouse, source, publish)
    counts, stats = synced(app_db, warehouse, source, *EVERYTHING, run_id="full", load=load)
    assert stats["method"] == publish.split()[0]
    [(expected,)] = query(app_db, f"SELECT count(*) FROM {source}")
    assert counts.rows_in == counts.rows_loaded == expected > 0
    assert same_rows(app_db, warehouse.dsn, table)
    assert indexes(warehouse.dsn, table.target) == before, "the same indexes and constraints, rebuilt"
    assert query(warehouse.dsn, f"SELECT DISTINCT _run_id FROM {table.target}") == [("full",)]
    assert query(
        warehouse.dsn,
        "SELECT count(*) FROM pg_attrdef WHERE adrelid = %s::regclass",
        (table.target,),
    ) == [(0,)], "the load's column defaults are gone"


@pytest.mark.parametrize("publish", PUBLISHES)
def test_either_publish_rejects_the_same_rows_with_their_reasons(app_db, warehouse, publish):
    load = prepare(app_db, warehouse, "orders", publish)
    query(app_db, "ALTER TABLE orders DROP CONSTRAINT orders_status_check")  # the source lets a bad row through
    [(first,), (second,), (third,)] = query(app_db, "SELECT order_id FROM orders ORDER BY order_id LIMIT 3")
    query(app_db, "UPDATE orders SET status = 'lost' WHERE order_id = %s", (first,))
    query(app_db, "UPDATE orders SET currency = 'usd' WHERE order_id = %s", (second,))
    query(app_db, "UPDATE orders SET status = 'lost', currency = 'US' WHERE order_id = %s", (third,))
    counts, stats = synced(app_db, warehouse, "orders", *EVERYTHING, ratio=0.5, load=load)
    assert stats["method"] == publish.split()[0]
    assert counts.rejected_by_reason == {"bad_enum:status": 2, "bad_format:currency": 1}
    assert counts.rows_in == counts.rows_loaded + counts.rows_rejected
    rejects = query(warehouse.dsn, "SELECT locator, reason, raw_record::jsonb FROM ops.rejected_rows ORDER BY 1")
    assert [(locator, reason) for locator, reason, _ in rejects] == sorted(
        [
            (f"app_db:orders/order_id={first}", "bad_enum:status"),
            (f"app_db:orders/order_id={second}", "bad_format:currency"),
            (f"app_db:orders/order_id={third}", "bad_enum:status"),  # the first broken rule is the reason
        ]
    )
    assert {raw["order_id"]: (raw["status"], raw["currency"]) for _, _, raw in rejects}[third] == ("lost", "US")
    bad = f"order_id IN ({first}, {second}, {third})"
    if not PUBLISHES[publish][0]:  # an empty target: a rejected row never reaches it
        assert query(warehouse.dsn, f"SELECT count(*) FROM core.fact_orders WHERE {bad}") == [(0,)]
    assert same_rows(app_db, warehouse.dsn, SYNC_BY_SOURCE["orders"], where=f"NOT ({bad})")


def test_newer_wins_both_ways_on_an_overlap(app_db, warehouse):
    sync(app_db, warehouse, "orders", *EVERYTHING)
    [(newer, _), (older, updated)] = query(app_db, "SELECT order_id, updated_at FROM orders ORDER BY order_id LIMIT 2")
    # the warehouse holds a newer version of one order than the source sends, the source a newer of another
    query(
        warehouse.dsn,
        "UPDATE core.fact_orders SET status = 'shipped', updated_at = updated_at + interval '1 day' "
        "WHERE order_id = %s",
        (newer,),
    )
    query(app_db, "UPDATE orders SET status = 'refunded', updated_at = %s WHERE order_id = %s", (updated, older))
    earlier = "UPDATE core.fact_orders SET updated_at = updated_at - interval '1 hour' WHERE order_id = %s"
    query(warehouse.dsn, earlier, (older,))
    _, stats = synced(app_db, warehouse, "orders", *EVERYTHING, run_id="again")
    assert stats["method"] == "upsert"
    assert query(warehouse.dsn, "SELECT status, _run_id FROM core.fact_orders WHERE order_id = %s", (newer,)) == [
        ("shipped", "run")
    ], "the warehouse's newer row stays"
    assert query(warehouse.dsn, "SELECT status, _run_id FROM core.fact_orders WHERE order_id = %s", (older,)) == [
        ("refunded", "again")
    ], "the source's newer row wins"
    assert same_rows(app_db, warehouse.dsn, SYNC_BY_SOURCE["orders"], where=f"order_id <> {newer}")


def test_a_rerun_of_the_same_window_leaves_identical_rows(app_db, warehouse):
    table = SYNC_BY_SOURCE["order_items"]
    _, stats = synced(app_db, warehouse, "order_items", *EVERYTHING, run_id="first")
    assert stats["method"] == "load"
    once = table_checksum(warehouse.dsn, table.target, "order_id, line_no")
    before = indexes(warehouse.dsn, table.target)
    counts, stats = synced(app_db, warehouse, "order_items", *EVERYTHING, run_id="second")
    assert stats["method"] == "upsert"
    assert table_checksum(warehouse.dsn, table.target, "order_id, line_no") == once
    assert counts.rows_loaded == once[0]
    assert indexes(warehouse.dsn, table.target) == before
    # equal updated_at: the rerun's copy wins (as it always did), so the rows carry the rerun's id
    assert query(warehouse.dsn, f"SELECT DISTINCT _run_id FROM {table.target}") == [("second",)]


def test_a_refused_load_publishes_nothing_and_records_the_rejects(app_db, warehouse):
    from acme_pipelines.accounting import TooManyRejectsError

    before = indexes(warehouse.dsn, "core.fact_orders")
    query(app_db, "UPDATE orders SET currency = 'usd' WHERE order_id %% 10 = 0")
    [(bad,)] = query(app_db, "SELECT count(*) FROM orders WHERE currency = 'usd'")
    with pytest.raises(TooManyRejectsError):
        sync(app_db, warehouse, "orders", *EVERYTHING, ratio=0.01)
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_orders") == [(0,)]
    assert indexes(warehouse.dsn, "core.fact_orders") == before
    assert query(warehouse.dsn, "SELECT reason, count(*) FROM ops.rejected_rows GROUP BY 1") == [
        ("bad_format:currency", bad)
    ]
    [(status, rows_in, rows_loaded, rows_rejected)] = query(
        warehouse.dsn, "SELECT status, rows_in, rows_loaded, rows_rejected FROM ops.load_audit"
    )
    assert (status, rows_rejected) == ("failed", bad)
    assert rows_in == rows_loaded + rows_rejected


def test_an_empty_target_the_load_cannot_take_is_upserted(app_db, warehouse):
    """A column whose binary form is not the contract type's; a foreign key to the target."""
    query(warehouse.dsn, "ALTER TABLE core.fact_order_items ALTER COLUMN line_no TYPE bigint")
    _, stats = synced(app_db, warehouse, "order_items", *EVERYTHING)
    assert stats["method"] == "upsert"
    assert same_rows(app_db, warehouse.dsn, SYNC_BY_SOURCE["order_items"])
    query(warehouse.dsn, "CREATE TABLE ops.order_notes (order_id bigint REFERENCES core.fact_orders)")
    _, stats = synced(app_db, warehouse, "orders", *EVERYTHING)
    assert stats["method"] == "upsert"
    assert same_rows(app_db, warehouse.dsn, SYNC_BY_SOURCE["orders"])

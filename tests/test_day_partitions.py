"""The fact tables' day partitions on the real PostgreSQL: a day's publish swaps one partition, other days are
not touched, keys stay unique across days, and a warehouse made before partitioning is converted with every row."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import psycopg2
import pytest
from psycopg2.errors import LockNotAvailable

from acme_pipelines import day_partitions
from acme_pipelines.backends import load_partition
from acme_pipelines.contract import EVENTS
from conftest import query, table_checksum
from test_landing_load import DAY, EVENT, HEADER, add_fx, audit, load_payments, write

pytestmark = pytest.mark.integration

DAY2 = DAY + timedelta(days=1)


def payments(ids: range, day: date) -> str:
    rows = (f"{i},{i},{i % 100}.25,USD,card,captured,{day.isoformat()}T10:00:00Z" for i in ids)
    return HEADER + "\n" + "\n".join(rows) + "\n"


def relfilenode(dsn: str, name: str) -> int:
    return query(dsn, "SELECT relfilenode FROM pg_class WHERE oid = to_regclass(%s)", (name,))[0][0]


def test_a_day_publish_replaces_only_that_days_partition(warehouse, tmp_path):
    write(tmp_path, "payments", "part-000.csv", payments(range(1, 1001), DAY))
    write(tmp_path, "payments", "part-000.csv", payments(range(1001, 2001), DAY2), day=DAY2)
    load_payments(warehouse, tmp_path, DAY)
    load_payments(warehouse, tmp_path, DAY2)
    first = day_partitions.partition_name("core.fact_payments", DAY)
    second = day_partitions.partition_name("core.fact_payments", DAY2)
    day1_file, day2_file = relfilenode(warehouse.dsn, first), relfilenode(warehouse.dsn, second)

    load_payments(warehouse, tmp_path, DAY2, run_id="rerun")  # the direct path: a new partition swapped in

    assert relfilenode(warehouse.dsn, first) == day1_file  # the other day's storage was not touched
    assert relfilenode(warehouse.dsn, second) != day2_file  # this day's partition is a new table
    by_day = "SELECT dt, count(*), min(_run_id) FROM core.fact_payments GROUP BY dt ORDER BY dt"
    assert query(warehouse.dsn, by_day) == [(DAY, 1000, "run-1"), (DAY2, 1000, "rerun")]
    partitions = query(
        warehouse.dsn,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'core.fact_payments'::regclass ORDER BY 1",
    )
    assert partitions == [
        ("fact_payments_p20261101", "FOR VALUES FROM ('2026-11-01') TO ('2026-11-02')"),
        ("fact_payments_p20261102", "FOR VALUES FROM ('2026-11-02') TO ('2026-11-03')"),
    ]
    # nothing left over in staging, no default values left on the swapped-in partition
    assert query(warehouse.dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]
    defaults = query(
        warehouse.dsn,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'fact_payments_p20261102' "
        "AND column_default IS NOT NULL",
    )
    assert defaults == [(0,)]
    plan = "\n".join(
        r[0] for r in query(warehouse.dsn, "EXPLAIN SELECT sum(amount) FROM core.fact_payments WHERE dt = %s", (DAY,))
    )
    assert "fact_payments_p20261101" in plan
    assert "fact_payments_p20261102" not in plan


def test_a_rerun_blocked_by_a_long_query_gives_up_and_its_retry_succeeds(warehouse, tmp_path, monkeypatch):
    write(tmp_path, "payments", "part-000.csv", payments(range(1, 101), DAY))
    load_payments(warehouse, tmp_path, DAY)
    before = table_checksum(warehouse.dsn, "core.fact_payments", "payment_id")
    monkeypatch.setattr(day_partitions, "EXCHANGE_LOCK_TIMEOUT", "1s")
    reader = psycopg2.connect(warehouse.dsn)  # a long report: its transaction holds the table
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM core.fact_payments")
        with pytest.raises(LockNotAvailable):
            load_payments(warehouse, tmp_path, DAY, run_id="rerun")
        with reader.cursor() as cur:  # the reader was never blocked, and saw the old day throughout
            cur.execute("SELECT min(_run_id), count(*) FROM core.fact_payments")
            assert cur.fetchone() == ("run-1", 100)
    finally:
        reader.close()
    assert table_checksum(warehouse.dsn, "core.fact_payments", "payment_id") == before
    assert load_payments(warehouse, tmp_path, DAY, run_id="rerun").rows_loaded == 100  # the retry
    assert query(warehouse.dsn, "SELECT min(_run_id), count(*) FROM core.fact_payments") == [("rerun", 100)]
    assert query(warehouse.dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]


def test_a_new_days_first_load_does_not_wait_for_running_queries(warehouse, tmp_path):
    from acme_pipelines.warehouse import WarehouseHook

    write(tmp_path, "payments", "part-000.csv", payments(range(1, 101), DAY))
    load_payments(warehouse, tmp_path, DAY)
    staged = payments(range(101, 201), DAY2) + "150,1,1.00,USD,card,captured,2026-11-02T11:00:00Z\n"  # a repeated key
    write(tmp_path / "staged", "payments", "part-000.csv", staged, day=DAY2)
    write(tmp_path / "direct", "payments", "part-000.csv", payments(range(201, 301), DAY + timedelta(days=2)),
          day=DAY + timedelta(days=2))  # fmt: skip
    # any lock wait over 2 s fails the load instead of hanging the test
    impatient = WarehouseHook(dsn=f"{warehouse.dsn}?options=-c%20lock_timeout%3D2s")
    reader = psycopg2.connect(warehouse.dsn)  # a long report holds the table throughout
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM core.fact_payments")
        assert load_payments(impatient, tmp_path / "staged", DAY2).rows_rejected == 1  # the staged path
        assert load_payments(impatient, tmp_path / "direct", DAY + timedelta(days=2)).rows_loaded == 100
    finally:
        reader.close()
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(300,)]


def test_a_key_another_day_holds_moves_to_the_newer_day_for_events_too(warehouse, tmp_path):
    other = {**EVENT, "event_id": "1b6f1c1e-3a4f-4b8e-9a7e-2f1d5c6b7a81"}
    later = {**EVENT, "occurred_at": f"{DAY2.isoformat()}T09:00:00Z", "event_type": "checkout"}
    write(tmp_path, "events", "part-000.jsonl", "\n".join(json.dumps(e) for e in (EVENT, other)) + "\n")
    write(tmp_path, "events", "part-000.jsonl", json.dumps(later) + "\n", day=DAY2)
    for day, run in ((DAY, "run-1"), (DAY2, "run-2"), (DAY, "run-3")):  # the older day's rerun comes last
        result = load_partition(
            warehouse, EVENTS, tmp_path, day, audit(run, "landing:events", day), max_reject_ratio=1.0
        )
        assert result.counts.rows_in == result.counts.rows_loaded
    rows = query(warehouse.dsn, "SELECT event_id, event_type, dt FROM core.fact_events ORDER BY event_id")
    assert rows == [(EVENT["event_id"], "checkout", DAY2), (other["event_id"], "page_view", DAY)]


def test_keys_in_other_days_reads_only_the_range_of_the_new_keys(warehouse, tmp_path):
    write(tmp_path, "payments", "part-000.csv", payments(range(1, 501), DAY))
    load_payments(warehouse, tmp_path, DAY)
    index_reads = "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'fact_payments_p20261101_pkey'"
    before = query(warehouse.dsn, index_reads)[0][0]
    with warehouse.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE staging.probe (payment_id bigint)")
        cur.execute("INSERT INTO staging.probe SELECT generate_series(400, 600)")
        assert day_partitions.keys_in_other_days(cur, "core.fact_payments", "staging.probe", DAY2) == 101
        assert day_partitions.keys_in_other_days(cur, "core.fact_payments", "staging.probe", DAY) == 0  # own day
        cur.execute("SELECT pg_stat_force_next_flush()")
        conn.rollback()
    deadline = time.monotonic() + 10
    while (read := query(warehouse.dsn, index_reads)[0][0] - before) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the counters reach the view when the session goes idle
    # keys 400..500 of the other day's 1..500: its key index was read over that range, not all 500 (a few more
    # were seen under load, 104 once; likely the planner probing the index's ends, not verified)
    assert 0 < read <= 101 + 10


def test_a_warehouse_made_before_partitioning_is_converted_with_every_row(make_database, tmp_path):
    from acme_pipelines import migrations
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse import WarehouseHook

    dsn = make_database()
    old_ddl = """
        CREATE SCHEMA core;
        CREATE TABLE core.fact_payments (payment_id bigint PRIMARY KEY, order_id bigint NOT NULL,
            amount numeric(12, 2) NOT NULL, currency char(3) NOT NULL, method text NOT NULL, status text NOT NULL,
            paid_at timestamptz NOT NULL, amount_usd numeric(14, 2) NOT NULL, dt date NOT NULL,
            _run_id text NOT NULL, _loaded_at timestamptz NOT NULL);
        CREATE INDEX fact_payments_dt ON core.fact_payments (dt);
        INSERT INTO core.fact_payments
        SELECT i, i, 1.50, 'USD', 'card', 'captured', d + time '10:00', 1.50, d, 'old', now()
        FROM generate_series(1, 3000) i, LATERAL (SELECT date '2026-10-30' + (i % 3)) AS x(d);
    """
    hook = WarehouseHook(dsn=dsn)
    with hook.scoped_connection() as conn:
        with conn.cursor() as cur:
            cur.execute(old_ddl)
        conn.commit()
    before = table_checksum(dsn, "core.fact_payments", "payment_id")

    applied = [str(m) for m in upgrade(hook)]  # converted in 0001's transaction
    assert applied[0] == "0001_warehouse_schema"
    assert applied == [str(m) for m in migrations.discover()]
    assert upgrade(hook) == []  # a second run finds nothing to apply or convert

    assert query(dsn, "SELECT relkind FROM pg_class WHERE oid = 'core.fact_payments'::regclass") == [("p",)]
    assert table_checksum(dsn, "core.fact_payments", "payment_id") == before
    assert query(dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'core.fact_payments'::regclass") == [(3,)]
    assert query(dsn, "SELECT to_regclass('core.fact_payments_unpartitioned')") == [(None,)]
    # and loads run on it: a new day through the direct path
    write(tmp_path, "payments", "part-000.csv", payments(range(5001, 5101), DAY2), day=DAY2)
    assert load_payments(hook, tmp_path, DAY2).rows_loaded == 100
    assert query(dsn, "SELECT count(*) FROM core.fact_payments") == [(3100,)]


def test_loads_of_two_days_sharing_a_key_at_once_keep_it_once_in_the_newer_day(warehouse, tmp_path):
    """Each load checks the other days' keys, then swaps its day in; if both checked before either committed,
    the shared key would end up in both days. The per-table lock makes the check-and-swap serial."""
    import threading

    write(tmp_path, "payments", "part-000.csv", payments(range(1, 101), DAY))
    write(tmp_path, "payments", "part-000.csv", payments(range(100, 201), DAY2), day=DAY2)  # key 100 in both
    for day in (DAY, DAY2):
        add_fx(warehouse, day)
    gate = psycopg2.connect(warehouse.dsn)  # holds the table's lock until both loads wait for it
    errors: list[BaseException] = []
    try:
        with gate.cursor() as cur:
            day_partitions.lock_table(cur, "core.fact_payments")

            def load(day: date) -> None:
                try:
                    load_payments(warehouse, tmp_path, day, run_id=f"run-{day}")
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=load, args=(day,)) for day in (DAY, DAY2)]
            for thread in threads:
                thread.start()
            waiting = 0
            deadline = time.monotonic() + 30
            while waiting < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
                waiting = query(
                    warehouse.dsn,
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()",
                )[0][0]
            assert waiting == 2, "both loads built their day and wait to check the other days"
        gate.commit()
        for thread in threads:
            thread.join(60)
    finally:
        gate.close()
    assert errors == []
    assert query(warehouse.dsn, "SELECT dt FROM core.fact_payments WHERE payment_id = 100") == [(DAY2,)]
    assert query(warehouse.dsn, "SELECT count(*), count(DISTINCT payment_id) FROM core.fact_payments") == [(200, 200)]


def test_a_restore_refuses_keys_a_newer_day_published_since(warehouse, tmp_path):
    from acme_pipelines.archive import archive_partition, restore_partition

    write(tmp_path, "payments", "part-000.csv", payments(range(1, 101), DAY))
    load_payments(warehouse, tmp_path, DAY)
    archive_partition(warehouse, "core.fact_payments", DAY, tmp_path / "cold", "archive-run")
    assert query(warehouse.dsn, "SELECT count(*) FROM core.fact_payments") == [(0,)]
    write(tmp_path, "payments", "part-000.csv", payments(range(50, 51), DAY2), day=DAY2)  # key 50 again
    load_payments(warehouse, tmp_path, DAY2)

    with pytest.raises(ValueError, match="1 of its keys were published by other days"):
        restore_partition(warehouse, "core.fact_payments", DAY)

    assert query(warehouse.dsn, "SELECT payment_id, dt FROM core.fact_payments") == [(50, DAY2)]
    assert query(warehouse.dsn, "SELECT to_regclass('core.fact_payments_p20261101')") == [(None,)]  # rolled back

"""``acme_bench.cpu``: the CPU seconds ``make bench`` prints per party come from the real processes (a local
PostgreSQL: its backends and parallel workers are processes of this machine)."""

from __future__ import annotations

import os
import time

import psycopg2
import pytest

from acme_bench.cpu import CpuMeter, own_cpu, process_cpu, wait_gone

pytestmark = pytest.mark.integration

BURN = "SELECT count(*) FROM generate_series(1, 3000000) g WHERE g % 7 = 3"


def test_a_backend_is_read_as_its_connection_closes(pg_database):
    meter = CpuMeter()
    meter.start(pg_database)
    conn = psycopg2.connect(pg_database, connection_factory=meter.connection("source"))
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(BURN)
    busy = time.perf_counter() - started
    conn.close()
    result = meter.stop()
    # 3,000,000 rows counted take a backend well over 0.1 CPU-s; one process cannot use more than the wall time
    # (an unread backend, or this process read instead, fails here)
    assert 0.1 <= result["backends"]["source"] <= busy + 0.02, (result, busy)
    assert result["relay"] < 0.5 * busy, "this process only waited"


def test_parallel_workers_are_counted_apart_from_the_backends(pg_database):
    """An index build with 2 parallel workers: their time is the postmaster's reaped children's growth less the
    backends'. (Not asserted: that it is 0 without workers. Any session of the server that ends during the block
    counts there too, and make test runs three processes on this server; the bench runs alone.)"""
    setup = psycopg2.connect(pg_database)
    with setup, setup.cursor() as cur:
        cur.execute("CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 2000000) g")
    backend = setup.get_backend_pid()
    setup.close()
    wait_gone([backend])  # its CREATE TABLE's CPU is not the block's
    meter = CpuMeter()
    meter.start(pg_database)
    conn = psycopg2.connect(pg_database, connection_factory=meter.connection("warehouse"))
    with conn.cursor() as cur:
        cur.execute("SET max_parallel_maintenance_workers = 2")
        cur.execute("CREATE INDEX ON t (n)")
        cur.execute("CREATE INDEX ON t ((n % 1000))")
    conn.close()
    result = meter.stop()
    assert result["workers"] is not None, result
    assert result["workers"] > 0.05, result
    assert result["backends"]["warehouse"] > 0.05, result


def test_process_cpu_reads_this_process():
    before, mine = process_cpu(os.getpid()), own_cpu()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert process_cpu(os.getpid()) - before >= 0.2
    assert own_cpu() - mine >= 0.2

"""(e) The hourly sync's throughput: app database -> warehouse through the project's COPY stream.

Fills a fresh app database with ``orders`` and 2x as many ``order_items`` (SQL
generate_series, contract §1.1 schema), then times ``incremental_sync.sync_table``
over one window that holds every row (each timed ``alone`` run after a checkpoint, as (b)'s):

- ``alone``: each table by itself, one after the other, into an empty warehouse (the
  first sync of a new warehouse: the *load* publish). Each table's rate is its rows over
  its own seconds, with the machine to itself as (b) had it: these are the figures the
  targets compare with (b).
- ``together``: both tables at once into a second empty warehouse, as the DAG runs them
  (its ``app_db`` pool has 2 slots): each table's rows over its own seconds while the
  other runs, and all rows over the wall clock.
- ``rerun``: the same window again into the first warehouse, each table alone: every key
  is there with the same ``updated_at``, so every row is replaced through the row-by-row
  *upsert* the hourly runs take (on the whole table here: its worst case per row).
- ``source part`` and ``warehouse part``: an ``alone`` run's two ends, each by itself. The
  source part reads the window as the sync does and writes the rows to a local file; the
  warehouse part COPYs that file in 1 MiB blocks (as (b) reads its file) with the load's own
  statements around it (lock, index drop, defaults, index rebuild, commit). Each is the
  least an ``alone`` run could take if the other end cost nothing; in an ``alone`` run both
  share the machine's cores.

The ``alone`` runs and the parts are repeated (``repeat``, each into the emptied target) and the figures
compared with (b) are their medians, because one run of either moves by a third from one
minute to the next on a shared 2-core machine. Each ``alone`` run also records the CPU
seconds of the parties it keeps busy (``cpu.CpuMeter``): the source's backend, the
warehouse's backend, PostgreSQL's parallel workers, and this process (the relay).

The ``incremental_sync`` log lines are silenced: the bench prints the same phases itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from acme_bench.cpu import CpuMeter
from acme_bench.payments import checkpoint, median_run
from acme_pipelines.accounting import AuditEntry
from acme_pipelines.contract import SYNC_BY_SOURCE
from acme_pipelines.incremental_sync import _Clock, _CountingReader, _Sync, source_copy, source_session, sync_table
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse import WarehouseHook
from acme_sample_data.app_db import SCHEMA_SQL

TABLES = ("orders", "order_items")
WINDOW = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
RUNS = ("alone", "together", "rerun")
PARTS = ("source part", "warehouse part")  # an alone run's two ends, each by itself
REPEAT = 3  # alone runs (and each part's) per table; the medians are compared with (b)
PART_BLOCK = 1 << 20  # the parts write and read their file in 1 MiB blocks, as (b) reads its CSV

FILL = """
INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'Customer ' || g, 'US',
    '2026-10-01'::timestamptz, '2026-10-01'::timestamptz FROM generate_series(1, 10000) g;
INSERT INTO products SELECT g, 'SKU-' || g, 'Product ' || g, 'books', 9.99, 'USD', '2026-10-01'::timestamptz
    FROM generate_series(1, 1000) g;
INSERT INTO orders SELECT g, 1 + g %% 10000, (ARRAY['placed','paid','shipped','cancelled','refunded'])[1 + g %% 5],
    'USD', (g %% 50000) / 100.0, '2026-11-01'::timestamptz + (g %% 86400) * interval '1 second',
    '2026-11-01'::timestamptz + (g %% 86400) * interval '1 second' FROM generate_series(1, %(orders)s) g;
INSERT INTO order_items SELECT o, l, 1 + (o * l) %% 1000, 1 + o %% 3, 9.99,
    '2026-11-01'::timestamptz + (o %% 86400) * interval '1 second'
    FROM generate_series(1, %(orders)s) o, generate_series(1, 2) l;
"""


def fill(app_dsn: str, orders: int) -> float:
    """The app database's schema and rows, vacuumed as an application's rows of some age are (their hint bits
    set, frozen: else the first read of each row, the first sync's, would write them); returns the seconds."""
    started = time.perf_counter()
    with psycopg2.connect(app_dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())
        cur.execute(FILL, {"orders": orders})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (FREEZE, ANALYZE)")
    conn.close()
    return time.perf_counter() - started


class _MeteredHook(WarehouseHook):
    """The warehouse hook, its connections metered by ``meter`` when one is set."""

    meter: CpuMeter | None = None

    def _create_connection(self, conn_args: dict[str, Any]) -> Any:
        if self.meter is not None:
            conn_args = {**conn_args, "connection_factory": self.meter.connection("warehouse")}
        return super()._create_connection(conn_args)


@contextlib.contextmanager
def _metering(hook: WarehouseHook, dsn: str, metered: bool = True) -> Iterator[CpuMeter | None]:
    """A ``CpuMeter`` on ``hook``'s connections for the block, started on ``dsn``'s server after a checkpoint (as
    before every timed run); None when not ``metered`` or when the hook is not a ``_MeteredHook``."""
    if not (metered and isinstance(hook, _MeteredHook)):
        yield None
        return
    meter = CpuMeter()
    checkpoint(hook.get_uri())
    hook.meter = meter
    meter.start(dsn)
    try:
        yield meter
    finally:
        hook.meter = None


def sync_one(app_dsn: str, hook: WarehouseHook, source: str, run: str, *, metered: bool = False) -> dict[str, Any]:
    """One ``sync_table`` of ``source`` over the whole window: rows, seconds, bytes, method, phases and, when
    ``metered`` (nothing else runs), the CPU seconds of each party."""
    table = SYNC_BY_SOURCE[source]
    audit = AuditEntry("bench", f"sync_{source}", run, f"app_db:{source}", table.target, "all", datetime.now(UTC))
    stats: dict[str, Any] = {}
    with _metering(hook, app_dsn, metered) as meter:
        factory = {"connection_factory": meter.connection("source")} if meter else {}
        started = time.perf_counter()
        counts, moved = sync_table(
            lambda: psycopg2.connect(app_dsn, **factory), hook, table, *WINDOW, audit, max_reject_ratio=0.0, stats=stats
        )
        seconds = time.perf_counter() - started
    cpu = meter.stop() if meter else None
    return {
        "rows": counts.rows_loaded,
        "rows_in": counts.rows_in,
        "seconds": seconds,
        "bytes": moved,
        "cpu": cpu,
        **stats,
    }


def _part(
    rows: int, seconds: float, method: str, phases: dict[str, float], moved: int, meter: CpuMeter | None
) -> dict[str, Any]:
    """One part's figures, as ``sync_one`` returns a run's."""
    cpu = meter.stop() if meter else None
    return {
        "rows": rows,
        "rows_in": rows,
        "seconds": seconds,
        "method": method,
        "phases": phases,
        "bytes": moved,
        "cpu": cpu,
    }


def source_part(app_dsn: str, source: str, path: Path) -> dict[str, Any]:
    """The source's part of one load by itself: the window's good rows, read as the sync reads them (its session,
    its SELECT, psycopg2's COPY TO STDOUT), written to ``path`` instead of a warehouse; with the CPU seconds of
    the source's backend and of this process."""
    meter = CpuMeter()
    checkpoint(app_dsn)
    meter.start(app_dsn)
    started = time.perf_counter()
    conn = source_session(psycopg2.connect(app_dsn, connection_factory=meter.connection("source")))
    try:
        with conn.cursor() as cur, path.open("wb", buffering=PART_BLOCK) as out:
            cur.copy_expert(source_copy(SYNC_BY_SOURCE[source], *WINDOW, rows="good").as_string(conn), out)
            rows = cur.rowcount
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    return _part(rows, seconds, "-", {"copy": seconds}, path.stat().st_size, meter)


def warehouse_part(hook: WarehouseHook, source: str, rows_file: Path) -> dict[str, Any]:
    """The warehouse's part of one load by itself (module docstring): the load's own steps (``_Sync._load_rows``,
    ``_build_indexes``) with ``rows_file`` (``source_part``'s) as the COPY's input; rows, seconds, bytes read,
    phases and the CPU seconds of each party."""
    table = SYNC_BY_SOURCE[source]
    audit = AuditEntry(
        "bench", f"sync_{source}", "warehouse part", f"app_db:{source}", table.target, "all", datetime.now(UTC)
    )
    phases: dict[str, float] = {}
    with _metering(hook, hook.get_uri()) as meter:
        started = time.perf_counter()
        with hook.scoped_connection() as conn, conn.cursor() as cur, rows_file.open("rb") as rows:
            load = _Sync(cur, None, hook, table, *WINDOW, audit, 0.0, _Clock(phases))
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(load.target))

            def send(copy: str) -> int:
                reader = _CountingReader(rows)
                cur.copy_expert(copy, reader, size=PART_BLOCK)
                return reader.bytes

            loaded, rebuild = load._load_rows(send)
            load._build_indexes(rebuild)
            conn.commit()
            load.clock.lap("commit")
        seconds = time.perf_counter() - started
    return _part(loaded, seconds, "load", phases, load.moved, meter)


def _empty(hook: WarehouseHook, source: str) -> None:
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {SYNC_BY_SOURCE[source].target}")
        conn.commit()


def run(
    app_dsn: str, warehouse_dsns: tuple[str, str], orders: int, workdir: Path, repeat: int = REPEAT
) -> dict[str, Any]:
    """Fill the app database, then the runs and the parts (module docstring) into two fresh warehouses; the parts'
    files go to ``workdir``."""
    logging.getLogger("acme_pipelines.incremental_sync").setLevel(logging.WARNING)
    filled = fill(app_dsn, orders)
    first, second = (_MeteredHook(dsn=dsn) for dsn in warehouse_dsns)
    upgrade(first)
    upgrade(second)
    results: dict[str, Any] = {"fill_seconds": filled}
    repeats: dict[str, list[dict[str, Any]]] = {s: [] for s in TABLES}
    for attempt in range(repeat):
        for source in TABLES:
            if attempt:
                _empty(first, source)
            repeats[source].append(sync_one(app_dsn, first, source, "alone", metered=True))
    results["alone"] = {"tables": {s: median_run(runs) for s, runs in repeats.items()}, "repeats": repeats}

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = dict(zip(TABLES, pool.map(lambda s: sync_one(app_dsn, second, s, "together"), TABLES), strict=True))
    results["together"] = {"tables": together, "wall_seconds": time.perf_counter() - started}

    results["rerun"] = {"tables": {s: sync_one(app_dsn, first, s, "rerun") for s in TABLES}}

    parts: dict[str, dict[str, list[dict[str, Any]]]] = {p: {s: [] for s in TABLES} for p in PARTS}
    for source in TABLES:
        rows_file = workdir / f"{source}.copy"
        for _ in range(repeat):
            parts["source part"][source].append(source_part(app_dsn, source, rows_file))
        for _ in range(repeat):
            _empty(first, source)
            parts["warehouse part"][source].append(warehouse_part(first, source, rows_file))
        rows_file.unlink()
    for part, runs in parts.items():
        results[part] = {"tables": {s: median_run(r) for s, r in runs.items()}, "repeats": runs}
    results["parts"] = PARTS
    return results

"""(e) The hourly sync's throughput: app database -> warehouse through the project's COPY stream.

Fills a fresh app database with ``orders`` and 2x as many ``order_items`` (SQL
generate_series, contract §1.1 schema), then times ``incremental_sync.sync_table``
over one window that holds every row:

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

The ``incremental_sync`` log lines are silenced: the bench prints the same phases itself.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg2

from acme_pipelines.accounting import AuditEntry
from acme_pipelines.contract import SYNC_BY_SOURCE
from acme_pipelines.incremental_sync import sync_table
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse import WarehouseHook
from acme_sample_data.app_db import SCHEMA_SQL

TABLES = ("orders", "order_items")
WINDOW = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
RUNS = ("alone", "together", "rerun")

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
ANALYZE;
"""


def fill(app_dsn: str, orders: int) -> float:
    """The app database's schema and rows; returns the seconds it took."""
    started = time.perf_counter()
    with psycopg2.connect(app_dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())
        cur.execute(FILL, {"orders": orders})
    conn.close()
    return time.perf_counter() - started


def sync_one(app_dsn: str, hook: WarehouseHook, source: str, run: str) -> dict[str, Any]:
    """One ``sync_table`` of ``source`` over the whole window: rows, seconds, bytes, method, phases."""
    table = SYNC_BY_SOURCE[source]
    audit = AuditEntry("bench", f"sync_{source}", run, f"app_db:{source}", table.target, "all", datetime.now(UTC))
    stats: dict[str, Any] = {}
    started = time.perf_counter()
    counts, moved = sync_table(
        lambda: psycopg2.connect(app_dsn), hook, table, *WINDOW, audit, max_reject_ratio=0.0, stats=stats
    )
    seconds = time.perf_counter() - started
    return {"rows": counts.rows_loaded, "rows_in": counts.rows_in, "seconds": seconds, "bytes": moved, **stats}


def run(app_dsn: str, warehouse_dsns: tuple[str, str], orders: int) -> dict[str, Any]:
    """Fill the app database, then the three runs (module docstring) into two fresh warehouses."""
    logging.getLogger("acme_pipelines.incremental_sync").setLevel(logging.WARNING)
    filled = fill(app_dsn, orders)
    first, second = (WarehouseHook(dsn=dsn) for dsn in warehouse_dsns)
    upgrade(first)
    upgrade(second)
    results: dict[str, Any] = {"fill_seconds": filled}
    results["alone"] = {"tables": {s: sync_one(app_dsn, first, s, "alone") for s in TABLES}}

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = dict(zip(TABLES, pool.map(lambda s: sync_one(app_dsn, second, s, "together"), TABLES), strict=True))
    results["together"] = {"tables": together, "wall_seconds": time.perf_counter() - started}

    results["rerun"] = {"tables": {s: sync_one(app_dsn, first, s, "rerun") for s in TABLES}}
    return results

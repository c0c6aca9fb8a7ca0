"""(e) The hourly sync's throughput: app database -> warehouse through the project's COPY stream.

Fills a fresh app database with ``orders`` and 2x as many ``order_items`` (SQL
generate_series, contract §1.1 schema), then times ``incremental_sync.sync_table``
over one window that holds every row, into a fresh warehouse: the two tables
at once, as the DAG runs them (its ``app_db`` pool has 2 slots), and the
throughput is all rows over the wall-clock time.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg2

from acme_pipelines.contract import SYNC_BY_SOURCE
from acme_pipelines.incremental_sync import sync_table
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse import AuditEntry, WarehouseHook
from acme_sample_data.app_db import SCHEMA_SQL

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


def run(app_dsn: str, warehouse_dsn: str, orders: int) -> dict[str, Any]:
    with psycopg2.connect(app_dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())
        cur.execute(FILL, {"orders": orders})
    hook = WarehouseHook(dsn=warehouse_dsn)
    upgrade(hook)
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)

    def one(source: str) -> tuple[str, dict[str, Any]]:
        table = SYNC_BY_SOURCE[source]
        audit = AuditEntry(
            "bench", f"sync_{source}", "bench", f"app_db:{source}", table.target, "all", datetime.now(UTC)
        )
        started = time.perf_counter()
        counts, moved = sync_table(
            lambda: psycopg2.connect(app_dsn), hook, table, start, end, audit, max_reject_ratio=0.0
        )
        return source, {"rows": counts.rows_loaded, "seconds": time.perf_counter() - started, "bytes": moved}

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(one, ("orders", "order_items")))
    return {"tables": results, "wall_seconds": time.perf_counter() - started}

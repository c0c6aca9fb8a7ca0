"""Query readers stream Arrow batches from PostgreSQL (server-side cursor) and SQLite files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import psycopg2
import pytest

from acme_pipelines.db_readers import postgres_window_batches, sqlite_query_batches
from acme_sample_data.build import build
from acme_sample_data.generator import GeneratorConfig
from conftest import query


@pytest.mark.unit
def test_sqlite_file_in_batches(tmp_path):
    path = tmp_path / "legacy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT, amount REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", i / 4) for i in range(10)])
    batches = list(sqlite_query_batches(path, "SELECT * FROM t WHERE id >= ? ORDER BY id", (2,), batch_rows=3))
    assert [b.num_rows for b in batches] == [3, 3, 2]
    assert batches[0].schema.names == ["id", "name", "amount"]
    assert batches[-1].column("amount").to_pylist() == [2.0, 2.25]
    with pytest.raises(sqlite3.OperationalError):  # opened read-only
        list(sqlite_query_batches(path, "DELETE FROM t"))


@pytest.mark.integration
def test_postgres_window_uses_a_server_side_cursor(tmp_path, pg_database):
    build(GeneratorConfig(start=date(2026, 11, 1), days=1, scale=0.2, seed=2), tmp_path / "l", pg_database)
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 12, tzinfo=UTC)
    conn = psycopg2.connect(pg_database)
    try:
        batches = list(postgres_window_batches(conn, "orders", ["order_id", "status"], start, end, batch_rows=20))
    finally:
        conn.close()
    [(expected,)] = query(
        pg_database, "SELECT count(*) FROM orders WHERE updated_at >= %s AND updated_at < %s", (start, end)
    )
    assert sum(b.num_rows for b in batches) == expected > 20
    assert max(b.num_rows for b in batches) == 20, "fetched in batches, not all at once"

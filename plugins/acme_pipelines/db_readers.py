"""Stream query results from PostgreSQL (server-side cursor) or a SQLite file as Arrow batches.

Memory is bounded by ``batch_rows``: PostgreSQL rows stay on the server until
fetched (a named cursor), SQLite rows are fetched ``batch_rows`` at a time.
The hourly sync moves whole tables with COPY streams instead (faster); these
readers serve sources that need rows in Python, e.g. to validate with Arrow.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from psycopg2 import sql


def cursor_batches(cursor: Any, batch_rows: int, schema: pa.Schema | None = None) -> Iterator[pa.RecordBatch]:
    """An executed DB-API cursor's rows, ``batch_rows`` at a time, as Arrow batches (of ``schema`` if given)."""
    names: list[str] | None = None
    while rows := cursor.fetchmany(batch_rows):
        names = names or [d[0] for d in cursor.description]
        columns = list(zip(*rows, strict=True))
        if schema is None:  # types inferred per batch
            yield pa.RecordBatch.from_arrays([pa.array(col) for col in columns], names=names)
        else:  # fixed types: every batch has the same schema (files written batch by batch need that)
            arrays = [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def postgres_query_batches(
    conn: Any,
    query: str | sql.Composable,
    params: Sequence[Any] | dict | None = None,
    batch_rows: int = 50_000,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """Run ``query`` through a server-side (named) cursor and yield Arrow batches (of ``schema`` if given)."""
    with conn.cursor(name=f"acme_{uuid.uuid4().hex[:12]}") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(query, params)
        yield from cursor_batches(cursor, batch_rows, schema)


def postgres_window_batches(
    conn: Any,
    table: str,
    columns: Sequence[str],
    start: datetime,
    end: datetime,
    batch_rows: int = 50_000,
    schema: pa.Schema | None = None,
) -> Iterator[pa.RecordBatch]:
    """Rows of ``table`` with ``start <= updated_at < end`` (the indexed column), in key-independent order."""
    query = sql.SQL("SELECT {} FROM {} WHERE updated_at >= %s AND updated_at < %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(*table.split("."))
    )
    yield from postgres_query_batches(conn, query, (start, end), batch_rows, schema)


def sqlite_query_batches(
    path: str | Path, query: str, params: Sequence[Any] = (), batch_rows: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """Read a SQLite file (opened read-only) and yield Arrow batches."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        yield from cursor_batches(conn.execute(query, params), batch_rows)
    finally:
        conn.close()

"""Create the application database (CONTRACT.md §1.1) and fill it with COPY."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "app" / "schema.sql"


def recreate_database(admin_dsn: str, dbname: str) -> None:
    """Drop (if present) and create ``dbname``, then the contract's tables."""
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    finally:
        admin.close()


def create_schema(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())


def copy_rows(conn: Any, table: str, columns: tuple[str, ...], rows: Iterable[tuple], batch: int = 50_000) -> int:
    """Stream rows into ``table`` with COPY in batches; returns the row count."""
    count = 0
    buf = io.StringIO()
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur:

        def flush() -> None:
            buf.seek(0)
            cur.copy_expert(statement.as_string(conn), buf)
            buf.seek(0)
            buf.truncate()

        for row in rows:
            buf.write(",".join(_csv_field(v) for v in row) + "\n")
            count += 1
            if count % batch == 0:
                flush()
        flush()
    return count


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if any(c in text for c in ',"\n\r') or text == "":
        return '"' + text.replace('"', '""') + '"'
    return text

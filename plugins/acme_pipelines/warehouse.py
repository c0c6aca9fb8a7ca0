"""WarehouseHook: connections, COPY of Arrow batches, and row accounting.

The warehouse is the ``warehouse`` Airflow connection (PostgreSQL locally). Its
schema is changed only by the migrations (``acme_pipelines.migrations``, run by the
setup steps); tasks check its version with ``migrations.require_current``.
Everything that writes goes through here: Arrow batches are encoded to CSV by
Arrow's C++ writer and streamed with ``COPY ... FROM STDIN``; publishing is
one transaction per load (see the loaders), so readers see the old state or
the new one. Every session runs in UTC.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
from airflow.providers.postgres.hooks.postgres import PostgresHook
from psycopg2 import sql

from acme_pipelines.accounting import AuditEntry, LoadCounts
from acme_pipelines.db_readers import postgres_query_batches


@dataclass(frozen=True)
class EncodedRows:
    """Rows encoded for ``COPY ... FROM STDIN`` in ``format`` (csv or binary), with the columns they fill."""

    columns: list[str]
    data: bytes
    format: str = "csv"


def encode_csv(data: pa.Table, columns: Sequence[str] | None = None) -> EncodedRows:
    """Arrow's C++ CSV writer: headerless, RFC 4180, nulls as empty fields (COPY's NULL)."""
    columns = list(columns or data.column_names)
    buf = io.BytesIO()
    pacsv.write_csv(data.select(columns), buf, pacsv.WriteOptions(include_header=False))
    return EncodedRows(columns, buf.getvalue())


def encode_binary(data: pa.Table, json_columns: Sequence[str] = ()) -> EncodedRows:
    """PostgreSQL's binary COPY format, by pgpq (Rust), from typed Arrow columns.

    PostgreSQL reads binary integers, numerics and timestamps without parsing
    text: on a 2,000,000-row payments file its COPY took 1.5 s from binary
    against 2.2 s from CSV. ``json_columns`` (strings) are sent as jsonb.
    """
    import pgpq
    from pgpq import encoders, schema

    fields = {f.name: f for f in data.schema}
    overrides = {
        name: encoders.StringEncoderBuilder.new_with_output(fields[name], schema.Jsonb()) for name in json_columns
    }
    encoder = (
        pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(data.schema, {**_inferred(data.schema), **overrides})
        if overrides
        else pgpq.ArrowToPostgresBinaryEncoder(data.schema)
    )
    parts = [encoder.write_header(), *(encoder.write_batch(b) for b in data.to_batches()), encoder.finish()]
    return EncodedRows(list(data.column_names), b"".join(parts), "binary")


def _inferred(schema: pa.Schema) -> dict[str, Any]:
    import pgpq

    return {f.name: pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in schema}


class ScopedConnection:
    """``with hook.scoped_connection() as conn``: a connection from ``get_conn()`` that rolls back what is open on
    an error and is closed either way. Shared by the PostgreSQL and the Snowflake warehouse hooks."""

    @contextmanager
    def scoped_connection(self) -> Iterator[Any]:
        conn = self.get_conn()  # type: ignore[attr-defined]
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


class WarehouseHook(ScopedConnection, PostgresHook):
    """The warehouse on PostgreSQL: the postgres provider's ``PostgresHook`` (host, login, database, every
    libpq extra such as ``sslmode``, ``options`` or ``application_name``, ``iam`` authentication, from the
    connection), always on psycopg2, with the interface the loaders and jobs use.

    psycopg2 because the COPY streams here (``copy_expert`` of binary COPY between two connections) are
    psycopg2's; the provider hands out psycopg 3 connections whenever that driver is installed, and it is
    (through Airflow). The provider's ``cursor`` extra (dict or namedtuple rows) is refused: the code reads
    tuples.

    :param warehouse_conn_id: Airflow connection id (default ``warehouse``).
    :param dsn: a libpq URL instead of a connection id (tests, tools).
    """

    conn_name_attr = "warehouse_conn_id"
    default_conn_name = "warehouse"
    conn_type = "postgres"
    hook_name = "Warehouse"
    backend = "postgres"  # which warehouse (backends.py, warehouse_hooks.py); the provider keeps its dialect object

    def __init__(self, warehouse_conn_id: str = default_conn_name, dsn: str | None = None, **kwargs: Any) -> None:
        super().__init__(warehouse_conn_id=warehouse_conn_id, **kwargs)  # PostgresHook's: options, database, ...
        self.dsn = dsn

    def get_conn(self) -> Any:
        """A psycopg2 connection (the provider's arguments from the connection, or ``dsn``), in UTC."""
        from psycopg2.extensions import parse_dsn

        conn = self._create_connection(parse_dsn(self.dsn)) if self.dsn else super().get_conn()
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        return conn

    def _create_connection(self, conn_args: dict[str, Any]) -> Any:
        """What ``PostgresHook.get_conn`` connects with: psycopg2 whichever driver the provider prefers."""
        import psycopg2

        if {"cursor_factory", "row_factory"} & conn_args.keys():
            raise ValueError(
                f"connection {self.get_conn_id()!r}: its extra 'cursor' is not supported for the warehouse "
                "(rows are read as tuples); remove it"
            )
        return psycopg2.connect(**{"application_name": "acme_pipelines", **conn_args})

    def get_uri(self) -> str:
        """``dsn`` when given, else the provider's URI of the connection."""
        return self.dsn or super().get_uri()

    def _psycopg3_only(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "WarehouseHook's connections are psycopg2, the provider's bulk methods here expect psycopg 3: use "
            "copy_arrow/copy_encoded, or the provider's PostgresHook"
        )

    # the provider picks these methods' driver once per process (psycopg 3, installed here), not per connection
    copy_expert = bulk_load = bulk_dump = insert_rows = _psycopg3_only

    @cached_property
    def _location(self) -> tuple[str | None, int, str]:
        """(host, port, database) of the warehouse, from the DSN or one lookup of the Airflow connection."""
        if self.dsn:
            from urllib.parse import urlsplit

            parts = urlsplit(self.dsn)
            return parts.hostname, parts.port or 5432, parts.path.lstrip("/")
        conn = self.connection  # DbApiHook's: the one lookup get_conn also uses
        return conn.host, conn.port or 5432, conn.schema or "warehouse"

    def namespace(self) -> str:
        """OpenLineage namespace of this warehouse: ``postgres://host:port``."""
        host, port, _ = self._location
        return f"postgres://{host}:{port}"

    def database_name(self) -> str:
        return self._location[2]

    def dataset(self, table: str) -> tuple[str, str]:
        """The OpenLineage dataset of one of its tables: (``postgres://host:port``, ``<database>.<table>``)."""
        return self.namespace(), f"{self.database_name()}.{table}"

    @staticmethod
    def begin(cur: Any) -> None:
        """psycopg2 opens a transaction with the first statement; nothing to do (Snowflake needs BEGIN)."""

    # -- reading: the SQL files (include/sql) are PostgreSQL, run here as written ----------
    @staticmethod
    def statements(text: str) -> list[str]:
        """A PostgreSQL SQL text as this warehouse runs it: one script, as written."""
        return [text]

    @staticmethod
    def query_rows(cur: Any, text: str, params: Any = None) -> list[dict[str, Any]]:
        """The rows of a PostgreSQL query as dicts by lower-case column name."""
        cur.execute(text, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @staticmethod
    def query_batches(
        conn: Any, text: str, params: Any = None, batch_rows: int = 50_000, schema: pa.Schema | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The rows of a PostgreSQL query as Arrow batches, from a server-side cursor (bounded memory)."""
        return postgres_query_batches(conn, text, params, batch_rows, schema)

    # -- what the jobs' portable SQL leaves to the dialect --------------------------------
    @staticmethod
    def array_placeholder(element_type: str) -> str:
        """An array parameter's placeholder, for ``array_param``'s value: ``CAST(%s AS <element_type>[])``."""
        return f"CAST(%s AS {element_type}[])"

    @staticmethod
    def array_param(values: Sequence[Any]) -> Any:
        return list(values)  # psycopg2 sends a list as an ARRAY

    @staticmethod
    def array_result(value: Any) -> list[Any]:
        """An array column's value as a list."""
        return list(value or [])

    @staticmethod
    def lock(cur: Any, resource: str) -> None:
        """One holder of ``resource`` (a table, a table's day) at a time, to the end of the transaction."""
        lock(cur, resource)

    @staticmethod
    def json_placeholder() -> str:
        """A JSON text parameter as a ``jsonb`` value."""
        return "CAST(%s AS jsonb)"

    # -- bulk movement --------------------------------------------------------------------
    @staticmethod
    def copy_arrow(cur: Any, table: str, data: pa.Table, columns: Sequence[str] | None = None) -> int:
        """COPY an Arrow table (one batch) into ``table``; returns the row count."""
        if data.num_rows == 0:
            return 0
        WarehouseHook.copy_encoded(cur, table, encode_csv(data, columns))
        return data.num_rows

    @staticmethod
    def copy_encoded(cur: Any, table: str, encoded: EncodedRows, *, freeze: bool = False) -> None:
        """COPY rows already encoded by ``encode_csv``/``encode_binary`` (encoding can happen on another thread).

        ``freeze`` writes the rows frozen, so their first readers need not rewrite every page to set hint
        bits; PostgreSQL allows it only into a table created in the same transaction.
        """
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {}{})").format(
            qualified(table),
            sql.SQL(", ").join(map(sql.Identifier, encoded.columns)),
            sql.SQL(encoded.format),
            sql.SQL(", FREEZE" if freeze else ""),
        )
        cur.copy_expert(statement.as_string(cur.connection), io.BytesIO(encoded.data), size=1 << 20)

    # -- accounting -----------------------------------------------------------------------
    @staticmethod
    def clear_rejects(cur: Any, entry: AuditEntry) -> None:
        """Drop earlier runs' rejects of this source and partition: a publish replaces them."""
        cur.execute(
            "DELETE FROM ops.rejected_rows WHERE source = %s AND partition = %s", (entry.source, entry.partition)
        )

    @staticmethod
    def record_audit(cur: Any, entry: AuditEntry, counts: LoadCounts, status: str, error: str | None) -> None:
        cur.execute(
            """
            INSERT INTO ops.load_audit (dag_id, task_id, run_id, source, target, partition, rows_in,
                rows_loaded, rows_rejected, rows_duplicate, started_at, finished_at, status, error)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                entry.dag_id,
                entry.task_id,
                entry.run_id,
                entry.source,
                entry.target,
                entry.partition,
                counts.rows_in,
                counts.rows_loaded,
                counts.rows_rejected,
                counts.rows_duplicate,
                entry.started_at,
                datetime.now(UTC),
                status,
                error,
            ),
        )


def pg_connect(dsn_or_conn_id: str) -> Any:
    """A psycopg2 connection (in UTC) from a libpq URL or an Airflow connection id, as ``WarehouseHook`` makes
    it: the app database's for the hourly sync."""
    hook = WarehouseHook(dsn=dsn_or_conn_id) if "://" in dsn_or_conn_id else WarehouseHook(dsn_or_conn_id)
    return hook.get_conn()


def lock(cur: Any, resource: str) -> None:
    """One holder of ``resource`` at a time, to the end of the transaction (an advisory lock on its name)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (resource,))


_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def plain_name(name: str) -> str:
    """``name`` if it is a plain lower-case ``[schema.]name`` (the code's own names, put in SQL text unquoted,
    which both warehouses resolve alike); else ``ValueError``."""
    if not _NAME.match(name):
        raise ValueError(f"not a plain column or table name: {name!r}")
    return name


def upsert_row(
    hook: Any,
    cur: Any,
    table: str,
    key: dict[str, Any],
    values: dict[str, Any],
    *,
    on_insert: dict[str, Any] | None = None,
    placeholders: dict[str, str] | None = None,
) -> None:
    """Update ``table``'s row of ``key`` (column -> value) to ``values``, or insert it with ``values`` and
    ``on_insert`` when there is none, in the caller's transaction, under ``hook.lock`` on the key. SQL both
    warehouses run (no ``ON CONFLICT``, no ``MERGE``); ``placeholders``: a column's placeholder when not ``%s``
    (``hook.array_placeholder``, ``hook.json_placeholder``). Names are the code's own, checked."""
    row = {**key, **values, **(on_insert or {})}
    for name in (table, *row):
        plain_name(name)
    slot = {name: (placeholders or {}).get(name, "%s") for name in row}
    sets = ", ".join(f"{name} = {slot[name]}" for name in values)
    where = " AND ".join(f"{name} = %s" for name in key)
    hook.lock(cur, "/".join(map(str, (table, *key.values()))))
    cur.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*values.values(), *key.values()))
    if not cur.rowcount:
        cur.execute(
            f"INSERT INTO {table} ({', '.join(row)}) SELECT {', '.join(slot[name] for name in row)}",
            tuple(row.values()),
        )


class DayStorage(Protocol):
    """How a warehouse locks, deletes and puts back one day of a day-partitioned fact table (the archival).
    ``warehouse_hooks.day_storage`` picks ``day_partitions.PartitionedDays`` (PostgreSQL) or
    ``snowflake_warehouse.SnowflakeDays``."""

    def lock(self, cur: Any, table: str, day: date) -> None:
        """One writer of the day (and of the table's days) to the end of the transaction."""

    def delete(self, cur: Any, table: str, day: date) -> int | None:
        """The day's rows gone, in the caller's transaction; how many, or None when ``lock`` made the caller's count
        exact (no other writer)."""

    def restore(
        self,
        conn: Any,
        table: str,
        day: date,
        batches: Iterable[pa.RecordBatch],
        *,
        key: str,
        json_columns: Sequence[str],
        finish: Callable[[Any, int], None],
    ) -> None:
        """The rows of ``batches`` back as the day, committed after ``finish(cur, keys_other_days_hold)``, which
        raises to roll it all back."""


def lock_day(cur: Any, table: str, day: Any) -> None:
    """One writer of ``table``'s ``day`` at a time, to the end of the transaction (loads, mart rebuilds,
    archival)."""
    lock(cur, f"{table}/{day}")


def qualified(name: str) -> sql.Composed:
    """``schema.table`` as a safely quoted identifier (names are validated, never interpolated)."""
    parts = name.split(".")
    if len(parts) != 2 or not all(p.replace("_", "").isalnum() for p in parts):
        raise ValueError(f"not a schema-qualified table name: {name!r}")
    return sql.SQL(".").join(map(sql.Identifier, parts))

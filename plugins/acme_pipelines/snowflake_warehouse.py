"""The Snowflake side of the warehouse: a hook, validated identifiers, and an atomic Arrow publisher.

A publish streams Arrow batches into Parquet files (a new file after about
``rows_per_file`` rows, so memory stays bounded by a batch), ``PUT``s them to a
temporary stage, ``COPY INTO`` a transient staging table shaped like the target
(fakesnow cannot COPY INTO a temporary one), and then, in one transaction,
either replaces a partition (``DELETE`` the day, ``INSERT`` the staged rows) or
``MERGE``s on a key. Readers see the old state or the new one. A failure before
``COMMIT`` is rolled back and leaves the target as it was; the staging table is
dropped in ``finally`` (a killed worker leaves an ``ACME_STAGE_*`` table behind).

The loaders (``snowflake_loads``) build on the same pieces: ``ParquetSpool``
writes Arrow batches to Parquet files, ``stage_files`` lands them in a transient
table. ``warehouse_hooks.warehouse_hook`` returns this hook when the ``warehouse``
connection is of type ``snowflake``. The tables are made by the migrations
(``acme_pipelines.migrations``, DDL derived by ``dialects.warehouse_ddl``).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

from acme_pipelines.db_readers import cursor_batches
from acme_pipelines.dialects import statements
from acme_pipelines.warehouse import ScopedConnection, WarehouseHook

log = logging.getLogger(__name__)

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


class IdentifierError(ValueError):
    """A table or column name that is not a plain Snowflake identifier (no quoting games, no injection)."""


def identifier(name: str, *, parts: int | tuple[int, ...] = (1, 2, 3)) -> str:
    """``name`` validated as ``[db.][schema.]object`` of plain identifiers, upper-cased as Snowflake resolves
    unquoted names, each part double-quoted."""
    allowed = (parts,) if isinstance(parts, int) else parts
    pieces = name.split(".")
    if len(pieces) not in allowed or not all(_PART.match(p) for p in pieces):
        raise IdentifierError(f"not a plain Snowflake identifier ({'/'.join(map(str, allowed))} parts): {name!r}")
    return ".".join(f'"{p.upper()}"' for p in pieces)


def literal(text: str) -> str:
    """A SQL string literal (quotes doubled): for the contract's own constants that end up in generated SQL."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def transaction(cur: Any) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error. Roll back before anything else runs: on Snowflake a DDL
    statement (a DROP of a staging table in a ``finally``) would commit the open transaction."""
    cur.execute("BEGIN")
    try:
        yield
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


class SnowflakeWarehouseHook(ScopedConnection, SnowflakeHook):
    """The warehouse on Snowflake: the provider's SnowflakeHook (account, warehouse, role, database and
    key-pair auth from the connection) with the interface the loaders use on ``WarehouseHook``.

    It also passes the connection extra ``protocol``, which the provider drops: an HTTP
    endpoint (fakesnow in tests, a proxy) needs ``protocol=http``.
    """

    backend = "snowflake"  # the connector autocommits each statement; loaders open transactions explicitly

    def _get_conn_params(self) -> dict[str, Any]:
        params = super()._get_conn_params()
        protocol = self._extra.get("protocol")
        if protocol:
            params["protocol"] = protocol
        return params

    @cached_property
    def _extra(self) -> dict[str, Any]:
        return self.get_connection(self.get_conn_id()).extra_dejson

    @staticmethod
    def begin(cur: Any) -> None:
        cur.execute("BEGIN")

    # reading: the SQL files (include/sql) are PostgreSQL, transpiled; Snowflake names unquoted columns upper-case
    @staticmethod
    def statements(text: str) -> list[str]:
        """A PostgreSQL SQL text as Snowflake runs it: transpiled statement by statement (``%(name)s`` kept)."""
        return statements(text, "snowflake")

    @classmethod
    def query_rows(cls, cur: Any, text: str, params: Any = None) -> list[dict[str, Any]]:
        """The rows of a PostgreSQL query (transpiled) as dicts by lower-case column name."""
        for statement in cls.statements(text):
            cur.execute(statement, params)
        names = [d[0].lower() for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @classmethod
    def query_batches(
        cls, conn: Any, text: str, params: Any = None, batch_rows: int = 50_000, schema: pa.Schema | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The rows of a PostgreSQL query (transpiled) as Arrow batches; the connector fetches the result in
        chunks as the batches are read."""
        cur = conn.cursor()
        try:
            for statement in cls.statements(text):
                cur.execute(statement, params)
            for batch in cursor_batches(cur, batch_rows, schema):
                yield batch.rename_columns([name.lower() for name in batch.schema.names])
        finally:
            cur.close()

    # what the jobs' portable SQL leaves to the dialect: an ARRAY column takes JSON (INSERT ... SELECT only)
    @staticmethod
    def array_placeholder(element_type: str) -> str:
        """An array parameter's placeholder (in ``INSERT ... SELECT`` or ``UPDATE``, not ``VALUES``)."""
        return "PARSE_JSON(%s)"

    @staticmethod
    def array_param(values: Sequence[Any]) -> str:
        return json.dumps(list(values))

    @staticmethod
    def array_result(value: Any) -> list[Any]:
        """An ARRAY column's value (the connector returns its JSON text) as a list."""
        return json.loads(value) if isinstance(value, str) else list(value or [])

    @staticmethod
    def lock(cur: Any, resource: str) -> None:
        """Nothing taken: Snowflake has no advisory lock. Its DELETE/UPDATE waits for another transaction's on
        the same table, but two transactions that both find no row to update can both insert one (docs/snowflake.md,
        "Not built")."""

    @staticmethod
    def json_placeholder() -> str:
        """A JSON text parameter as a ``VARIANT`` value (in ``INSERT ... SELECT`` or ``UPDATE``, not ``VALUES``)."""
        return "PARSE_JSON(%s)"

    # row accounting: the same portable SQL as on PostgreSQL
    record_audit = staticmethod(WarehouseHook.record_audit)
    clear_rejects = staticmethod(WarehouseHook.clear_rejects)

    def namespace(self) -> str:
        """OpenLineage namespace of this warehouse: ``snowflake://<account>``."""
        return f"snowflake://{self._extra.get('account') or 'unknown'}"

    def database_name(self) -> str:
        return str(self._extra.get("database") or "")

    # (``snowflake://account``, ``<database>.<table>``), from the two methods above
    dataset = WarehouseHook.dataset


def snowflake_type(kind: pa.DataType) -> str:
    """The Snowflake column type that holds an Arrow type exactly."""
    if pa.types.is_integer(kind):
        return "NUMBER(19,0)"
    if pa.types.is_decimal(kind):
        return f"NUMBER({kind.precision},{kind.scale})"
    if pa.types.is_floating(kind):
        return "FLOAT"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP_TZ" if kind.tz else "TIMESTAMP_NTZ"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "VARCHAR"
    raise TypeError(f"no Snowflake column type for Arrow {kind}")


class ParquetSpool:
    """Arrow batches of one schema into Parquet files, a new file once ``rows_per_file`` rows are written
    (so a file may exceed it by up to one batch); memory: one batch."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, rows_per_file: int = 500_000) -> None:
        self.folder, self.name, self.schema, self.rows_per_file = folder, name, schema, rows_per_file
        self.files: list[Path] = []
        self.rows = 0
        self._writer: Any = None
        self._rows_in_file = 0

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        import pyarrow.parquet as pq

        if data.num_rows == 0:
            return
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        if self._writer is None or self._rows_in_file >= self.rows_per_file:
            self.close()
            self.files.append(self.folder / f"{self.name}-{len(self.files):05d}.parquet")
            self._writer = pq.ParquetWriter(self.files[-1], self.schema)
            self._rows_in_file = 0
        self._writer.write_table(table.select(self.schema.names).cast(self.schema))
        self._rows_in_file += table.num_rows
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def stage_table_name(target: str, suffix: str) -> str:
    """A generated transient table beside ``target`` (same database and schema): never user input."""
    table = identifier(target)
    return ".".join([*table.split(".")[:-1], f'"ACME_STAGE_{uuid.uuid4().hex[:12].upper()}_{suffix}"'])


def stage_files(
    cur: Any, files: Sequence[Path], staging: str, *, schema: pa.Schema | None = None, like: str | None = None
) -> int:
    """Create the transient table ``staging`` (columns of ``schema``, or LIKE the table ``like``),
    PUT ``files`` to a temporary stage and COPY them in; returns the rows loaded.

    A transient table, not a temporary one: fakesnow cannot COPY INTO a temporary table.
    The caller drops it (``drop_tables``); a killed worker leaves an ``ACME_STAGE_*`` table.
    """
    if like is not None:
        cur.execute(f"CREATE TRANSIENT TABLE {staging} LIKE {identifier(like)}")
    elif schema is not None:
        columns = ", ".join(f"{identifier(f.name, parts=1)} {snowflake_type(f.type)}" for f in schema)
        cur.execute(f"CREATE TRANSIENT TABLE {staging} ({columns})")
    else:
        raise ValueError("stage_files needs schema= or like=")
    if not files:
        return 0
    # in the staging table's schema: a session need not have a current schema
    stage = ".".join([*staging.split(".")[:-1], f'"ACME_STAGE_{uuid.uuid4().hex[:12].upper()}"'])
    cur.execute(f"CREATE TEMPORARY STAGE {stage}")
    for path in files:
        cur.execute(f"PUT 'file://{path}' @{stage} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
    cur.execute(
        f"COPY INTO {staging} FROM @{stage} FILE_FORMAT=(TYPE=PARQUET) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PURGE=TRUE"
    )
    # one row per file: file, status, rows_parsed, rows_loaded, ...
    return sum(int(row[3] or 0) for row in cur.fetchall() if str(row[1]).upper() == "LOADED")


def stage_batches(
    cur: Any,
    batches: Iterable[pa.RecordBatch | pa.Table],
    staging: str,
    *,
    like: str | None = None,
    rows_per_file: int = 500_000,
) -> tuple[list[str], int, int] | None:
    """Spool ``batches`` into Parquet files (memory: one batch) and stage them in the transient table ``staging``
    (LIKE the table ``like``, else shaped like the batches); returns (columns, rows staged, files), or None when
    the batches hold no row (nothing created). ``staging`` is dropped if staging fails; else the caller drops it."""
    with tempfile.TemporaryDirectory(prefix="acme-snowflake-") as folder:
        spool: ParquetSpool | None = None
        try:
            for batch in batches:
                spool = spool or ParquetSpool(Path(folder), "part", batch.schema, rows_per_file)
                spool.write(batch)
        finally:
            if spool is not None:
                spool.close()
        if spool is None or not spool.files:
            return None
        try:
            staged = stage_files(cur, spool.files, staging, like=like, schema=None if like else spool.schema)
        except BaseException:
            drop_tables(cur, staging)
            raise
        return list(spool.schema.names), staged, len(spool.files)


def drop_tables(cur: Any, *tables: str) -> None:
    for table in tables:
        cur.execute(f"DROP TABLE IF EXISTS {table}")


@dataclass(frozen=True)
class PublishResult:
    rows_staged: int
    rows_deleted: int
    rows_written: int
    files: int


def publish_arrow(
    conn: Any,
    target: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    replace: tuple[str, Any] | None = None,
    merge_on: Sequence[str] | None = None,
    rows_per_file: int = 500_000,
    fail_before_commit: bool = False,
) -> PublishResult:
    """Publish ``batches`` into ``target`` atomically.

    :param replace: ``(column, value)``: the target's rows with that value are replaced (a day's partition).
    :param merge_on: key columns to MERGE on (update matched rows, insert the others).
    :param fail_before_commit: fault injection for the atomicity tests.
    """
    if (replace is None) == (merge_on is None):
        raise ValueError("give exactly one of replace=(column, value) or merge_on=[columns]")
    table = identifier(target)
    staging = stage_table_name(target, "ROWS")
    cur = conn.cursor()
    stage = stage_batches(cur, batches, staging, like=target, rows_per_file=rows_per_file)
    if stage is None:  # an empty input must not empty a partition
        raise ValueError(f"nothing to publish to {target}: no rows in the batches")
    columns, staged, files = stage
    try:
        quoted = [identifier(c, parts=1) for c in columns]
        names = ", ".join(quoted)
        deleted = written = 0
        if replace is not None:  # DELETE + INSERT in one transaction
            column, value = replace
            with transaction(cur):
                cur.execute(f"DELETE FROM {table} WHERE {identifier(column, parts=1)} = %s", (value,))
                deleted = cur.rowcount or 0
                cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}")
                written = cur.rowcount or 0
                if fail_before_commit:
                    raise RuntimeError("injected failure before commit")
        else:  # one MERGE statement is atomic by itself (and fakesnow cannot run it inside BEGIN)
            if fail_before_commit:
                raise RuntimeError("injected failure before commit")
            keys = [identifier(k, parts=1) for k in merge_on or ()]
            others = [c for c in quoted if c not in keys]
            sets = ", ".join(f"t.{c} = s.{c}" for c in others)
            update = f" WHEN MATCHED THEN UPDATE SET {sets}" if others else ""
            values = ", ".join(f"s.{c}" for c in quoted)
            cur.execute(
                f"MERGE INTO {table} t USING {staging} s ON {' AND '.join(f't.{k} = s.{k}' for k in keys)}"
                f"{update} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
            )
            written = cur.rowcount or 0
    finally:
        drop_tables(cur, staging)
    log.info(
        "%s: %d rows staged from %d Parquet file(s), %d deleted, %d written",
        target,
        staged,
        files,
        deleted,
        written,
    )
    return PublishResult(staged, deleted, written, files)


class SnowflakeDays:
    """``warehouse.DayStorage`` on Snowflake: a fact table's day is its ``dt`` rows."""

    @staticmethod
    def lock(cur: Any, table: str, day: Any) -> None:
        """Nothing taken (no advisory locks): the DELETE or INSERT waits for another transaction's on the table."""

    @staticmethod
    def delete(cur: Any, table: str, day: Any) -> int:
        """The day's rows gone in the caller's transaction (``BEGIN`` by ``hook.begin``); how many. With no lock, a
        publish of the day can commit between the caller's count and this DELETE: the caller compares."""
        cur.execute(f"DELETE FROM {identifier(table)} WHERE dt = %s", (day,))
        return int(cur.rowcount or 0)

    @staticmethod
    def restore(
        conn: Any,
        table: str,
        day: Any,
        batches: Iterable[pa.RecordBatch],
        *,
        key: str,
        json_columns: Sequence[str],
        finish: Callable[[Any, int], None],
    ) -> None:
        """Put ``batches`` back as the day's rows and commit: Parquet files staged in a transient table first
        (DDL: before the transaction), then one transaction counts the keys other days hold, inserts the rows
        (``PARSE_JSON`` for the ``json_columns``) and runs ``finish(cur, keys_elsewhere)``, which raises to roll
        it back."""
        cur = conn.cursor()
        target, key = identifier(table), identifier(key, parts=1)
        staging = stage_table_name(table, "RESTORE")
        try:
            stage = stage_batches(cur, batches, staging)  # the file's types: its JSON is text, PARSE_JSON below
            if stage is None:
                raise ValueError(f"{table} {day}: the archived file holds no rows; nothing restored")
            columns = stage[0]
            names = [identifier(name, parts=1) for name in columns]
            values = [f"PARSE_JSON({n})" if c in json_columns else n for n, c in zip(names, columns, strict=True)]
            with transaction(cur):
                cur.execute(f"SELECT count(*) FROM {target} WHERE dt = %s", (day,))
                if here := int(cur.fetchone()[0]):  # loaded since the caller looked (no lock here)
                    raise ValueError(f"{table} {day} has {here} rows in the warehouse now; not restoring over them")
                cur.execute(
                    f"SELECT count(*) FROM {target} WHERE dt <> %s AND {key} IN (SELECT {key} FROM {staging})", (day,)
                )
                elsewhere = int(cur.fetchone()[0])
                cur.execute(f"INSERT INTO {target} ({', '.join(names)}) SELECT {', '.join(values)} FROM {staging}")
                finish(cur, elsewhere)
        finally:
            drop_tables(cur, staging)
            cur.close()

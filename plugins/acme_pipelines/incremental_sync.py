"""Sync rows changed in an ``updated_at`` window from the app database to the warehouse.

Data moves as binary COPY streams: ``COPY (SELECT ... window ...) TO STDOUT (FORMAT binary)``
on the source is piped straight into ``COPY ... FROM STDIN (FORMAT binary)`` on the
warehouse (bounded memory: a pipe buffer). The source casts every column to its contract
type (CONTRACT.md §1.1, ``SyncTable.columns``), so both ends agree on the binary layout
and the warehouse parses no text. The contract's rule checks (``SyncTable.checks``) are
one ``CASE`` evaluated once per row, in that SELECT, on the typed values: the first broken
rule is the row's ``reason``. Rows with a reason are recorded in ``ops.rejected_rows``
(locator, reason, the row as JSON), the rest are published, newer ``updated_at``
winning, all in one warehouse transaction, so overlapping or repeated windows are
harmless. The source is read in one REPEATABLE READ snapshot, so every query of a sync
sees the same rows and ``rows_in = rows_loaded + rows_rejected`` holds.

Two ways to publish, chosen per run, with the same result (rows, values, rejects,
newer-wins):

- *upsert* (the target has rows: every hourly run): the window's rows are staged in a
  session's temporary table, the rejects recorded from it, then ``INSERT ... ON CONFLICT
  (key) DO UPDATE ... WHERE target.updated_at <= new.updated_at``. The target's indexes
  are maintained row by row and readers are never blocked.
- *load* (the target is empty: the first sync into a new warehouse, a rebuilt table):
  maintaining a B-tree row by row costs several times what building it once does (on
  1,000,000 orders the two indexes of ``core.fact_orders`` turned a 1.1 s INSERT into
  7.7 s; building both afterwards took 1.2 s), and with nothing to upsert against nothing
  needs staging. The target is locked (``ACCESS EXCLUSIVE``: readers wait for the commit
  and see the whole load or nothing), its indexes and key constraints are dropped, the good
  rows (``reason IS NULL``, filtered by the source) are COPYed straight into it, the
  window is counted in the same snapshot, and only when the count is more than what was
  loaded are the rejected rows read again (``reason IS NOT NULL``) and recorded; the same
  indexes and constraints are rebuilt from their definitions (the key is checked as it is
  built; the source counts meanwhile) before the commit. A load that is refused (``max_reject_ratio``) is rolled
  back and redone as an upsert, which records the rejects and publishes nothing.

A load needs a plain table that no foreign key references, whose columns read the contract
types' binary form (the same type, or both strings); else the empty target is upserted.
``load=False`` always upserts.

``sync_table(..., stats={})`` fills the dict with the method and the seconds of each step;
the same figures are logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import IO, Any

from psycopg2 import sql

from acme_pipelines.accounting import AuditEntry, LoadCounts, refusal_error, refuse
from acme_pipelines.contract import SyncTable
from acme_pipelines.migrations import require_current
from acme_pipelines.warehouse import WarehouseHook, qualified

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 16  # bytes per read from the pipe into the warehouse's COPY
LOAD_MAINTENANCE_WORK_MEM = "256MB"  # per index build of a load (SET LOCAL)
SOURCE_PARALLEL_WORKERS = 0  # per query on the source (its max_parallel_workers_per_gather)
TEMP_BUFFERS = "512MB"  # staged rows stay in the session's memory up to this size (allocated as used)
_STRINGS = {"text", "character varying", "character"}  # one binary form: the bytes; typmods apply on receipt


class _CountingReader:
    """The pipe's read end for ``copy_expert``: counts bytes per block read, not per row written."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        self.bytes += len(data)
        return data


def copy_between(src_conn: Any, src_sql: str, dst_cur: Any, dst_sql: str) -> int:
    """Pipe a COPY TO STDOUT on one connection into a COPY FROM STDIN on another; returns bytes.

    psycopg2 hands the producer one ``write`` per row: it goes to a buffered file (C code, no
    Python frame per row); bytes are counted on the reading side, per 64 KiB block.
    """
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb", buffering=COPY_BLOCK)
    counting = _CountingReader(reader)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with src_conn.cursor() as cur:
                cur.copy_expert(src_sql, writer)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            with contextlib.suppress(OSError):  # the reading side went away first; its error is reported
                writer.close()

    producer = threading.Thread(target=produce, name="copy-producer", daemon=True)
    producer.start()
    try:
        dst_cur.copy_expert(dst_sql, counting, size=COPY_BLOCK)
    finally:
        reader.close()
        producer.join()
    if failure:
        raise failure[0]
    return counting.bytes


def reason_expression(table: SyncTable) -> sql.Composable:
    """The first broken rule's reason (``CASE WHEN <check> THEN <reason> ... END``), NULL for a good row."""
    if not table.checks:
        return sql.SQL("NULL::text")
    return (
        sql.SQL("CASE ")
        + sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.SQL(c), sql.Literal(r)) for c, r in table.checks)
        + sql.SQL(" END")
    )


def source_select(table: SyncTable, start: datetime, end: datetime, *, rows: str = "all") -> sql.Composed:
    """The window's rows, each column cast to its contract type, then ``reason``; ``rows``: all, good
    (``reason IS NULL``, without the reason column) or rejected."""
    typed = sql.SQL(", ").join(
        sql.SQL("{0}::{1} AS {0}").format(sql.Identifier(n), sql.SQL(t)) for n, t in table.columns
    )
    window = sql.SQL("SELECT {typed} FROM {table} WHERE updated_at >= {start} AND updated_at < {end}").format(
        typed=typed,
        table=sql.Identifier(table.source),
        start=sql.Literal(start.isoformat()),
        end=sql.Literal(end.isoformat()),
    )
    reason = reason_expression(table)
    if rows == "good":
        names = sql.SQL(", ").join(map(sql.Identifier, table.names))
        return sql.SQL("SELECT {} FROM ({}) AS s WHERE ({}) IS NULL").format(names, window, reason)
    where = sql.SQL(" WHERE reason IS NOT NULL") if rows == "rejected" else sql.SQL("")
    return sql.SQL("SELECT * FROM (SELECT *, {} AS reason FROM ({}) AS s) AS c{}").format(reason, window, where)


def source_copy(table: SyncTable, start: datetime, end: datetime, *, rows: str = "all") -> sql.Composed:
    """``COPY (source_select(...)) TO STDOUT (FORMAT binary)``: the window's rows as a sync sends them."""
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(source_select(table, start, end, rows=rows))


def source_session(source_conn: Any) -> Any:
    """Set up a new source connection for a sync and return it: one read-only REPEATABLE READ snapshot for every
    read (the rows, the count, the rejects), UTC, no parallel workers."""
    source_conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with source_conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        # the rows leave through this one connection: parallel workers on the app's database would only pass
        # them to it through a queue, on cores the application needs (SOURCE_PARALLEL_WORKERS)
        cur.execute(sql.SQL("SET max_parallel_workers_per_gather = {}").format(sql.Literal(SOURCE_PARALLEL_WORKERS)))
    return source_conn


class _Clock:
    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now


def sync_table(
    source_conn_factory: Callable[[], Any],
    hook: WarehouseHook,
    table: SyncTable,
    start: datetime,
    end: datetime,
    audit: AuditEntry,
    *,
    max_reject_ratio: float,
    stats: dict[str, Any] | None = None,
    load: bool = True,
) -> tuple[LoadCounts, int]:
    """Sync ``table`` rows with ``start <= updated_at < end``; returns counts and bytes moved.

    ``stats``, when given, receives ``method`` (load or upsert) and ``phases`` (seconds per step, in order).
    ``load=False`` upserts into an empty target too.
    PostgreSQL warehouse; ``backends.sync_table`` picks this or ``snowflake_loads.sync_table``.
    """
    phases: dict[str, float] = {}
    source_conn = source_session(source_conn_factory())
    try:
        with hook.scoped_connection() as conn:
            require_current(conn)
            with conn.cursor() as cur:
                # staged rows stay in this session's memory up to TEMP_BUFFERS (set before its first temp table,
                # committed so that a rollback keeps it)
                cur.execute(sql.SQL("SET temp_buffers = {}").format(sql.Literal(TEMP_BUFFERS)))
            conn.commit()
            clock = _Clock(phases)
            with conn.cursor() as cur:
                sync = _Sync(cur, source_conn, hook, table, start, end, audit, max_reject_ratio, clock)
                loaded = sync.load_if_empty() if load else False
                if loaded is None:  # refused: nothing published; staged again to record the rejects
                    conn.rollback()
                    clock.lap("rolled back")
                if not loaded:
                    sync.upsert()
            conn.commit()
            clock.lap("commit")
    finally:
        source_conn.close()
    counts = sync.counts
    if stats is not None:
        stats.update(method=sync.method, phases=phases)
    log.info(
        "%s %s: %d rows in, %d rejected, %s; %s",
        table.source,
        audit.partition,
        counts.rows_in,
        counts.rows_rejected,
        sync.method,
        ", ".join(f"{name} {seconds:.2f}s" for name, seconds in phases.items()),
    )
    return counts, sync.moved


class _Sync:
    """One sync's steps on an open warehouse cursor (its transaction) and source connection (its snapshot)."""

    def __init__(
        self,
        cur: Any,
        source_conn: Any,
        hook: WarehouseHook,
        table: SyncTable,
        start: datetime,
        end: datetime,
        audit: AuditEntry,
        max_reject_ratio: float,
        clock: _Clock,
    ) -> None:
        self.cur, self.source_conn, self.hook, self.table = cur, source_conn, hook, table
        self.start, self.end, self.audit, self.max_reject_ratio, self.clock = start, end, audit, max_reject_ratio, clock
        self.stage = f"pg_temp.sync_{table.source}"
        self.target = qualified(table.target)
        self.counts = LoadCounts()
        self.moved = 0
        self.method = "upsert"

    # -- upsert: every row of the window into a temporary table, then INSERT ... ON CONFLICT ----------
    def upsert(self) -> None:
        rows_in = self._stage("all")
        self.clock.lap("copy")
        self._record_rejects(rows_in)
        self._refuse_unless_ok()
        if self.counts.rows_loaded:
            self._upsert()
            self.clock.lap("upsert")
        self.hook.record_audit(self.cur, self.audit, self.counts, "success", None)

    def _stage(self, rows: str) -> int:
        """COPY the window's rows (all, or the rejected ones) into a new temporary table; returns the count."""
        cur, table = self.cur, self.table
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(self.stage)))
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}, reason text) ON COMMIT DROP").format(
                sql.Identifier(self.stage.split(".")[1]),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in table.columns),
            )
        )
        select = source_copy(table, self.start, self.end, rows=rows)
        self.moved += copy_between(
            self.source_conn,
            select.as_string(self.source_conn),
            cur,
            # FREEZE: the table is new in this transaction; its readers need not set hint bits
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary, FREEZE)")
            .format(qualified(self.stage), sql.SQL(", ").join(map(sql.Identifier, [*table.names, "reason"])))
            .as_string(cur.connection),
        )
        return cur.rowcount

    def _record_rejects(self, rows_in: int, staged: int | None = None) -> None:
        """Replace this source and partition's rejects with the staged rows that have a reason; count them.

        ``staged``: how many rows the stage holds when they are not all of ``rows_in`` (a load stages the
        rejected rows alone); the rest of ``rows_in`` were loaded."""
        table = self.table
        locator = sql.SQL(" || ',' || ").join(
            sql.SQL("{} || '=' || {}").format(sql.Literal(k), sql.Identifier(k)) for k in table.key
        )
        self.hook.clear_rejects(self.cur, self.audit)
        self.cur.execute(
            sql.SQL(
                "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
                "SELECT %(run_id)s, %(source)s, %(partition)s, {table_lit} || '/' || {locator}, reason, "
                "(to_jsonb(s) - 'reason')::text FROM {stage} s WHERE reason IS NOT NULL"
            ).format(table_lit=sql.Literal(f"app_db:{table.source}"), locator=locator, stage=qualified(self.stage)),
            {"run_id": self.audit.run_id, "source": self.audit.source, "partition": self.audit.partition},
        )
        # rows_in from the COPY (or the count), rejects from the rows just recorded
        self.cur.execute(
            "SELECT reason, count(*) FROM ops.rejected_rows WHERE run_id = %s AND source = %s AND partition = %s "
            "GROUP BY reason",
            (self.audit.run_id, self.audit.source, self.audit.partition),
        )
        by_reason = dict(self.cur.fetchall())
        rejected = sum(by_reason.values())
        if staged is not None and staged != rejected:
            raise AssertionError(f"{table.source}: {staged} rejected rows staged, {rejected} recorded")
        self.counts = LoadCounts(rows_in, rows_in - rejected, rejected, 0, by_reason)
        self.counts.check()
        self.clock.lap("rejects")

    def _refuse_unless_ok(self) -> None:
        if error := refuse(self.counts, self.max_reject_ratio):
            self.hook.record_audit(self.cur, self.audit, self.counts, "failed", error)
            self.cur.connection.commit()
            what = f"{self.table.source} {self.audit.partition}"
            raise refusal_error(what, error, self.counts, self.max_reject_ratio)

    def _target_columns(self) -> tuple[sql.Composable, sql.Composable]:
        names = sql.SQL(", ").join(map(sql.Identifier, [*self.table.names, "_run_id", "_loaded_at"]))
        values = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(n)) for n in self.table.names)
        return names, values + sql.SQL(", %(run_id)s, now()")

    def _upsert(self) -> None:
        """Row-by-row upsert: the target's indexes stay, readers are never blocked."""
        table = self.table
        names, values = self._target_columns()
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
            for n in [*table.names, "_run_id", "_loaded_at"]
            if n not in table.key
        )
        self.cur.execute(
            sql.SQL(
                "INSERT INTO {target} ({names}) SELECT {values} FROM {stage} s WHERE s.reason IS NULL "
                "ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {target}.updated_at <= EXCLUDED.updated_at"
            ).format(
                target=self.target,
                names=names,
                values=values,
                stage=qualified(self.stage),
                key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
                updates=updates,
            ),
            {"run_id": self.audit.run_id},
        )

    def _plain_target(self) -> bool:
        """A plain table no foreign key references: its indexes and key constraints can be dropped and rebuilt."""
        self.cur.execute(
            "SELECT c.relkind = 'r' AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.oid) "
            "FROM pg_class c WHERE c.oid = %s::regclass",
            (self.table.target,),
        )
        return bool(self.cur.fetchone()[0])

    def _drop_indexes(self) -> list[sql.Composable]:
        """Drop the target's key constraints (primary key, unique, exclusion) and other indexes; returns the
        statements that rebuild them (the target is locked)."""
        cur = self.cur
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x') ORDER BY contype, conname",
            (self.table.target,),
        )
        constraints = cur.fetchall()
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
            "ORDER BY 1",
            (self.table.target,),
        )
        indexes = cur.fetchall()
        rebuild: list[sql.Composable] = []
        for name, definition in constraints:
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(self.target, sql.Identifier(name)))
            rebuild.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    self.target, sql.Identifier(name), sql.SQL(definition)
                )
            )
        for name, definition in indexes:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))  # regclass text: quoted as needed
            rebuild.append(sql.SQL(definition))
        self.clock.lap("drop indexes")
        return rebuild

    def _build_indexes(self, rebuild: list[sql.Composable]) -> None:
        self.cur.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(LOAD_MAINTENANCE_WORK_MEM)))
        for statement in rebuild:
            self.cur.execute(statement)
        self.clock.lap("build indexes")

    # -- load: an empty target takes the good rows straight from the source -------------------------
    def load_if_empty(self) -> bool | None:
        """Load the window into the target if it is empty (see the module's docstring): True when loaded,
        False when the target is not empty or not loadable (nothing done), None when the load was refused
        (the caller rolls back)."""
        cur, table = self.cur, self.table
        empty = sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(self.target)
        cur.execute(empty)
        if not cur.fetchone()[0] or not self._plain_target() or not self._binary_compatible():
            return False
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(self.target))
        cur.execute(empty)  # again, now that no one else writes
        if not cur.fetchone()[0]:
            return False
        self.method = "load"
        good = source_copy(table, self.start, self.end, rows="good").as_string(self.source_conn)
        loaded, indexes = self._load_rows(lambda copy: copy_between(self.source_conn, good, cur, copy))
        # the source counts the window (same snapshot) while the warehouse builds the indexes; if the count
        # shows too many rejects, the caller rolls the build back with the rest
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-count") as pool:
            counting = pool.submit(self._count_window)
            self._build_indexes(indexes)
            rows_in = counting.result()
        self.clock.lap("count")
        if rows_in > loaded:
            staged = self._stage("rejected")
            self.clock.lap("copy rejects")
            self._record_rejects(rows_in, staged)
        else:
            self.hook.clear_rejects(cur, self.audit)
            self.counts = LoadCounts(rows_in, loaded, 0, 0, {})
            self.counts.check()
            self.clock.lap("rejects")
        if self.counts.rows_loaded != loaded:
            raise AssertionError(f"{table.source}: loaded {loaded} rows, counted {self.counts.rows_loaded}")
        if refuse(self.counts, self.max_reject_ratio):
            return None
        self.hook.record_audit(cur, self.audit, self.counts, "success", None)
        return True

    def _load_rows(self, send: Callable[[str], int]) -> tuple[int, list[sql.Composable]]:
        """The rows of a load into the locked, empty target: its indexes and key constraints dropped, this run's
        id and time the defaults of ``_run_id`` and ``_loaded_at``, ``send(copy)`` (it runs ``copy``, a COPY FROM
        STDIN of the contract's columns, and returns the bytes moved), the defaults put back. Returns the rows
        loaded and the statements that rebuild the indexes."""
        indexes = self._drop_indexes()
        restore = self._stamp_defaults()
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            self.target, sql.SQL(", ").join(map(sql.Identifier, self.table.names))
        )
        self.moved += send(copy.as_string(self.cur.connection))
        loaded = self.cur.rowcount
        self.cur.execute(restore)
        self.clock.lap("copy")
        return loaded, indexes

    def _count_window(self) -> int:
        with self.source_conn.cursor() as src:  # the same snapshot as the rows loaded
            src.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s AND updated_at < %s").format(
                    sql.Identifier(self.table.source)
                ),
                (self.start, self.end),
            )
            return int(src.fetchone()[0])

    def _stamp_defaults(self) -> sql.Composable:
        """Make this run's id and ``now()`` the defaults of ``_run_id`` and ``_loaded_at`` (the COPY does not send
        them with every row); returns the statement that puts the columns' own defaults back."""
        self.cur.execute(
            "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s::regclass AND a.attname IN ('_run_id', '_loaded_at') ORDER BY a.attname",
            (self.table.target,),
        )
        own = self.cur.fetchall()
        self.cur.execute("SELECT now()")
        stamps = {"_run_id": sql.Literal(self.audit.run_id), "_loaded_at": sql.Literal(self.cur.fetchone()[0])}
        alter = sql.SQL("ALTER TABLE {} {}")
        self.cur.execute(
            alter.format(
                self.target,
                sql.SQL(", ").join(
                    sql.SQL("ALTER COLUMN {} SET DEFAULT {}").format(sql.Identifier(name), stamps[name])
                    for name, _ in own
                ),
            )
        )
        return alter.format(
            self.target,
            sql.SQL(", ").join(
                sql.SQL("ALTER COLUMN {} SET DEFAULT {}").format(sql.Identifier(name), sql.SQL(default))
                if default is not None
                else sql.SQL("ALTER COLUMN {} DROP DEFAULT").format(sql.Identifier(name))
                for name, default in own
            ),
        )

    def _binary_compatible(self) -> bool:
        """Whether each contract column's binary form is what the target's column reads (same type, or
        both strings: a bpchar/varchar column applies its length on receipt as an INSERT would)."""
        self.cur.execute(
            "SELECT a.attname, format_type(a.atttypid, NULL), a.atttypid FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (self.table.target,),
        )
        target = {name: (type_name, oid) for name, type_name, oid in self.cur.fetchall()}
        for name, contract_type in self.table.columns:
            if name not in target:
                return False
            self.cur.execute("SELECT format_type(%s::regtype, NULL), %s::regtype::oid", (contract_type, contract_type))
            type_name, oid = self.cur.fetchone()
            if oid != target[name][1] and not (type_name in _STRINGS and target[name][0] in _STRINGS):
                return False
        return True

"""Sync rows changed in an ``updated_at`` window from the app database to the warehouse.

Data moves as one COPY stream: ``COPY (SELECT ... window ...) TO STDOUT`` on the
source is piped straight into ``COPY staging... FROM STDIN`` on the warehouse
(bounded memory: a pipe buffer). Rows that break a contract rule are
rejected in SQL; the rest are upserted into the target in one transaction,
newer ``updated_at`` winning, so overlapping or repeated windows are harmless.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from psycopg2 import sql

from acme_pipelines.contract import SyncTable
from acme_pipelines.migrations import require_current
from acme_pipelines.warehouse import AuditEntry, LoadCounts, WarehouseHook, qualified, refusal_error, refuse


class _CountingWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return self.raw.write(data)


def copy_between(src_conn: Any, src_sql: str, dst_cur: Any, dst_sql: str) -> int:
    """Pipe a COPY TO STDOUT on one connection into a COPY FROM STDIN on another; returns bytes."""
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    counting = _CountingWriter(writer)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with src_conn.cursor() as cur:
                cur.copy_expert(src_sql, counting)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            writer.close()

    producer = threading.Thread(target=produce, name="copy-producer", daemon=True)
    producer.start()
    try:
        dst_cur.copy_expert(dst_sql, reader)
    finally:
        reader.close()
        producer.join()
    if failure:
        raise failure[0]
    return counting.bytes


def sync_table(
    source_conn_factory: Callable[[], Any],
    hook: WarehouseHook,
    table: SyncTable,
    start: datetime,
    end: datetime,
    audit: AuditEntry,
    *,
    max_reject_ratio: float,
) -> tuple[LoadCounts, int]:
    """Sync ``table`` rows with ``start <= updated_at < end``; returns counts and bytes moved.

    On a Snowflake warehouse the rows go through ``snowflake_loads.sync_table`` instead of a COPY pipe.
    """
    if hook.dialect == "snowflake":
        from acme_pipelines.snowflake_loads import sync_table as on_snowflake

        return on_snowflake(source_conn_factory, hook, table, start, end, audit, max_reject_ratio=max_reject_ratio)
    stage = f"staging.sync_{table.source}"
    cols = sql.SQL(", ").join(map(sql.Identifier, table.names))
    source_conn = source_conn_factory()
    try:
        source_conn.set_session(readonly=True)
        with source_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        select = sql.SQL(
            "COPY (SELECT {cols} FROM {table} WHERE updated_at >= {start} AND updated_at < {end}) "
            "TO STDOUT (FORMAT csv)"
        ).format(
            cols=cols,
            table=sql.Identifier(table.source),
            start=sql.Literal(start.isoformat()),
            end=sql.Literal(end.isoformat()),
        )
        with hook.connection() as conn:
            require_current(conn)
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(stage)))
                cur.execute(
                    sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                        qualified(stage),
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in table.columns
                        ),
                    )
                )
                moved = copy_between(
                    source_conn,
                    select.as_string(source_conn),
                    cur,
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(qualified(stage), cols).as_string(conn),
                )
                rows_in = cur.rowcount  # what the COPY stream delivered
                counts = _publish(cur, hook, table, stage, audit, max_reject_ratio, rows_in)
            conn.commit()
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(stage)))
            conn.commit()
    finally:
        source_conn.close()
    return counts, moved


def _publish(
    cur: Any,
    hook: WarehouseHook,
    table: SyncTable,
    stage: str,
    audit: AuditEntry,
    max_reject_ratio: float,
    rows_in: int,
) -> LoadCounts:
    reason = (
        sql.SQL("CASE ")
        + sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.SQL(c), sql.Literal(r)) for c, r in table.checks)
        + sql.SQL(" END")
        if table.checks
        else sql.SQL("NULL::text")
    )
    # The reason is computed where it is needed (no UPDATE of the staged rows: that rewrites them all).
    checked = sql.SQL("(SELECT s.*, {} AS reason FROM {} s)").format(reason, qualified(stage))
    locator = sql.SQL(" || ',' || ").join(
        sql.SQL("{} || '=' || {}").format(sql.Literal(k), sql.Identifier(k)) for k in table.key
    )
    hook.clear_rejects(cur, audit)
    cur.execute(
        sql.SQL(
            "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
            "SELECT %(run_id)s, %(source)s, %(partition)s, {table_lit} || '/' || {locator}, reason, "
            "(to_jsonb(s) - 'reason')::text FROM {checked} s WHERE reason IS NOT NULL"
        ).format(table_lit=sql.Literal(f"app_db:{table.source}"), locator=locator, checked=checked),
        {"run_id": audit.run_id, "source": audit.source, "partition": audit.partition},
    )
    # rows_in from the COPY, rejects from the rows just recorded: no extra scan of the staged rows
    cur.execute(
        "SELECT reason, count(*) FROM ops.rejected_rows WHERE run_id = %s AND source = %s AND partition = %s "
        "GROUP BY reason",
        (audit.run_id, audit.source, audit.partition),
    )
    by_reason = dict(cur.fetchall())
    rejected = sum(by_reason.values())
    counts = LoadCounts(rows_in, rows_in - rejected, rejected, 0, by_reason)
    counts.check()
    if error := refuse(counts, max_reject_ratio):
        hook.record_audit(cur, audit, counts, "failed", error)
        cur.connection.commit()
        raise refusal_error(f"{table.source} {audit.partition}", error, counts, max_reject_ratio)
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
        for n in [*table.names, "_run_id", "_loaded_at"]
        if n not in table.key
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {target} ({cols}, _run_id, _loaded_at) SELECT {cols}, %(run_id)s, now() FROM {checked} c "
            "WHERE reason IS NULL ON CONFLICT ({key}) DO UPDATE SET {updates} "
            "WHERE {target}.updated_at <= EXCLUDED.updated_at"
        ).format(
            target=qualified(table.target),
            cols=sql.SQL(", ").join(map(sql.Identifier, table.names)),
            checked=checked,
            key=key,
            updates=updates,
        ),
        {"run_id": audit.run_id},
    )
    hook.record_audit(cur, audit, counts, "success", None)
    return counts

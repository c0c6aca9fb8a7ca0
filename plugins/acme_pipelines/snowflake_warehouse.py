"""The Snowflake side of the warehouse: a hook, validated identifiers, and an atomic Arrow publisher.

A publish streams Arrow batches into Parquet files (one file per ``rows_per_file``
rows, so memory stays bounded by a batch), ``PUT``s them to a temporary stage,
``COPY INTO`` a temporary table shaped like the target, and then, in one
transaction, either replaces a partition (``DELETE`` the day, ``INSERT`` the
staged rows) or ``MERGE``s on a key. Readers see the old state or the new one.
A failure before ``COMMIT`` leaves the target as it was; the temporary stage and
table vanish with the session.

Issue #7 (Snowflake as the warehouse) is in progress: this module is the writer
and is tested against fakesnow; the DAG operators do not route to it yet.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

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


class SnowflakeWarehouseHook(SnowflakeHook):
    """The provider's SnowflakeHook (account, warehouse, role, database, key-pair auth from the
    connection), plus the connection extra ``protocol``: the provider does not pass it, and an
    HTTP endpoint (fakesnow in tests, a proxy) needs ``protocol=http``."""

    def _get_conn_params(self) -> dict[str, Any]:
        params = super()._get_conn_params()
        protocol = self.get_connection(self.get_conn_id()).extra_dejson.get("protocol")
        if protocol:
            params["protocol"] = protocol
        return params


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
    stage_name = f"ACME_STAGE_{uuid.uuid4().hex[:12].upper()}"
    # a transient table in the target's schema (generated name, not user input), dropped at the end:
    # fakesnow cannot COPY INTO a temporary one; a killed worker leaves an ACME_STAGE_*_ROWS table behind
    staging = ".".join([*table.split(".")[:-1], f'"{stage_name}_ROWS"'])
    cur = conn.cursor()
    with tempfile.TemporaryDirectory(prefix="acme-snowflake-") as folder:
        files, columns = _write_parquet(batches, Path(folder), rows_per_file)
        cur.execute(f"CREATE TEMPORARY STAGE {stage_name}")
        cur.execute(f"CREATE TRANSIENT TABLE {staging} LIKE {table}")
        for path in files:
            cur.execute(f"PUT 'file://{path}' @{stage_name} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
    try:
        staged = 0
        if files:
            cur.execute(
                f"COPY INTO {staging} FROM @{stage_name} FILE_FORMAT=(TYPE=PARQUET) "
                "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PURGE=TRUE"
            )
            # one row per file: file, status, rows_parsed, rows_loaded, ...
            staged = sum(int(row[3] or 0) for row in cur.fetchall() if str(row[1]).upper() == "LOADED")
        quoted = [identifier(c, parts=1) for c in columns]
        names = ", ".join(quoted)
        deleted = written = 0
        if replace is not None:  # DELETE + INSERT in one transaction
            column, value = replace
            cur.execute("BEGIN")
            try:
                cur.execute(f"DELETE FROM {table} WHERE {identifier(column, parts=1)} = %s", (value,))
                deleted = cur.rowcount or 0
                cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}")
                written = cur.rowcount or 0
                if fail_before_commit:
                    raise RuntimeError("injected failure before commit")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
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
        cur.execute(f"DROP TABLE IF EXISTS {staging}")
    log.info(
        "%s: %d rows staged from %d Parquet file(s), %d deleted, %d written",
        target,
        staged,
        len(files),
        deleted,
        written,
    )
    return PublishResult(staged, deleted, written, len(files))


def _write_parquet(
    batches: Iterable[pa.RecordBatch | pa.Table], folder: Path, rows_per_file: int
) -> tuple[list[Path], list[str]]:
    """Stream the batches into Parquet files of at most ``rows_per_file`` rows; returns files and columns."""
    import pyarrow.parquet as pq

    files: list[Path] = []
    columns: list[str] = []
    writer: Any = None
    rows_in_file = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None or rows_in_file >= rows_per_file:
                if writer is not None:
                    writer.close()
                files.append(folder / f"part-{len(files):05d}.parquet")
                writer = pq.ParquetWriter(files[-1], batch.schema)
                columns = list(batch.schema.names)
                rows_in_file = 0
            writer.write(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
            rows_in_file += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return files, columns

"""Archive fact partitions (one table, one day) to Parquet in cold storage, and restore them.

Order of work for one partition, each step safe to crash in:

1. stream the day's rows (``hook.query_batches``: Arrow batches of fixed types) into
   ``{root}/{table}/dt={day}/part-000.parquet``, computing a content checksum;
2. read the file back in batches: same row count and checksum, or stop;
3. record it in ``ops.archive_manifest`` (deleted_from_warehouse_at still NULL);
4. in ONE transaction: check the warehouse still holds the same number of rows,
   delete the day and stamp the manifest.

A crash before 3 leaves a file that the rerun rewrites; after 3 and before 4, the
rerun verifies the file against the manifest again and deletes. Nothing is
deleted that is not verified in storage, and nothing is archived twice.

The checksum is order-independent: the sum modulo 2^64 of a 64-bit hash of every
row (pandas' ``hash_pandas_object``, vectorised per batch), with the row count.
Both warehouses run this module; what differs is how a day is locked, deleted
and put back (``warehouse_hooks.day_storage``). On PostgreSQL the fact tables
are partitioned by day (``day_partitions.PartitionedDays``), so step 4 detaches
and drops one partition: instant, and the space is free at once. On Snowflake
(``snowflake_warehouse.SnowflakeDays``) it deletes the day's rows.

Restore (``python -m acme_pipelines.archive restore --table T --day D``) reads
the file, verifies it against the manifest, and puts it back in one
transaction (COPY into a new partition; on Snowflake staged Parquet and an
INSERT): the same rows, bit for bit (a test compares table checksums).

A file's columns are the table's (``information_schema``), ``_run_id`` and
``_loaded_at`` included: JSON as its text, as each database writes it
(``{"a": 1}`` on PostgreSQL, ``{"a":1}`` on Snowflake), and an ``int`` column as
``int32`` on PostgreSQL, ``int64`` on Snowflake (every integer is
``NUMBER(38,0)`` there).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from acme_pipelines.arrow_types import JSON_TYPES, arrow_type
from acme_pipelines.day_partitions import PARTITIONED
from acme_pipelines.warehouse import WarehouseHook, plain_name, upsert_row
from acme_pipelines.warehouse_hooks import day_storage, warehouse_hook

# Tables archived by day, with the key that orders rows in the files.
ARCHIVED = PARTITIONED  # the fact tables kept by day (partitions on PostgreSQL), by their business key
FILE_NAME = "part-000.parquet"
BATCH_ROWS = 50_000
_MASK = (1 << 64) - 1


class ArchiveVerificationError(RuntimeError):
    """The file in storage does not hold exactly the partition's rows; nothing was deleted."""


@dataclass(frozen=True)
class Outcome:
    table: str
    day: date
    rows: int
    path: str
    action: str  # archived | resumed | already archived


class Checksum:
    """Order-independent content checksum of Arrow batches (see the module docstring)."""

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def add(self, batch: pa.RecordBatch) -> None:
        from pandas.util import hash_pandas_object

        if batch.num_rows:
            hashes = hash_pandas_object(batch.to_pandas(), index=False).to_numpy()
            self.total = (self.total + int(hashes.sum(dtype="uint64"))) & _MASK
            self.rows += batch.num_rows

    @property
    def hexdigest(self) -> str:
        return f"{self.rows}:{self.total:016x}"


@dataclass(frozen=True)
class Layout:
    """How a table's rows are read into Arrow: the schema, the SELECT list, and its JSON columns (read as text)."""

    schema: pa.Schema
    select: str
    json_columns: tuple[str, ...]


def table_layout(cur: Any, table: str) -> Layout:
    """``table``'s layout from the warehouse's ``information_schema`` (PostgreSQL or Snowflake type names)."""
    schema_name, name = plain_name(table).split(".")
    cur.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE lower(table_schema) = %s AND lower(table_name) = %s ORDER BY ordinal_position",
        (schema_name, name),
    )
    columns = [(plain_name(c.lower()), t, p, s) for c, t, p, s in cur.fetchall()]
    if not columns:
        raise ValueError(f"{table} does not exist")
    fields = [pa.field(column, arrow_type(kind, precision, scale)) for column, kind, precision, scale in columns]
    json_columns = tuple(column for column, data_type, _, _ in columns if data_type.lower() in JSON_TYPES)
    # to_json: the JSON text of any value (PostgreSQL: as jsonb::text; Snowflake: TO_JSON, where a cast of a VARIANT
    # string would drop its quotes)
    select = ", ".join(f"CAST(to_json({c}) AS text) AS {c}" if c in json_columns else c for c, _, _, _ in columns)
    return Layout(pa.schema(fields), select, json_columns)


def partition_path(root: Any, table: str, day: date) -> Any:
    return root / table / f"dt={day.isoformat()}" / FILE_NAME


def write_partition(
    hook: WarehouseHook, conn: Any, table: str, day: date, path: Any, storage_options: dict | None = None
) -> Checksum:
    """Stream the day's rows (a server-side cursor, or Snowflake's result chunks) into a Parquet file at
    ``path``; the checksum of what was written."""
    import pyarrow.parquet as pq

    with conn.cursor() as cur:
        layout = table_layout(cur, table)
    query = f"SELECT {layout.select} FROM {table} WHERE dt = %(dt)s ORDER BY {plain_name(ARCHIVED[table])}"
    checksum = Checksum()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb", **(storage_options or {})) as out,
        pq.ParquetWriter(out, layout.schema, compression="zstd") as w,
    ):
        for batch in hook.query_batches(conn, query, {"dt": day}, BATCH_ROWS, schema=layout.schema):
            w.write_batch(batch)
            checksum.add(batch)
    return checksum


def file_batches(path: Any) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    with path.open("rb") as stream:
        yield from pq.ParquetFile(stream).iter_batches(batch_size=BATCH_ROWS)


def read_back(path: Any) -> Checksum:
    checksum = Checksum()
    for batch in file_batches(path):
        checksum.add(batch)
    return checksum


def _manifest(cur: Any, table: str, day: date) -> tuple | None:
    cur.execute(
        "SELECT object_path, row_count, checksum, deleted_from_warehouse_at FROM ops.archive_manifest "
        "WHERE table_name = %s AND partition = %s",
        (table, day),
    )
    return cur.fetchone()


def _count(cur: Any, table: str, day: date) -> int:
    cur.execute(f"SELECT count(*) FROM {plain_name(table)} WHERE dt = %s", (day,))
    return int(cur.fetchone()[0])


def days_to_archive(hook: WarehouseHook, table: str, before: date) -> list[date]:
    """Days older than ``before`` still in the warehouse, and days whose archival did not finish."""
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT dt FROM {plain_name(table)} WHERE dt < %s GROUP BY dt UNION "
            "SELECT partition FROM ops.archive_manifest "
            "WHERE table_name = %s AND deleted_from_warehouse_at IS NULL ORDER BY 1",
            (before, table),
        )
        return [row[0] for row in cur.fetchall()]


def archive_partition(
    hook: WarehouseHook,
    table: str,
    day: date,
    root: Any,
    run_id: str,
    *,
    storage_options: dict | None = None,
    fail_after: str | None = None,
) -> Outcome:
    """Archive one (table, day) as the module docstring says; ``fail_after`` injects a crash (tests)."""
    path = partition_path(root, table, day)
    days = day_storage(hook)
    with hook.scoped_connection() as conn:
        with conn.cursor() as cur:
            found = _manifest(cur, table, day)
            rows_here = _count(cur, table, day)
        conn.commit()
        if found and found[3] is not None and rows_here == 0:
            return Outcome(table, day, found[1], found[0], "already archived")
        verified = None
        if found and found[3] is None:  # recorded, not deleted: an earlier run stopped before the delete
            stored = read_back(path)
            if (stored.rows, stored.hexdigest) == (found[1], found[2]) and rows_here == found[1]:
                verified, action = stored, "resumed"
        if verified is None:
            written = write_partition(hook, conn, table, day, path, storage_options)
            if fail_after == "write":
                raise RuntimeError("injected failure after writing the file")
            stored = read_back(path)
            if stored.hexdigest != written.hexdigest:
                raise ArchiveVerificationError(
                    f"{path}: read back {stored.hexdigest}, wrote {written.hexdigest}; nothing deleted"
                )
            with conn.cursor() as cur:
                hook.begin(cur)
                upsert_row(
                    hook,
                    cur,
                    "ops.archive_manifest",
                    {"table_name": table, "partition": day},
                    {"object_path": str(path), "row_count": written.rows, "checksum": written.hexdigest,
                     "bytes": _size(path), "run_id": run_id, "archived_at": datetime.now(UTC),
                     "deleted_from_warehouse_at": None},
                )  # fmt: skip
            conn.commit()
            if fail_after == "manifest":
                raise RuntimeError("injected failure after recording the manifest")
            verified, action = written, "archived"
        with conn.cursor() as cur:
            hook.begin(cur)
            days.lock(cur, table, day)
            now_here = _count(cur, table, day)
            if now_here != verified.rows:
                cur.execute("DELETE FROM ops.archive_manifest WHERE table_name = %s AND partition = %s", (table, day))
                conn.commit()
                raise ArchiveVerificationError(
                    f"{table} {day}: {now_here} rows now, {verified.rows} archived (a load changed the day); "
                    "nothing deleted, the manifest row dropped: rerun to archive it again"
                )
            deleted = days.delete(cur, table, day)
            if deleted is not None and deleted != verified.rows:  # a publish of the day came in between: roll back
                raise ArchiveVerificationError(
                    f"{table} {day}: deleting found {deleted} rows, {verified.rows} archived (a load changed the day); "
                    "nothing deleted: rerun to archive it again"
                )
            cur.execute(
                "UPDATE ops.archive_manifest SET deleted_from_warehouse_at = %s "
                "WHERE table_name = %s AND partition = %s",
                (datetime.now(UTC), table, day),
            )
        conn.commit()
    return Outcome(table, day, verified.rows, str(path), action)


def _size(path: Any) -> int | None:
    try:
        return int(path.stat().st_size)
    except (AttributeError, OSError, TypeError):
        return None


def restore_partition(hook: WarehouseHook, table: str, day: date) -> int:
    """Put an archived (table, day) back from its file, verified against the manifest; returns the rows."""
    from airflow.sdk import ObjectStoragePath

    days = day_storage(hook)
    with hook.scoped_connection() as conn:
        with conn.cursor() as cur:
            days.lock(cur, table, day)
            found = _manifest(cur, table, day)
            if not found or found[3] is None:
                raise ValueError(f"{table} {day} is not archived (see ops.archive_manifest)")
            object_path, row_count, checksum, _ = found
            if _count(cur, table, day):
                raise ValueError(f"{table} {day} has rows in the warehouse; not restoring over them")
            layout = table_layout(cur, table)
        stored = Checksum()

        def verified_batches() -> Iterator[pa.RecordBatch]:
            for batch in file_batches(ObjectStoragePath(object_path)):
                stored.add(batch)
                yield batch

        def finish(cur: Any, elsewhere: int) -> None:
            if stored.hexdigest != checksum:
                raise ArchiveVerificationError(f"{object_path}: {stored.hexdigest} != manifest {checksum}")
            if elsewhere:  # loaded again by a newer day since: the newer day wins (contract §2)
                raise ValueError(
                    f"{table} {day}: {elsewhere} of its keys were published by other days since it was archived; "
                    "restoring would hold them twice. Nothing restored."
                )
            cur.execute(
                "UPDATE ops.archive_manifest SET deleted_from_warehouse_at = NULL, restored_at = %s "
                "WHERE table_name = %s AND partition = %s",
                (datetime.now(UTC), table, day),
            )

        days.restore(
            conn, table, day, verified_batches(), key=ARCHIVED[table], json_columns=layout.json_columns, finish=finish
        )
    return row_count


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acme_pipelines.archive", description="Restore archived days.")
    sub = parser.add_subparsers(dest="command", required=True)
    restore = sub.add_parser("restore", help="bring an archived day of a table back into the warehouse")
    restore.add_argument("--table", required=True, choices=sorted(ARCHIVED))
    restore.add_argument("--day", required=True, type=date.fromisoformat)
    restore.add_argument("--conn-id", default="warehouse", help="Airflow connection of the warehouse")
    args = parser.parse_args(list(argv) if argv is not None else None)
    rows = restore_partition(warehouse_hook(args.conn_id), args.table, args.day)
    print(f"restored {rows:,} rows of {args.table} for {args.day}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

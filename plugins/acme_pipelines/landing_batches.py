"""A landing day as validated batches, backend-neutral: the PostgreSQL and the Snowflake loads both take them.

The day's files are read in name order (``readers``), each batch validated
(``validation``) into rejects and valid rows, with ``amount_usd`` from the day's
FX rates where the source has one, on a background thread one batch ahead of
the writer. How batches are encoded and written is the backend's.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from acme_pipelines.accounting import LoadCounts, LoadFailedError
from acme_pipelines.arrow_types import arrow_type
from acme_pipelines.contract import SourceSpec
from acme_pipelines.readers import RawBatch, data_files, read_batches
from acme_pipelines.usd import amount_usd, rates_e8
from acme_pipelines.validation import validate


@dataclass
class LoadResult:
    counts: LoadCounts
    files: list[str]
    bytes_read: int
    seconds: float


# Sources whose rows carry amount_usd, derived from the day's FX rate (``usd.amount_usd``).
HAS_AMOUNT_USD = {"payments", "pos"}


def partition_files(landing_root: Any, spec: SourceSpec, day: date) -> list[Any]:
    """The day's files of ``spec`` under ``landing_root``, in load order; LoadFailedError when there are none."""
    folder = landing_root / spec.name / f"dt={day.isoformat()}"
    files = data_files(folder, spec)
    if not files:
        raise LoadFailedError(f"no {spec.name} files in {folder}: nothing to load for {day}")
    return files


def files_size(files: list[Any]) -> int:
    """Bytes of the files (0 for one whose size the storage does not tell)."""
    total = 0
    for path in files:
        with contextlib.suppress(AttributeError, OSError, TypeError):
            total += int(path.stat().st_size)
    return total


@dataclass(frozen=True)
class Plan:
    """What every batch of one load is prepared for: staging (all checks in SQL) or the day's new partition
    (typed fact columns only; ``dt``, ``_run_id`` and ``_loaded_at`` are the partition table's defaults)."""

    direct: bool
    day: date
    run_id: str
    loaded_at: str
    rates: dict[str, int] | None  # per_usd * 10^8 by currency, for sources with amount_usd


@dataclass
class Prepared:
    """One batch, validated (and, for COPY, encoded), built on the reader thread.

    ``rejects`` and ``good`` are encoded for the PostgreSQL COPY (``_prepare``)
    or Arrow tables for the Snowflake writer (``prepare_tables``).
    """

    rows_in: int
    rejects: Any
    good: Any
    reasons: dict[str, int]
    missing_fx: set[str]


def prepare_tables(spec: SourceSpec, batch: RawBatch, file_no: int, file_name: str, plan: Plan) -> Prepared:
    """Validate one batch: rejects as an Arrow table (locator, reason, raw_record), valid rows as an Arrow
    table of contract columns as text (plus ``amount_usd`` and the plan's extra columns)."""
    reasons: dict[str, int] = {}
    missing_fx: set[str] = set()
    parts = []
    if batch.malformed:  # records that are not rows: malformed lines, bytes that are not UTF-8
        parts.append(
            pa.table(
                {
                    "locator": [f"{file_name}:{m.line}" for m in batch.malformed],
                    "reason": [m.reason for m in batch.malformed],
                    "raw_record": [m.text for m in batch.malformed],
                }
            )
        )
        for m in batch.malformed:
            reasons[m.reason] = reasons.get(m.reason, 0) + 1
    good = None
    if batch.num_rows:
        checked = validate(batch.columns, spec)
        valid = checked.valid
        n_valid = pc.sum(valid).as_py() or 0

        def locators() -> pa.Array:
            return pc.binary_join_element_wise(f"{file_name}:", pc.cast(batch.lines, pa.string()), "")

        if n_valid < batch.num_rows:
            invalid = pc.invert(valid)
            bad = pa.table(
                {
                    "locator": pc.filter(locators(), invalid),
                    "reason": pc.filter(checked.reasons, invalid),
                    "raw_record": batch.raw_records(invalid),
                }
            )
            parts.append(bad)
            for row in pc.value_counts(bad.column("reason")).to_pylist():
                reasons[row["values"]] = reasons.get(row["values"], 0) + row["counts"]
        if n_valid:
            everything = n_valid == batch.num_rows
            # the day's partition takes the timestamps Arrow parsed; staging takes their text
            source = {**checked.columns, **checked.parsed} if plan.direct else checked.columns
            columns = {name: values if everything else pc.filter(values, valid) for name, values in source.items()}
            if plan.rates is not None:
                usd, missing = amount_usd(columns["amount"], columns["currency"], plan.rates)
                columns["amount_usd"] = usd
                if pc.any(missing).as_py():
                    missing_fx = set(pc.unique(pc.filter(columns["currency"], missing)).to_pylist())
            if plan.direct:  # the day's partition: typed fact columns
                good = typed(pa.table(columns), fact_schema(spec))
            else:  # staged rows, ranked and published in SQL
                extra = {
                    "file_no": pa.array([file_no] * n_valid, pa.int32()),
                    "line_no": pc.filter(batch.lines, valid),
                    "locator": pc.filter(locators(), valid),
                    "raw_record": batch.raw_records(valid),
                }
                good = pa.table({**columns, **extra})
    rejects = pa.concat_tables(parts) if parts else None
    return Prepared(batch.num_rows + len(batch.malformed), rejects, good, reasons, missing_fx)


def fact_schema(spec: SourceSpec) -> pa.Schema:
    """The source's columns in the fact table, typed as the contract says (plus ``amount_usd`` where it has one)."""
    fields = [pa.field(c.name, arrow_type(c.pg_type)) for c in spec.columns]
    if spec.name in HAS_AMOUNT_USD:
        fields.append(pa.field("amount_usd", pa.decimal128(14, 2)))
    return pa.schema(fields)


def typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Validated text columns cast to their contract types (validation guarantees the casts succeed)."""
    return pa.table({f.name: pc.cast(table.column(f.name), f.type) for f in schema}, schema=schema)


def prepared_batches(
    spec: SourceSpec, files: list[Any], batch_rows: int, plan: Plan, prepare: Any
) -> Iterator[Prepared]:
    """Read, validate and encode on a background thread, one batch ahead of the COPY.

    Arrow releases the GIL while it parses and computes, so reading the next
    batch overlaps PostgreSQL ingesting the previous one; the queue holds one
    batch, so memory stays bounded by about two batches.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for file_no, path in enumerate(files):
                for batch in read_batches(path, spec, batch_rows):
                    item = prepare(spec, batch, file_no, str(path), plan)
                    while not stop.is_set():
                        try:
                            handoff.put(item, timeout=0.5)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            handoff.put(done)
        except BaseException as exc:  # handed to the consumer
            handoff.put(exc)

    reader = threading.Thread(target=produce, name=f"read-{spec.name}", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        reader.join()


def add_counts(counts: LoadCounts, prepared: Prepared) -> None:
    counts.rows_in += prepared.rows_in
    for reason, n in prepared.reasons.items():
        counts.reject(reason, n)


def day_rates(conn: Any, day: date) -> dict[str, int]:
    """The day's FX rates as ``usd.rates_e8`` wants them (portable SQL: PostgreSQL and Snowflake)."""
    with conn.cursor() as cur:
        cur.execute("SELECT currency, CAST(per_usd * 100000000 AS BIGINT) FROM core.fx_rates WHERE dt = %s", (day,))
        return rates_e8(cur.fetchall())

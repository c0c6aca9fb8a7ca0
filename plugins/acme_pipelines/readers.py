"""Stream landing files as Arrow batches of raw strings, with line numbers and raw text.

Memory is bounded by ``batch_rows`` / the CSV block size, never by the file.
Files come from local paths or any ``ObjectStoragePath`` (file://, s3://);
``.gz`` files are decompressed on the fly. Every source line ends up in
exactly one place: a batch row, or a ``Malformed`` entry (a line that is not a
record at all). A file that cannot be read at all (wrong header, not UTF-8,
not gzip though named so) raises ``SourceFileError`` naming the file.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from acme_pipelines.contract import Column, SourceSpec
from acme_pipelines.validation import WRONG_TYPE

DEFAULT_BATCH_ROWS = 20_000  # rows per Arrow batch: 2,000,000 rows load as fast as at 50,000, 20 MB smaller
CSV_BLOCK_BYTES = 1 << 18  # the CSV reader reads several blocks ahead: 256 KiB peaked 50 MB below 1 MiB, as fast


class SourceFileError(RuntimeError):
    """A landing file that cannot be read at all; the whole load fails."""


@dataclass(frozen=True)
class Malformed:
    line: int
    text: str


@dataclass
class RawBatch:
    """Contract columns as strings, the 1-based line of each row, and (on demand) its raw record text.

    ``raw`` is either the texts themselves (JSON lines) or a function that
    builds them (CSV: re-encoding costs time, and only rejected or staged rows
    need it).
    """

    columns: pa.Table
    lines: pa.Array
    raw: pa.Array | Callable[[pa.Array | None], pa.Array]
    malformed: list[Malformed]

    @property
    def num_rows(self) -> int:
        return self.columns.num_rows

    def raw_records(self, mask: pa.Array | None = None) -> pa.Array:
        """The raw text of the rows where ``mask`` is true (all rows without a mask)."""
        if callable(self.raw):
            return self.raw(mask)
        return self.raw if mask is None else pc.filter(self.raw, mask)


def data_files(folder: Any, spec: SourceSpec) -> list[Any]:
    """The partition's files for ``spec``, in name order (the order rows are read in)."""
    suffixes = (f".{spec.file_format}", f".{spec.file_format}.gz")
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.name.endswith(suffixes)), key=lambda p: p.name)


def open_binary(path: Any) -> IO[bytes]:
    """Open a local or object-storage file, decompressing ``.gz``; a bad gzip fails here."""
    handle = path.open("rb")
    if not path.name.endswith(".gz"):
        return handle
    stream = gzip.GzipFile(fileobj=handle, mode="rb")
    try:
        stream.peek(1)
    except (OSError, EOFError, zlib.error) as exc:
        handle.close()
        raise SourceFileError(f"{path}: named .gz but is not gzip data ({exc})") from None
    return stream


def read_batches(path: Any, spec: SourceSpec, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[RawBatch]:
    reader = _read_csv if spec.file_format == "csv" else _read_jsonl
    try:
        yield from reader(path, spec, batch_rows)
    except SourceFileError:
        raise
    except (UnicodeDecodeError, pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        raise SourceFileError(f"{path}: cannot be read: {exc}") from exc


# -- CSV ----------------------------------------------------------------------------------


def _read_csv(path: Any, spec: SourceSpec, batch_rows: int) -> Iterator[RawBatch]:
    malformed: list[Malformed] = []

    def on_invalid(row: Any) -> str:
        malformed.append(Malformed(row.number + 1, row.text))  # +1: the header was read above
        return "skip"

    with open_binary(path) as stream:
        header_line = stream.readline()
        try:
            header = next(iter(_csv_rows(header_line.decode("utf-8"))))
        except (UnicodeDecodeError, StopIteration):
            raise SourceFileError(f"{path}: no readable header row") from None
        if sorted(header) != sorted(spec.column_names):
            raise SourceFileError(
                f"{path}: header {header} does not match the contract columns {list(spec.column_names)}"
            )
        reader = pacsv.open_csv(
            pa.PythonFile(stream, mode="r"),
            read_options=pacsv.ReadOptions(
                column_names=header, block_size=min(CSV_BLOCK_BYTES, batch_rows * 64), use_threads=False
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        next_line = 2  # line 1 is the header
        pending: list[pa.RecordBatch] = []
        pending_lines: list[np.ndarray] = []
        pending_malformed: list[Malformed] = []

        def flush() -> RawBatch:
            table = pa.Table.from_batches(pending) if pending else _empty(spec)
            lines = np.concatenate(pending_lines) if pending_lines else np.array([], np.int64)
            batch = RawBatch(
                columns=table.select(list(spec.column_names)),
                lines=pa.array(lines, pa.int64()),
                raw=functools.partial(_csv_record_text, table, header),
                malformed=pending_malformed[:],
            )
            pending.clear()
            pending_lines.clear()
            pending_malformed.clear()
            return batch

        rows = 0
        for block in reader:
            # Malformed lines are reported (with their line numbers) before the
            # block that follows them is returned, so the valid rows' line
            # numbers are the lines not taken by malformed ones.
            skipped = np.array(sorted(m.line for m in malformed if m.line >= next_line), dtype=np.int64)
            span = np.arange(next_line, next_line + block.num_rows + len(skipped), dtype=np.int64)
            lines = np.setdiff1d(span, skipped, assume_unique=True)[: block.num_rows] if len(skipped) else span
            if block.num_rows:
                next_line = int(lines[-1]) + 1
            pending.append(block)
            pending_lines.append(lines)
            pending_malformed.extend(malformed)
            malformed.clear()
            rows += block.num_rows
            if rows >= batch_rows:  # small CSV blocks keep the reader's read-ahead small; batches stay big
                yield flush()
                rows = 0
        pending_malformed.extend(malformed)
        if pending or pending_malformed:
            yield flush()


def _csv_rows(text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text))


def _csv_record_text(table: pa.Table, header: list[str], mask: pa.Array | None = None) -> pa.Array:
    """Each row (where ``mask``) re-encoded as a CSV record in the file's column order (RFC 4180 quoting)."""
    if mask is not None:
        table = table.filter(mask)
    parts = []
    for name in header:
        values = table.column(name).combine_chunks()
        needs_quotes = pc.match_substring_regex(values, r'[",\r\n]')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
        parts.append(pc.if_else(needs_quotes, quoted, values))
    return pc.binary_join_element_wise(*parts, ",")


def _empty(spec: SourceSpec) -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in spec.column_names})


# -- JSON lines ---------------------------------------------------------------------------

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _read_jsonl(path: Any, spec: SourceSpec, batch_rows: int) -> Iterator[RawBatch]:
    columns: dict[str, list] = {name: [] for name in spec.column_names}
    lines: list[int] = []
    raw: list[str] = []
    malformed: list[Malformed] = []

    def flush() -> RawBatch:
        batch = RawBatch(
            pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()}),
            pa.array(lines, pa.int64()),
            pa.array(raw, pa.string()),
            malformed[:],
        )
        for values in columns.values():
            values.clear()
        lines.clear()
        raw.clear()
        malformed.clear()
        return batch

    with open_binary(path) as stream:
        for number, line_bytes in enumerate(stream, 1):
            text = line_bytes.decode("utf-8").rstrip("\r\n")  # not UTF-8: the file fails
            if not text.strip():
                continue
            try:
                record = _decoder.decode(text)
            except msgspec.DecodeError:
                record = None
            if not isinstance(record, dict):
                malformed.append(Malformed(number, text))
                continue
            for column in spec.columns:
                columns[column.name].append(_as_text(column, record.get(column.name)))
            lines.append(number)
            raw.append(text)
            if len(lines) >= batch_rows:
                yield flush()
    if lines or malformed:
        yield flush()


def _as_text(column: Column, value: Any) -> str | None:
    """A JSON value as the string the validator checks; the wrong JSON type is marked."""
    if value is None:
        return None
    if column.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return str(value) if ok else WRONG_TYPE + str(value)
    if column.kind == "json_object":
        return _encoder.encode(value).decode() if isinstance(value, dict) else WRONG_TYPE + str(value)
    return value if isinstance(value, str) else WRONG_TYPE + str(value)

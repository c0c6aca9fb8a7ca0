"""Stream landing files as Arrow batches of raw strings, with line numbers and raw text.

Memory is bounded by ``batch_rows`` / the CSV block size, never by the file.
Files come from local paths or any ``ObjectStoragePath`` (file://, s3://);
``.gz`` files are decompressed on the fly. Files are read as CONTRACT.md §1.2
says real systems write them: UTF-8 with or without a byte-order mark, LF or
CRLF line ends, RFC 4180 quoting (a quoted value may hold commas, quotes and
line breaks), a CSV with a header and no rows is a file of zero rows.

Every source record ends up in exactly one place: a batch row, or a
``Malformed`` entry with its reason: ``malformed_line`` (not a record at all)
or ``bad_encoding`` (its bytes are not UTF-8; the rest of the file loads).
A ``bad_encoding`` entry keeps the record's raw bytes, escaped (``escape_bytes``).
A file that cannot be read at all (missing or wrong header, a zero-byte CSV,
not gzip though named so, a truncated gzip) raises ``SourceFileError`` naming
the file.

SQLite files (docs/contract.md §1.4) are databases, not text: the spec's table
is read ``batch_rows`` rows at a time in rowid order, opened read-only and
immutable (nothing is written beside the file, no lock is taken), each value
turned into the text a CSV would hold (``_sqlite_text``), so the same rules
reject the same values; a row's line is its rowid and its raw record a JSON
object of its contract columns. A file that is not a SQLite database, or is
corrupt, or lacks the table or one of its contract columns, raises
``SourceFileError`` naming the file (and the table). A file that is not on the
local disk (s3://) is copied to a temporary file first: SQLite reads local files.

UTF-8 is checked while streaming, one read of the CSV reader at a time
(``_Utf8Checked``): a clean file passes through untouched. In a read that is not
UTF-8, each invalid byte is replaced by a private-use character that stands for
it (``MARK``), so that Arrow's reader still parses the file; the records holding
one are then taken out of their batch as ``bad_encoding`` with their bytes restored.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import gzip
import io
import math
import shutil
import sqlite3
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from acme_pipelines.contract import Column, SourceSpec
from acme_pipelines.validation import WRONG_TYPE

DEFAULT_BATCH_ROWS = 20_000  # rows per Arrow batch: 2,000,000 rows load as fast as at 50,000, 20 MB smaller
CSV_BLOCK_BYTES = 1 << 18  # the CSV reader reads several blocks ahead: 256 KiB peaked 50 MB below 1 MiB, as fast
BOM = codecs.BOM_UTF8
MALFORMED_LINE = "malformed_line"
BAD_ENCODING = "bad_encoding"
# An invalid byte b stands in the text as chr(MARK + b) while a file is parsed: U+10FF00..U+10FFFF, the end of
# Supplementary Private Use Area-B. Their UTF-8 encodings all start with F4 8F (``_MARK_PREFIX``).
MARK = 0x10FF00
_MARK_PREFIX = b"\xf4\x8f"
_MARK_PATTERN = "[\\x{10FF00}-\\x{10FFFF}]"
_MARK_ERRORS = "acme_pipelines.readers.mark"
_HELD_BACK = 4  # at most the bytes a read holds back for the next: a cut UTF-8 sequence (3) and a CR


class SourceFileError(RuntimeError):
    """A landing file that cannot be read at all; the whole load fails."""


@dataclass(frozen=True)
class Malformed:
    """A source record that is not a row: its line, raw text and reason (``malformed_line``, ``bad_encoding``)."""

    line: int
    text: str
    reason: str = MALFORMED_LINE


def escape_bytes(data: bytes) -> str:
    """Bytes that are not all UTF-8 as text: valid UTF-8 as itself, each invalid byte as ``\\xNN``, a backslash
    as ``\\\\``. ``codecs.escape_decode(text.encode())[0]`` gives the bytes back exactly."""
    return data.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def _mark_invalid(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(chr(MARK + b) for b in error.object[error.start : error.end]), error.end


codecs.register_error(_MARK_ERRORS, _mark_invalid)
_UNMARK = {0x5C: "\\\\", **{MARK + b: f"\\x{b:02x}" for b in range(256)}}


def _unmarked(text: str) -> str:
    """Text read with invalid bytes marked, escaped as ``escape_bytes`` escapes the original bytes."""
    return text.translate(_UNMARK)


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
    """The partition's files for ``spec``, in name order (the order rows are read in). Text formats may be
    gzipped (``.csv.gz``); a database file (``.sqlite``) may not."""
    suffixes = (
        (f".{spec.file_format}",)
        if spec.file_format == "sqlite"
        else (f".{spec.file_format}", f".{spec.file_format}.gz")
    )
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.name.endswith(suffixes)), key=lambda p: p.name)


def open_binary(path: Any) -> IO[bytes]:
    """Open a local or object-storage file, decompressing ``.gz``; a bad gzip (or a zero-byte one) fails here."""
    handle = path.open("rb")
    if not path.name.endswith(".gz"):
        return handle
    stream = gzip.GzipFile(fileobj=handle, mode="rb")
    try:
        if not stream.peek(1) and not _gzip_bytes_read(handle):
            raise EOFError("the file is empty")
    except (OSError, EOFError, zlib.error) as exc:
        handle.close()
        raise SourceFileError(f"{path}: named .gz but is not gzip data ({exc})") from None
    return stream


def _gzip_bytes_read(handle: Any) -> bool:
    """Whether the gzip reader consumed any byte of ``handle`` (an empty gzip member still has 20)."""
    try:
        return handle.tell() > 0
    except (AttributeError, OSError, ValueError):
        return True


def read_batches(path: Any, spec: SourceSpec, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[RawBatch]:
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "sqlite": _read_sqlite}[spec.file_format]
    try:
        yield from reader(path, spec, batch_rows)
    except SourceFileError:
        raise
    except sqlite3.DatabaseError as exc:  # not a database, corrupt, unreadable
        raise SourceFileError(f"{path}: cannot be read as a SQLite database: {exc}") from exc
    except (UnicodeDecodeError, pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        raise SourceFileError(f"{path}: cannot be read: {exc}") from exc


# -- CSV ----------------------------------------------------------------------------------


class _Utf8Checked:
    """The bytes after a CSV header, as Arrow's CSV reader reads them, checked for UTF-8 on the way.

    Each read is decoded (Python's decoder checks clean ASCII or UTF-8 at memory speed) and, when it is valid,
    handed on as it is. A sequence cut by the end of a read waits for the next one. A read that is not UTF-8 is
    handed on with each invalid byte replaced by its stand-in (``MARK``): ``escaped`` then says the batches
    hold such rows. A read never ends with a CR: Arrow's reader (pyarrow 26) can drop the LF of a CRLF inside
    quotes when a block ends between the two. That keeps it from happening at this reader's block sizes (in
    blocks of a few hundred bytes it still does; line numbers stay right, as ``_breaks`` counts a lone CR).
    """

    def __init__(self, stream: IO[bytes], path: Any) -> None:
        self._stream = stream
        self._path = path
        self._out = b""  # ready to hand on
        self._tail = b""  # the start of a sequence cut by the end of the last read
        self._eof = False
        self._mark_like = False  # the file holds bytes that look like a stand-in (F4 8F ...)
        self.escaped = False
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(functools.partial(self.read, CSV_BLOCK_BYTES), b""))
        # Hand on (nearly) ``size`` bytes: Arrow's reader fails on a record that spans three of its blocks, so
        # what is left of a read that stand-ins made longer is topped up, not handed on as a block of its own.
        while len(self._out) < max(size - _HELD_BACK, 1) and not self._eof:
            self._fill(size - len(self._out))
        if len(self._out) <= size:
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:size], self._out[size:]
        return out

    def at_end(self) -> bool:
        """Whether nothing follows (reads ahead, without losing what it read)."""
        while not self._out and not self._eof:
            self._fill(CSV_BLOCK_BYTES)
        return not self._out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def _fill(self, size: int) -> None:
        data = self._stream.read(max(size - len(self._tail), 4))
        if not data:
            self._eof = True
            data, self._tail = self._tail, b""  # a sequence the file cuts off: invalid, marked below
        else:
            if self._tail:
                data = self._tail + data
            cut = _complete_prefix(data)
            if data[cut - 1 : cut] == b"\r":  # (Arrow's reader loses a quoted CRLF's LF cut from its CR)
                cut -= 1
            if cut < len(data):
                data, self._tail = data[:cut], data[cut:]
            else:
                self._tail = b""
        if not data.isascii():  # the common case is ASCII, which is valid UTF-8
            data = self._checked(data)
        self._out = self._out + data if self._out else data

    def _checked(self, data: bytes) -> bytes:
        """``data`` if it is UTF-8, else ``data`` with each invalid byte replaced by its stand-in."""
        if b"\xf4" in data and _MARK_PREFIX in data:  # (a one-byte search first: much faster)
            self._mark_like = True
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("utf-8", _MARK_ERRORS).encode("utf-8")
            self.escaped = True
        if self.escaped and self._mark_like:
            raise SourceFileError(
                f"{self._path}: holds bytes that are not UTF-8 and characters U+10F000..U+10FFFF, "
                "which this reader cannot tell apart"
            )
        return data


def _complete_prefix(data: bytes) -> int:
    """Where a UTF-8 sequence cut by the end of ``data`` starts (``len(data)`` when none is)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n
        if byte >= 0xC0:  # a lead byte: how long its sequence is
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n - back if back < need else n
    return n  # continuation bytes only: invalid anyway, the decoder says so


def _csv_header(path: Any, stream: IO[bytes], spec: SourceSpec) -> list[str]:
    """The header row (a byte-order mark before it is ignored); SourceFileError unless it names the contract
    columns, in any order."""
    line = stream.readline()
    if line.startswith(BOM):
        line = line[len(BOM) :]
    if not line.strip():
        raise SourceFileError(f"{path}: empty file, no header row" if not line else f"{path}: no header row")
    try:
        header = next(iter(_csv_rows(line.decode("utf-8"))))
    except (UnicodeDecodeError, StopIteration, csv.Error):
        raise SourceFileError(f"{path}: no readable header row") from None
    if sorted(header) != sorted(spec.column_names):
        raise SourceFileError(f"{path}: header {header} does not match the contract columns {list(spec.column_names)}")
    return header


class _Lines:
    """Line numbers of CSV records. Arrow's reader numbers records (1 = the first after the header); a record
    whose quoted values hold line breaks spans that many lines more."""

    def __init__(self) -> None:
        self.next_record = 1
        self.breaks = 0  # line breaks inside the records numbered so far

    def number(
        self, n_rows: int, row_breaks: np.ndarray | None, skipped: list[tuple[int, str]]
    ) -> tuple[np.ndarray, list[tuple[int, str]], list[tuple[int, str]]]:
        """Lines of a block's ``n_rows`` rows and of the records the reader skipped, reported since the last
        block (``(record, text)``). Returns the rows' lines, the skipped records numbered now as
        ``(line, text)``, and those that follow the block's last row, left for the next block."""
        skipped = sorted(skipped)
        numbers = np.array([record for record, _ in skipped], dtype=np.int64)
        span = np.arange(self.next_record, self.next_record + n_rows + len(numbers), dtype=np.int64)
        records = np.setdiff1d(span, numbers, assume_unique=True)[:n_rows] if len(numbers) else span
        if n_rows:  # records after the last row: the next block's (or the file's last ones)
            now = int(np.searchsorted(numbers, records[-1]))
            skipped, later = skipped[:now], skipped[now:]
            numbers = numbers[:now]
        else:
            later = []
        skipped_breaks = np.array([_breaks(text) for _, text in skipped], dtype=np.int64)
        if row_breaks is None:
            row_breaks = np.zeros(n_rows, dtype=np.int64)
        if not (skipped_breaks.any() or row_breaks.any()):
            lines = records + (1 + self.breaks)
            skipped_lines = numbers + (1 + self.breaks)
        else:  # each record starts after the line breaks inside the records before it
            every = np.concatenate([records, numbers])
            breaks = np.concatenate([row_breaks, skipped_breaks])
            order = np.argsort(every, kind="stable")
            before = np.cumsum(breaks[order]) - breaks[order] + self.breaks
            placed = np.empty_like(every)
            placed[order] = every[order] + 1 + before
            lines, skipped_lines = placed[:n_rows], placed[n_rows:]
            self.breaks += int(breaks.sum())
        last = max(int(records[-1]) if n_rows else 0, int(numbers[-1]) if len(numbers) else 0)
        self.next_record = max(self.next_record, last + 1)
        return lines, [(int(line), text) for line, (_, text) in zip(skipped_lines, skipped, strict=True)], later


def _read_csv(path: Any, spec: SourceSpec, batch_rows: int) -> Iterator[RawBatch]:
    reported: list[tuple[int, str]] = []  # records the reader skipped: (record number, text)

    def on_invalid(row: Any) -> str:
        reported.append((row.number, row.text))
        return "skip"

    with open_binary(path) as stream:
        header = _csv_header(path, stream, spec)
        source = _Utf8Checked(stream, path)
        if source.at_end():  # a header and no rows: a file of zero rows
            return
        reader = pacsv.open_csv(
            pa.PythonFile(source, mode="r"),
            read_options=pacsv.ReadOptions(
                column_names=header, block_size=min(CSV_BLOCK_BYTES, batch_rows * 64), use_threads=False
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,  # _Utf8Checked did
            ),
        )
        numbering = _Lines()
        later: list[tuple[int, str]] = []
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
                malformed=sorted(pending_malformed, key=lambda m: m.line),
            )
            pending.clear()
            pending_lines.clear()
            pending_malformed.clear()
            return batch

        rows = 0
        for block in reader:
            # Records the reader skips are reported before the block that holds them is returned, so the
            # block's rows are the records not taken by skipped ones.
            skipped, reported[:] = [*later, *reported], []
            breaks = _line_breaks(block)
            lines, numbered, later = numbering.number(block.num_rows, breaks, skipped)
            pending_malformed.extend(_skipped(line, text) for line, text in numbered)
            if source.escaped and block.num_rows:
                block, lines = _take_bad_encoding(block, lines, header, pending_malformed)
            pending.append(block)
            pending_lines.append(lines)
            rows += block.num_rows
            if rows + len(pending_malformed) >= batch_rows:  # small blocks keep read-ahead small; batches big
                yield flush()
                rows = 0
        _, numbered, _ = numbering.number(0, None, [*later, *reported])
        pending_malformed.extend(_skipped(line, text) for line, text in numbered)
        if pending or pending_malformed:
            yield flush()


def _skipped(line: int, text: str) -> Malformed:
    """A record the CSV reader skipped (not as many fields as the header): malformed, or not UTF-8."""
    if _has_mark(text):
        return Malformed(line, _unmarked(text), BAD_ENCODING)
    return Malformed(line, text, MALFORMED_LINE)


def _has_mark(text: str) -> bool:
    return any(ord(c) >= MARK for c in text) if not text.isascii() else False


def _line_breaks(block: pa.RecordBatch) -> np.ndarray | None:
    """Line breaks (LF, CRLF or a lone CR, as the reader splits records) inside each row's quoted values;
    None when there are none (a look at each column's bytes tells)."""
    total = None
    for column in block.columns:
        data = column.buffers()[2]
        if data is None:
            continue
        text = data.to_pybytes()
        if b"\n" not in text and b"\r" not in text:
            continue
        breaks = sum(pc.count_substring(column, c).to_numpy(zero_copy_only=False) for c in ("\n", "\r"))
        breaks = breaks - pc.count_substring(column, "\r\n").to_numpy(zero_copy_only=False)
        total = breaks if total is None else total + breaks
    return total


def _breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _take_bad_encoding(
    block: pa.RecordBatch, lines: np.ndarray, header: list[str], rejected: list[Malformed]
) -> tuple[pa.RecordBatch, np.ndarray]:
    """Move the rows holding a stand-in for an invalid byte from ``block`` to ``rejected`` (``bad_encoding``,
    their record with the original bytes escaped)."""
    bad = None
    for column in block.columns:
        data = column.buffers()[2]
        if data is not None and _MARK_PREFIX in data.to_pybytes():  # (most blocks: none, a byte search tells)
            found = pc.match_substring_regex(column, _MARK_PATTERN)
            bad = found if bad is None else pc.or_(bad, found)
    if bad is None or not pc.any(bad).as_py():
        return block, lines
    is_bad = bad.to_numpy(zero_copy_only=False)
    texts = _csv_record_text(pa.Table.from_batches([block]), header, bad).to_pylist()
    rejected.extend(
        Malformed(int(line), _unmarked(text), BAD_ENCODING) for line, text in zip(lines[is_bad], texts, strict=True)
    )
    return block.filter(pc.invert(bad)), lines[~is_bad]


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
            if number == 1 and line_bytes.startswith(BOM):
                line_bytes = line_bytes[len(BOM) :]
            try:
                text = line_bytes.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:  # this line is rejected, the rest of the file loads
                text = None
            if text is None or not text.strip():
                if text is None:
                    malformed.append(Malformed(number, escape_bytes(line_bytes.rstrip(b"\r\n")), BAD_ENCODING))
                    if len(malformed) >= batch_rows:
                        yield flush()
                continue
            try:
                record = _decoder.decode(text)
            except msgspec.DecodeError:
                record = None
            if not isinstance(record, dict):
                malformed.append(Malformed(number, text))
                if len(malformed) >= batch_rows:
                    yield flush()
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


# -- SQLite ---------------------------------------------------------------------------------


class _NotUtf8(bytes):
    """A TEXT value whose bytes are not UTF-8 (the reader's text factory returns it instead of failing the fetch;
    a BLOB comes back as plain ``bytes``)."""


def _decode_text(data: bytes) -> str | _NotUtf8:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _NotUtf8(data)


def _sqlite_text(value: Any) -> str | None:
    """A SQLite value as the text a CSV would hold, for the contract's rules: TEXT as itself, an INTEGER in
    decimal, a REAL as the shortest text that reads back as the same number (``12.5``, ``10.125``, ``1e+16``),
    NULL as null; a BLOB is the wrong type for every contract column (marked ``WRONG_TYPE``)."""
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)
    return WRONG_TYPE + _raw_value(value)


def _raw_value(value: Any) -> Any:
    """A SQLite value as it goes into a row's raw record (JSON): numbers and text as they are, a BLOB as its
    SQL literal (``X'0A0B'``), TEXT that is not UTF-8 escaped as ``escape_bytes`` escapes it."""
    if isinstance(value, _NotUtf8):
        return escape_bytes(bytes(value))
    if isinstance(value, bytes):
        return f"X'{value.hex().upper()}'"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _raw_records(names: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """Each row (its rowid first, then the contract columns) as a JSON object of its contract columns."""
    return [
        _encoder.encode({name: _raw_value(v) for name, v in zip(names, row[1:], strict=True)}).decode() for row in rows
    ]


def _column_texts(values: tuple) -> list[str | None]:
    kinds = set(map(type, values))
    if kinds <= {str, type(None)}:  # the common cases first: text, integers
        return list(values)
    if kinds <= {int, type(None)}:
        return [None if v is None else str(v) for v in values]
    return [_sqlite_text(v) for v in values]


@contextlib.contextmanager
def _local_file(path: Any) -> Iterator[Path]:
    """``path`` as a local file: itself when it is on this machine, else a temporary copy (removed after)."""
    if isinstance(path, Path):
        yield path
        return
    if getattr(path, "protocol", None) in ("file", "local"):
        yield Path(path.path)
        return
    with tempfile.TemporaryDirectory(prefix="acme-sqlite-") as folder:
        local = Path(folder) / path.name
        with path.open("rb") as source, local.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        yield local


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_sqlite(path: Any, spec: SourceSpec, batch_rows: int) -> Iterator[RawBatch]:
    table = spec.table or spec.name
    with _local_file(path) as local:
        if not local.is_file():
            raise SourceFileError(f"{path}: no such file")
        # immutable: the landing file does not change (contract), so SQLite takes no lock and writes nothing
        conn = sqlite3.connect(f"file:{quote(str(local.resolve()))}?mode=ro&immutable=1", uri=True)
        try:
            conn.text_factory = _decode_text
            yield from _sqlite_batches(conn, path, spec, table, batch_rows)
        finally:
            conn.close()


def _sqlite_batches(
    conn: sqlite3.Connection, path: Any, spec: SourceSpec, table: str, batch_rows: int
) -> Iterator[RawBatch]:
    found = conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    if found is None:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        raise SourceFileError(f"{path}: no table {table!r} in this SQLite database (its tables: {tables})")
    table = found[0]
    present = {str(name).lower() for (name,) in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))}
    missing = [name for name in spec.column_names if name.lower() not in present]
    if missing:
        raise SourceFileError(f"{path}: table {table!r} has no column {', '.join(missing)} (contract columns: "
                              f"{list(spec.column_names)})")  # fmt: skip
    columns = ", ".join(map(_quoted, spec.column_names))
    try:  # a row's line is its rowid: SELECT ... WHERE rowid = N finds it in the file
        cursor = conn.execute(f"SELECT rowid, {columns} FROM {_quoted(table)} ORDER BY rowid")
        numbered = False
    except sqlite3.OperationalError:  # a WITHOUT ROWID table or a view: rows numbered 1, 2, ... as they come
        cursor = conn.execute(f"SELECT 0, {columns} FROM {_quoted(table)}")
        numbered = True
    seen = 0
    while rows := cursor.fetchmany(batch_rows):
        if numbered:
            rows = [(seen + i, *row[1:]) for i, row in enumerate(rows, 1)]
        seen += len(rows)
        yield _sqlite_batch(spec, rows)


def _sqlite_batch(spec: SourceSpec, rows: list[tuple]) -> RawBatch:
    """One fetch of rows (rowid, contract columns...) as a RawBatch; a row holding text that is not UTF-8 is
    ``bad_encoding``, its raw record keeping the bytes escaped."""
    lines, *values = zip(*rows, strict=True)
    malformed: list[Malformed] = []
    if any(_NotUtf8 in set(map(type, column)) for column in values):  # (rare: look at rows only then)
        bad = [row for row in rows if any(isinstance(v, _NotUtf8) for v in row[1:])]
        texts = _raw_records(spec.column_names, bad)
        malformed = [Malformed(row[0], text, BAD_ENCODING) for row, text in zip(bad, texts, strict=True)]
        rows = [row for row in rows if not any(isinstance(v, _NotUtf8) for v in row[1:])]
        lines, *values = zip(*rows, strict=True) if rows else ((), *(() for _ in spec.column_names))
    table = pa.table(
        {name: pa.array(_column_texts(col), pa.string()) for name, col in zip(spec.column_names, values, strict=True)}
    )

    def raw(mask: pa.Array | None) -> pa.Array:
        chosen = rows if mask is None else [row for row, keep in zip(rows, mask.to_pylist(), strict=True) if keep]
        return pa.array(_raw_records(spec.column_names, chosen), pa.string())

    return RawBatch(table, pa.array(lines, pa.int64()), raw, malformed)

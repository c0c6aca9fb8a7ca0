"""Vectorised contract validation of a batch of raw (string) columns with Arrow compute.

``validate`` returns, for every row, the reason of the first rule it breaks
(null when it breaks none), and the columns to load with timestamps parsed.
Nothing is coerced: a value either matches its rule as written or the row is
rejected. Rows are checked column by column in contract order, so the reason
names the first broken rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from acme_pipelines.arrow_types import UTC_US
from acme_pipelines.contract import Column, SourceSpec

# Readers of typed formats (JSON) prefix a value whose JSON type is wrong
# (a string where a number belongs, ...) with this character, so the value
# fails its rule with ``bad_type`` instead of being converted.
WRONG_TYPE = "\x00"

_INT = r"^-?[0-9]{1,18}$"
_DECIMAL2 = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
_NEGATIVE = r"^-[0-9]+(\.[0-9]+)?$"
_TOO_PRECISE = r"^[0-9]+\.[0-9]{3,}$"
_CURRENCY = r"^[A-Z]{3}$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
_HAS_OFFSET = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"


@dataclass
class Validated:
    reasons: pa.Array  # string, null where the row is valid
    columns: dict[str, pa.Array]  # contract columns, ready to load (timestamps with an explicit offset)
    parsed: dict[str, pa.Array]  # the timestamp columns as Arrow timestamps (null where not valid)

    @property
    def valid(self) -> pa.Array:
        return pc.is_null(self.reasons)


def validate(batch: pa.RecordBatch | pa.Table, spec: SourceSpec) -> Validated:
    """Check every contract column of ``batch`` (string columns named as in the contract)."""
    n = batch.num_rows
    reasons: pa.Array = pa.nulls(n, pa.string())
    columns: dict[str, pa.Array] = {}
    parsed: dict[str, pa.Array] = {}
    for column in spec.columns:  # in contract order, so that a row's reason is the first rule it breaks
        values = _combined(batch.column(column.name)).cast(pa.string())
        own_bad = pa.repeat(pa.scalar(False), n) if column.kind == "timestamp" else None
        for reason, mask in _failures(column, values):
            mask = pc.fill_null(mask, False)
            if pc.any(mask).as_py():  # most checks find nothing: skip the string if_else then
                reasons = pc.if_else(pc.and_kleene(pc.is_null(reasons), mask), pa.scalar(reason), reasons)
                if own_bad is not None:
                    own_bad = pc.or_(own_bad, mask)
        if own_bad is not None:  # well-formed times may still not exist (2026-02-30): parse them
            text, times, impossible = _parse_timestamps(values, pc.invert(own_bad))
            if impossible is not None:
                reasons = pc.if_else(
                    pc.and_kleene(pc.is_null(reasons), impossible), pa.scalar(f"bad_type:{column.name}"), reasons
                )
            # Text with its offset made explicit, for CSV COPY and staging: PostgreSQL parses it to the
            # same instant Arrow just checked, and passing text is faster than formatting parsed times again.
            values = text
            parsed[column.name] = times
        columns[column.name] = values
    return Validated(reasons, columns, parsed)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _failures(column: Column, values: pa.Array) -> list[tuple[str, pa.Array]]:
    """(reason, mask) pairs in the order the rules are checked."""
    name = column.name
    empty = pc.or_kleene(pc.is_null(values), pc.equal(values, ""))
    present = pc.invert(empty)
    checks: list[tuple[str, pa.Array]] = []
    if column.required:
        checks.append((f"missing:{name}", empty))
    wrong_type = pc.starts_with(values, WRONG_TYPE)
    checks.append((f"bad_type:{name}", pc.and_kleene(present, wrong_type)))

    def unless(pattern: str) -> pa.Array:
        return pc.and_kleene(present, pc.invert(pc.match_substring_regex(values, pattern)))

    kind = column.kind
    if kind == "int":
        not_int = unless(_INT)
        checks.append((f"bad_type:{name}", not_int))
        if column.minimum is not None or column.maximum is not None:
            checks.append(
                (f"out_of_range:{name}", _outside(values, pc.and_kleene(present, pc.invert(not_int)), column))
            )
    elif kind == "decimal2":
        malformed = unless(_DECIMAL2)
        # A value _DECIMAL2 accepts is neither negative nor too precise: look closer only when some are not.
        if pc.any(pc.fill_null(malformed, False)).as_py():
            negative = pc.and_kleene(present, pc.match_substring_regex(values, _NEGATIVE))
            checks.append((f"out_of_range:{name}", negative))
            checks.append(
                (f"bad_precision:{name}", pc.and_kleene(present, pc.match_substring_regex(values, _TOO_PRECISE)))
            )
        checks.append((f"bad_type:{name}", malformed))
    elif kind == "currency":
        checks.append((f"bad_format:{name}", unless(_CURRENCY)))
    elif kind == "enum":
        allowed = pc.is_in(values, value_set=pa.array(column.values, pa.string()))
        checks.append((f"bad_enum:{name}", pc.and_kleene(present, pc.invert(allowed))))
    elif kind == "timestamp":
        checks.append((f"bad_type:{name}", unless(_TIMESTAMP)))
    elif kind == "uuid":
        checks.append((f"bad_format:{name}", unless(_UUID)))
    elif kind not in ("text", "json_object"):
        raise ValueError(f"unknown column kind {kind!r} for {name}")
    return checks


def _outside(values: pa.Array, is_int: pa.Array, column: Column) -> pa.Array:
    """Where an integer (``is_int``: the text matched ``_INT``, so it fits an int64) lies outside the column's
    bounds; false elsewhere."""
    is_int = pc.fill_null(is_int, False)
    numbers = pc.cast(pc.if_else(is_int, values, pa.scalar("0")), pa.int64())
    outside = pa.repeat(pa.scalar(False), len(values))
    if column.minimum is not None:
        outside = pc.or_(outside, pc.less(numbers, column.minimum))
    if column.maximum is not None:
        outside = pc.or_(outside, pc.greater(numbers, column.maximum))
    return pc.and_(is_int, outside)


def _parse_timestamps(values: pa.Array, ok: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array | None]:
    """Check ISO 8601 strings (no offset means UTC) where ``ok`` by parsing them; flag impossible dates.

    Returns the text with an explicit offset (``Z`` added where there was none;
    null where not ok), the parsed times, and a mask of rows whose text matched
    the format but is not a real time (2026-02-30), or None.
    """
    has_offset = pc.fill_null(pc.match_substring_regex(values, _HAS_OFFSET), False)
    if not pc.all(has_offset).as_py():
        values = pc.if_else(has_offset, values, pc.binary_join_element_wise(values, pa.scalar("Z"), ""))
    text = values if pc.all(ok).as_py() else pc.if_else(ok, values, pa.scalar(None, pa.string()))
    try:
        return text, pc.cast(text, UTC_US), None
    except pa.ArrowInvalid:
        pass
    # Rare: a well-formed but impossible time. Find it element by element.
    bad = []
    for value in text.to_pylist():
        try:
            if value is not None:
                pc.cast(pa.scalar(value), UTC_US)
            bad.append(False)
        except pa.ArrowInvalid:
            bad.append(True)
    mask = pa.array(bad)
    text = pc.if_else(mask, pa.scalar(None, pa.string()), text)
    return text, pc.cast(text, UTC_US), mask

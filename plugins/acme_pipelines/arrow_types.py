"""The Arrow type of a PostgreSQL column type: one mapping for every module that turns rows into Arrow.

Accepts both spellings PostgreSQL uses: the DDL's (``timestamptz``, ``int``,
``numeric(12,2)``, as the contract writes them) and ``information_schema``'s
(``timestamp with time zone``, ``integer``, ``numeric`` with its precision and
scale given apart). Text, ``char(n)`` and ``json``/``jsonb`` become strings
(JSON as its text).

Snowflake's ``information_schema`` names are read too, for the tables the
migrations derived from the same DDL: ``NUMBER`` (an integer when its scale is
0: every integer column is ``NUMBER(38,0)`` there, so it reads as ``int64``),
``TIMESTAMP_TZ``, ``FLOAT``, and ``TEXT``/``VARIANT`` as strings.
"""

from __future__ import annotations

import re

import pyarrow as pa

UTC_US = pa.timestamp("us", tz="UTC")
_NUMERIC = re.compile(r"^numeric\((\d+),\s*(\d+)\)$")
_TYPES = {
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "smallint": pa.int16(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamptz": UTC_US,
    "timestamp with time zone": UTC_US,
    "double precision": pa.float64(),
    "timestamp_tz": UTC_US,  # Snowflake
    "float": pa.float64(),  # Snowflake
}
JSON_TYPES = {"json", "jsonb", "variant"}  # read as their JSON text


def arrow_type(pg_type: str, precision: int | None = None, scale: int | None = None) -> pa.DataType:
    kind = pg_type.strip().lower()
    if match := _NUMERIC.match(kind):
        return pa.decimal128(int(match[1]), int(match[2]))
    if kind == "numeric":
        return pa.decimal128(precision or 38, scale or 0)
    if kind == "number":  # Snowflake
        return pa.int64() if not scale else pa.decimal128(precision or 38, scale)
    return _TYPES.get(kind, pa.string())

"""Collapse partition-shaped file paths so 29 daily files are one dataset node, and match user targets to names.

``.../payments/dt=2026-11-01/part-000.csv`` -> ``.../payments/dt=*/part-*.csv``;
``models/churn/churn-20261122/model.joblib`` -> ``models/churn/churn-*/model.joblib``.
Only path-like names (a file or object-store namespace, or a name with ``/``) are
collapsed: ``warehouse.core.fact_payments`` stays as it is.
"""

from __future__ import annotations

import re

STORAGE_SCHEMES = frozenset({"file", "s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "wasb", "wasbs", "hdfs"})

# key=value with a digit in the value: dt=2026-11-01, hour=03, run=7 (region=eu stays: it is not a partition of time)
_HIVE = re.compile(r"^([^=]+)=(?=[^=]*\d)[^=]*$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE = r"(?:\d{4}-\d{2}-\d{2}(?:[T_ ]?\d{2}(?::?\d{2}){0,2}(?:\.\d+)?Z?)?|\d{8}(?:T?\d{4,6})?|\d{14}|\d{4}-\d{2})"
# a date as a whole segment or stem (2026-11-01, 20261122.json) or after a separator (churn-20261122, report_2026-11-22)
_DATED = re.compile(rf"(?:(?<=^)|(?<=[-_.]))({_DATE})(?=$|[-_.])")
# part-000.csv, part_00012-c000.snappy.parquet
_PART = re.compile(r"^(part)([-_])\d+")


def is_path_like(namespace: str, name: str) -> bool:
    return namespace.split("://", 1)[0].lower() in STORAGE_SCHEMES or "/" in name


def collapse_segment(segment: str) -> str:
    if _HIVE.match(segment):
        return segment.split("=", 1)[0] + "=*"
    segment = _UUID.sub("*", segment)
    segment = _PART.sub(r"\1\2*", segment)
    return _DATED.sub("*", segment)


def collapse_path(name: str) -> str:
    return "/".join(collapse_segment(segment) for segment in name.split("/"))


def collapse(namespace: str, name: str) -> str:
    """The node name for a dataset: partition segments of path-like names become ``*``."""
    return collapse_path(name) if is_path_like(namespace, name) else name


def boundary_suffix(name: str, target: str) -> bool:
    """``target`` equals ``name`` or ends it right after a ``.`` or ``/`` (``core.t`` ends ``db.core.t``)."""
    if not target or not name.endswith(target):
        return False
    if len(name) == len(target):
        return True
    return name[-len(target) - 1] in "./" or target[0] in "./"


def contains_segments(name: str, target: str) -> bool:
    """``landing/payments`` is a run of whole path segments of ``/data/landing/payments/dt=*/part-*.csv``."""
    core = target.strip("/")
    return bool(core) and "/" in name and f"/{core}/" in f"/{name.strip('/')}/"


def candidate_suffixes(name: str) -> list[str]:
    """Every dot/slash-boundary suffix of a name, for close-match suggestions."""
    out = [name]
    for i, char in enumerate(name):
        if char in "./" and name[i + 1 :]:
            out.append(name[i + 1 :])
    return out

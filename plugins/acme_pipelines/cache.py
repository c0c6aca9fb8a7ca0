"""Versioned snapshots in Redis: readers switch from one complete snapshot to the next atomically.

A refresh writes every key of a new version (``{prefix}:v{N}:{name}``, with a
TTL) while readers still use the current one, then moves the pointer
``{prefix}:current`` to N with one atomic step (a Lua compare-and-set that
never moves it backwards). A reader reads the pointer once and then only keys
of that version, so it sees the old snapshot or the new one, never a mix. The
version before the current one is kept (a reader may be half-way through it);
older versions are deleted, and every version key expires anyway after the
TTL if refreshes stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

DEFAULT_PREFIX = "acme:cache"
META = "_meta"
CHUNK = 1_000

# KEYS[1] = pointer, ARGV[1] = new version; returns the previous version, or -1 if not moved (stale writer).
_SWITCH = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return current
end
return -1
"""


class StaleVersionError(RuntimeError):
    """A newer snapshot was published while this one was being written; this one was discarded."""


@dataclass
class Published:
    version: int
    keys: int
    previous: int | None
    deleted_keys: int


def pointer(prefix: str) -> str:
    return f"{prefix}:current"


def version_base(prefix: str, version: int) -> str:
    return f"{prefix}:v{version}"


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return str(obj)
        if isinstance(obj, datetime | date):
            return obj.isoformat()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.dumps(value, default=default, separators=(",", ":"), sort_keys=True)


def publish(client: Any, prefix: str, entries: Iterable[tuple[str, Any]], ttl_seconds: int) -> Published:
    """Write ``entries`` (name, JSON-able value) as a new version, then switch readers to it."""
    version = int(client.incr(f"{prefix}:version_seq"))
    base = version_base(prefix, version)
    pipe = client.pipeline(transaction=False)
    keys = 0
    for name, value in entries:
        pipe.set(f"{base}:{name}", to_json({"version": version, **value}), ex=ttl_seconds)
        keys += 1
        if keys % CHUNK == 0:
            pipe.execute()
    pipe.set(f"{base}:{META}", to_json({"version": version, "keys": keys}), ex=ttl_seconds)
    pipe.execute()
    previous = int(client.eval(_SWITCH, 1, pointer(prefix), version))
    if previous < 0:
        _delete_version(client, prefix, version)
        raise StaleVersionError(f"{prefix}: version {version} is older than the current one; discarded it")
    deleted = sum(_delete_version(client, prefix, old) for old in versions(client, prefix) if old < previous)
    return Published(version, keys, previous or None, deleted)


def versions(client: Any, prefix: str) -> list[int]:
    """Versions that still have keys (found through their meta key)."""
    found = []
    for key in client.scan_iter(match=f"{prefix}:v*:{META}", count=500):
        text = key.decode() if isinstance(key, bytes) else key
        found.append(int(text[len(prefix) + 2 : -len(META) - 1]))
    return sorted(found)


def _delete_version(client: Any, prefix: str, version: int) -> int:
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{version_base(prefix, version)}:*", count=1_000):
        batch.append(key)
        if len(batch) >= CHUNK:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def read_snapshot(client: Any, prefix: str, names: Sequence[str]) -> tuple[int | None, list[Any]]:
    """What a reader does: the current version, then ``names`` of that version only (None where missing)."""
    current = client.get(pointer(prefix))
    if current is None:
        return None, [None] * len(names)
    version = int(current)
    base = version_base(prefix, version)
    values = client.mget([f"{base}:{name}" for name in names]) if names else []
    return version, [json.loads(v) if v is not None else None for v in values]

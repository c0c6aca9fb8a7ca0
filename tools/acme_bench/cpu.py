"""CPU seconds of the processes a benchmark keeps busy, read from Linux's ``/proc``.

The benchmarks run PostgreSQL on the same machine, so a server backend's CPU time is
``/proc/<backend pid>/stat`` (user + system). A backend is read just before its connection
closes (``CpuMeter.connection``); parallel workers (an index build's, a parallel scan's)
are children of the postmaster that end on their own: the postmaster's reaped children's
time (``cutime``/``cstime``) grows by theirs and by every backend's that ends, so the
workers' share is that growth less the backends read at close. That share also holds any
other session of the server that ended meanwhile: the bench's server has no other users.
Elsewhere (another host, another OS) every figure is ``None`` and printed as ``-``.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import psycopg2.extensions

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat``'s fields after the command name (field 3 on), None when unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a live process."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else None


def reaped_children_cpu(pid: int) -> float | None:
    """User + system CPU seconds of the process's children that ended and were reaped."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / _TICKS if fields else None


def parent_pid(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def wait_gone(pids: list[int], timeout: float = 2.0) -> None:
    """Wait until these processes have ended and been reaped (their ``/proc`` entries gone)."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def own_cpu() -> float:
    """This process's CPU seconds, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds of one timed block: this process, each labelled backend (read as its connection closes),
    and the other PostgreSQL processes that ended meanwhile (parallel workers).

    Connect the block's connections with ``connection_factory=meter.connection(label)``; call ``start(dsn)``
    before and ``stop()`` after (``stop`` waits, up to 2 s, for the closed backends to be reaped)."""

    def __init__(self) -> None:
        self.backends: dict[str, float] = {}
        self._pids: list[int] = []
        self._postmaster: int | None = None
        self._own = self._reaped = 0.0

    def connection(self, label: str) -> type:
        meter = self

        class MeteredConnection(psycopg2.extensions.connection):
            def close(self) -> None:
                if not self.closed:
                    pid = self.get_backend_pid()
                    cpu = process_cpu(pid)
                    if cpu is not None:
                        meter.backends[label] = meter.backends.get(label, 0.0) + cpu
                        meter._pids.append(pid)
                super().close()

        return MeteredConnection

    def start(self, dsn: str) -> None:
        """Find the server's postmaster through a connection of its own to ``dsn`` (closed, and its backend gone,
        before the baselines are read), then read them."""
        probe = psycopg2.connect(dsn)
        backend = probe.get_backend_pid()
        self._postmaster = parent_pid(backend)
        probe.close()
        wait_gone([backend])
        self._reaped = (reaped_children_cpu(self._postmaster) if self._postmaster else None) or 0.0
        self._own = own_cpu()

    def stop(self) -> dict[str, Any]:
        own = own_cpu() - self._own
        wait_gone(self._pids)
        reaped = reaped_children_cpu(self._postmaster) if self._postmaster else None
        workers = None if reaped is None else max(0.0, reaped - self._reaped - sum(self.backends.values()))
        return {"backends": dict(self.backends), "workers": workers, "relay": own}

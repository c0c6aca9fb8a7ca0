"""Parse a DAG folder under a Python audit hook and report its side effects as JSON.

Run in a fresh interpreter (audit hooks cannot be removed):
    python audited_parse.py DAG_FOLDER ALLOWED_ROOT [ALLOWED_ROOT ...]
Airflow itself is imported *before* the hook is installed, so what is
reported is what parsing the DAG files did: network connections, processes
started, files written, files read outside the allowed roots, and the
modules that parsing imported.
"""

from __future__ import annotations

import json
import os
import sys
import time

from airflow.dag_processing.dagbag import DagBag  # warm up: Airflow's own imports are not ours

dag_folder, *allowed = sys.argv[1:]
allowed_roots = tuple(os.path.realpath(p) + os.sep for p in allowed)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
side_effects: list[str] = []


def audit(event: str, args: tuple) -> None:
    if event == "socket.connect":
        side_effects.append(f"network: connect {args[1]!r}")
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork"):
        side_effects.append(f"process: {event} {str(args[:2])[:200]}")
    elif event == "open":
        path, mode, flags = args
        if not isinstance(path, str):
            return
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        real = os.path.realpath(path)
        if writes:
            side_effects.append(f"file write: {path}")
        elif not real.startswith(allowed_roots) and not os.path.isdir(real):
            side_effects.append(f"file read: {path}")


before = set(sys.modules)
sys.addaudithook(audit)
started = time.perf_counter()
bag = DagBag(dag_folder=dag_folder)
elapsed = time.perf_counter() - started
print(
    json.dumps(
        {
            "dag_ids": sorted(bag.dag_ids),
            "import_errors": bag.import_errors,
            "side_effects": side_effects,
            "new_modules": sorted(set(sys.modules) - before),
            "parse_seconds": sum(s.duration.total_seconds() for s in bag.dagbag_stats),
            "wall_seconds": elapsed,
        }
    )
)

"""Read OpenLineage RunEvents from the JSONL files the provider's file transport appends to.

Only COMPLETE events become lineage: that is where the Airflow provider reports a
task's inputs and outputs (START carries none, DAG-run events none, and a FAIL may
name datasets the task never finished writing). Lines that are not JSON objects
with a job name (a crash mid-write leaves a truncated last line) are skipped and
counted, so one bad line does not hide a month of lineage.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LINEAGE_EVENT = "COMPLETE"


class EventsError(Exception):
    """The events input is unusable (missing file, nothing readable); the CLI exits 1."""


@dataclass(frozen=True)
class DatasetRef:
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DatasetSeen:
    """A dataset as one event names it, with its schema facet's columns if the event has one."""

    ref: DatasetRef
    fields: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True)
class JobRun:
    """One COMPLETE event that names datasets: the job read ``inputs`` and wrote ``outputs``."""

    job_namespace: str
    job_name: str
    run_id: str
    event_time: datetime | None
    inputs: tuple[DatasetSeen, ...]
    outputs: tuple[DatasetSeen, ...]


@dataclass
class EventLog:
    paths: list[Path]
    runs: list[JobRun] = field(default_factory=list)
    lines: int = 0
    events: int = 0
    malformed: int = 0
    malformed_at: dict[Path, list[int]] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        out = []
        for path, numbers in self.malformed_at.items():
            shown = ", ".join(str(n) for n in numbers[:5]) + (", ..." if len(numbers) > 5 else "")
            out.append(f"warning: {path}: skipped {len(numbers)} malformed line(s) (line {shown})")
        return out


def default_events_path() -> Path:
    """Where ``make demo`` records events: ``$AIRFLOW_HOME/openlineage/events.jsonl``, else in ``<repo>/.airflow``."""
    home = os.environ.get("AIRFLOW_HOME")
    return (Path(home) if home else REPO_ROOT / ".airflow") / "openlineage" / "events.jsonl"


def resolve_paths(paths: Iterable[Path] | None) -> list[Path]:
    """The event files to read: the given files (a folder means its ``*.json*`` files), else the default file."""
    given = list(paths or []) or [default_events_path()]
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl"))
            if not inside:
                raise EventsError(f"no *.json or *.jsonl files in {path}")
            files.extend(inside)
        elif path.is_file():
            files.append(path)
        else:
            raise EventsError(
                f"no OpenLineage events file at {path}: run `make demo` first (it records the events there), "
                "or point --events at a file"
            )
    return files


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fields(facets: Any) -> tuple[tuple[str, str], ...] | None:
    schema = facets.get("schema") if isinstance(facets, dict) else None
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return None
    return tuple(
        (str(f["name"]), str(f.get("type") or "")) for f in fields if isinstance(f, dict) and f.get("name") is not None
    )


def _datasets(items: Any) -> tuple[DatasetSeen, ...]:
    if not isinstance(items, list):
        return ()
    seen = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("namespace"), str) and isinstance(item.get("name"), str):
            seen.append(DatasetSeen(DatasetRef(item["namespace"], item["name"]), _fields(item.get("facets"))))
    return tuple(seen)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as stream:
        yield from enumerate(stream, start=1)


_QUERY_JOB = re.compile(r"\.query\.\d+$")


def _task_of_query(job: dict, run: dict) -> tuple[dict, dict]:
    """A SQL query's own event (``<dag>.<task>.query.<n>``, from the hook-lineage collector) counts as
    its task's: the job and run of its parent facet. Else the event's own job and run."""
    parent = ((run.get("facets") or {}).get("parent") or {}) if _QUERY_JOB.search(job["name"]) else {}
    if isinstance(parent.get("job"), dict) and isinstance(parent.get("run"), dict) and parent["job"].get("name"):
        return parent["job"], parent["run"]
    return job, run


def read_events(paths: Iterable[Path] | None = None) -> EventLog:
    """Parse every line of every file; keep the COMPLETE events that name datasets."""
    files = resolve_paths(paths)
    log = EventLog(paths=files)
    for path in files:
        for number, line in _lines(path):
            if not line.strip():
                continue
            log.lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            job = event.get("job") if isinstance(event, dict) else None
            if not isinstance(job, dict) or not isinstance(job.get("name"), str):
                log.malformed += 1
                log.malformed_at.setdefault(path, []).append(number)
                continue
            log.events += 1
            if event.get("eventType") != LINEAGE_EVENT:
                continue
            inputs, outputs = _datasets(event.get("inputs")), _datasets(event.get("outputs"))
            if not inputs and not outputs:
                continue
            run = event.get("run") if isinstance(event.get("run"), dict) else {}
            job, run = _task_of_query(job, run)
            log.runs.append(
                JobRun(
                    job_namespace=str(job.get("namespace") or ""),
                    job_name=job["name"],
                    run_id=str(run.get("runId") or ""),
                    event_time=parse_time(event.get("eventTime")),
                    inputs=inputs,
                    outputs=outputs,
                )
            )
    log.runs = _merge_runs(log.runs)
    return log


def _merge_runs(runs: list[JobRun]) -> list[JobRun]:
    """One JobRun per (job, run): a task's own COMPLETE event and its queries' events are one run."""
    merged: dict[tuple[str, str, str], JobRun] = {}
    for number, run in enumerate(runs):
        key = (run.job_namespace, run.job_name, run.run_id or f"#{number}")  # no run id: never merged
        seen = merged.get(key)
        if seen is None:
            merged[key] = run
            continue
        merged[key] = JobRun(
            job_namespace=run.job_namespace,
            job_name=run.job_name,
            run_id=run.run_id,
            event_time=max((t for t in (seen.event_time, run.event_time) if t), default=None),
            inputs=seen.inputs + tuple(d for d in run.inputs if d not in seen.inputs),
            outputs=seen.outputs + tuple(d for d in run.outputs if d not in seen.outputs),
        )
    return list(merged.values())

"""The lineage graph (dataset -> job -> dataset) and the walks that answer "what is downstream / upstream".

The graph is the union over every COMPLETE event read, not the latest run's view:
a table a job stopped writing last week still shows until the events file is
rotated. Dataset nodes are collapsed partition paths (see ``names``) and keep the
concrete names they stand for; columns come from the schema facet of the latest
event that names the dataset with one.
"""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from acme_lineage.events import EventLog
from acme_lineage.names import boundary_suffix, candidate_suffixes, collapse, collapse_path, contains_segments

Direction = Literal["downstream", "upstream"]


@dataclass
class DatasetNode:
    id: str
    namespace: str
    name: str
    members: set[str] = field(default_factory=set)
    fields: tuple[tuple[str, str], ...] = ()
    fields_time: datetime | None = None
    producers: set[str] = field(default_factory=set)
    consumers: set[str] = field(default_factory=set)

    @property
    def kind(self) -> str:
        scheme = self.namespace.split("://", 1)[0].lower()
        if scheme in ("file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "wasbs", "hdfs"):
            return "file"
        if scheme in ("http", "https"):
            return "api"
        if scheme in ("postgres", "postgresql", "mysql", "snowflake", "bigquery", "redshift", "sqlite", "duckdb"):
            return "table"
        return "other"

    @property
    def database(self) -> str | None:
        """``warehouse`` of ``warehouse.core.fact_payments`` (three-part table names only)."""
        parts = self.name.split(".")
        return parts[0] if self.kind == "table" and len(parts) >= 3 else None

    @property
    def count_label(self) -> str:
        """``29 files`` for a collapsed partition node, empty for a single dataset."""
        if len(self.members) <= 1 and self.members <= {self.name}:
            return ""
        noun = "file" if self.namespace == "file" else "object"
        return f"{len(self.members)} {noun}{'s' if len(self.members) != 1 else ''}"


@dataclass
class JobNode:
    id: str
    namespace: str
    name: str
    runs: set[str] = field(default_factory=set)
    last_time: datetime | None = None
    inputs: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    # distinct (inputs, outputs) of its runs: a walk only follows what one run read into what it wrote
    shapes: set[tuple[frozenset[str], frozenset[str]]] = field(default_factory=set)

    @property
    def dag_id(self) -> str:
        return self.name.split(".", 1)[0] if "." in self.name else ""

    @property
    def task_id(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else self.name


@dataclass
class Match:
    """Which datasets a target names; ``how`` says by which rule (exact id, name, suffix, path segments)."""

    target: str
    datasets: list[DatasetNode]
    how: str

    @property
    def databases(self) -> list[str]:
        return sorted({d.database for d in self.datasets if d.database})


@dataclass
class Reach:
    """The datasets and jobs reachable from the matched targets in one direction.

    ``hops``: dataset id -> fewest jobs between it and a target. ``via``: dataset id ->
    the reached jobs that link it (its producers downstream, its consumers upstream).
    ``origins``: dataset id -> indexes of the targets it is reached from.
    ``edges``: the graph edges on those paths (for highlighting).
    """

    direction: Direction
    targets: list[DatasetNode]
    hops: dict[str, int] = field(default_factory=dict)
    via: dict[str, set[str]] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    origins: dict[str, set[int]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)  # (from, to) graph ids walked, in data-flow order

    def by_hop(self) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = {}
        for dataset_id, hop in sorted(self.hops.items(), key=lambda item: (item[1], item[0])):
            grouped.setdefault(hop, []).append(dataset_id)
        return grouped


class LineageGraph:
    def __init__(self) -> None:
        self.datasets: dict[str, DatasetNode] = {}
        self.jobs: dict[str, JobNode] = {}

    @classmethod
    def from_log(cls, log: EventLog) -> LineageGraph:
        graph = cls()
        for run in log.runs:
            job_id = f"{run.job_namespace}/{run.job_name}"
            job = graph.jobs.setdefault(job_id, JobNode(job_id, run.job_namespace, run.job_name))
            job.runs.add(run.run_id or f"#{len(job.runs)}")
            if run.event_time and (job.last_time is None or run.event_time > job.last_time):
                job.last_time = run.event_time
            run_inputs, run_outputs = set(), set()
            for seen, is_output in [(s, False) for s in run.inputs] + [(s, True) for s in run.outputs]:
                node = graph._dataset(seen.ref.namespace, seen.ref.name)
                if seen.fields is not None and (
                    node.fields_time is None or (run.event_time is not None and run.event_time >= node.fields_time)
                ):
                    node.fields, node.fields_time = seen.fields, run.event_time
                if is_output:
                    node.producers.add(job_id)
                    job.outputs.add(node.id)
                    run_outputs.add(node.id)
                else:
                    node.consumers.add(job_id)
                    job.inputs.add(node.id)
                    run_inputs.add(node.id)
            job.shapes.add((frozenset(run_inputs), frozenset(run_outputs)))
        return graph

    def _dataset(self, namespace: str, name: str) -> DatasetNode:
        collapsed = collapse(namespace, name)
        node_id = f"{namespace}/{collapsed}"
        node = self.datasets.get(node_id)
        if node is None:
            node = self.datasets[node_id] = DatasetNode(node_id, namespace, collapsed)
        node.members.add(name)
        return node

    # -- finding the target ---------------------------------------------------------------

    def match(self, target: str) -> Match:
        """Datasets named by ``target``: exact ``namespace/name``, else full name, else suffix, else path segments."""
        target = target.strip()
        # paths are nodes with their partitions folded (dt=* ...); table names are kept as written
        wanted = dict.fromkeys((target, collapse_path(target)))
        nodes = sorted(self.datasets.values(), key=lambda d: d.id)

        def ids(d: DatasetNode) -> set[str]:
            names = {d.name, d.name.lstrip("/")}
            out = {f"{d.namespace}/{n}" for n in names}
            return out | ({f"file://{d.name}"} if d.namespace == "file" else set())

        rules = [
            ("exact namespace/name", lambda d: any(w in ids(d) for w in wanted)),
            ("full name", lambda d: any(w in (d.name, d.name.lstrip("/")) for w in wanted)),
            ("name suffix", lambda d: any(boundary_suffix(d.name, w) for w in wanted)),
            ("path segments", lambda d: any(contains_segments(d.name, w) for w in wanted)),
        ]
        for how, rule in rules:
            found = [d for d in nodes if rule(d)]
            if found:
                return Match(target, found, how)
        return Match(target, [], "no match")

    def suggest(self, target: str, limit: int = 5) -> list[str]:
        """Dataset names closest to ``target`` (difflib over each name's dot/slash suffixes)."""
        wanted = collapse_path(target.strip()).lower()
        scored = []
        for node in self.datasets.values():
            best = max(
                difflib.SequenceMatcher(None, wanted, suffix.lower()).ratio()
                for suffix in candidate_suffixes(node.name)
            )
            scored.append((best, node.name))
        scored.sort(key=lambda item: (-item[0], item[1]))
        close = [name for score, name in scored if score >= 0.6]
        return list(dict.fromkeys(close))[:limit]

    # -- walking ---------------------------------------------------------------------------

    def _step(self, dataset_id: str, direction: Direction) -> dict[str, set[str]]:
        """Job id -> the datasets one hop on from ``dataset_id``, through runs that read (wrote) it."""
        node = self.datasets[dataset_id]
        out: dict[str, set[str]] = {}
        for job_id in sorted(node.consumers if direction == "downstream" else node.producers):
            reached: set[str] = set()
            for inputs, outputs in self.jobs[job_id].shapes:
                if direction == "downstream" and dataset_id in inputs:
                    reached |= outputs
                elif direction == "upstream" and dataset_id in outputs:
                    reached |= inputs
            out[job_id] = reached
        return out

    def reach(self, targets: list[DatasetNode], direction: Direction) -> Reach:
        """Breadth-first from each target; a dataset's hop is the fewest jobs from any target.

        A job is crossed run by run: downstream of a table are the outputs of the runs that read
        it, not everything the job ever wrote (one job name can serve two databases).
        """
        result = Reach(direction, targets)
        target_ids = {t.id for t in targets}
        for index, target in enumerate(targets, start=1):
            hops = {target.id: 0}
            queue = deque([target.id])
            while queue:
                current = queue.popleft()
                for job_id, next_ids in self._step(current, direction).items():
                    hop = hops[current] + 1
                    result.jobs[job_id] = min(result.jobs.get(job_id, hop), hop)
                    result.edges.add((current, job_id) if direction == "downstream" else (job_id, current))
                    for dataset_id in sorted(next_ids - target_ids):
                        result.edges.add((job_id, dataset_id) if direction == "downstream" else (dataset_id, job_id))
                        result.via.setdefault(dataset_id, set()).add(job_id)
                        if dataset_id not in hops:
                            hops[dataset_id] = hop
                            queue.append(dataset_id)
            for dataset_id, hop in hops.items():
                if dataset_id in target_ids:
                    continue
                result.hops[dataset_id] = min(result.hops.get(dataset_id, hop), hop)
                result.origins.setdefault(dataset_id, set()).add(index)
        return result

    def edges(self) -> list[tuple[str, str]]:
        """Every edge as (from, to) node ids: dataset -> job for inputs, job -> dataset for outputs."""
        out = []
        for job in self.jobs.values():
            out.extend((d, job.id) for d in sorted(job.inputs))
            out.extend((job.id, d) for d in sorted(job.outputs))
        return out

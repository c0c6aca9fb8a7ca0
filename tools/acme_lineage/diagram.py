"""What both pictures show: node labels, which nodes and edges are highlighted, and their layout.

Dataset labels drop what every node shares (the common folder of file paths, the
database goes to the second line) so a column stays narrow; the full name is in
the tooltip and the table. The target, the datasets reached and the jobs on the
way are highlighted; with ``related_only`` the rest of the graph is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from acme_lineage.graph import DatasetNode, LineageGraph, Reach
from acme_lineage.layout import Box, Layout, layout

TARGET, REACHED, OTHER = "target", "reached", "other"


@dataclass
class Diagram:
    layout: Layout
    state: dict[str, str]  # box id -> target | reached | other
    kind: dict[str, str]  # box id -> table | file | api | other | job
    tooltip: dict[str, str]
    hot_edges: set[tuple[str, str]]
    direction: str
    title: str


def dataset_box_id(dataset_id: str) -> str:
    return f"d:{dataset_id}"


def job_box_id(job_id: str) -> str:
    return f"j:{job_id}"


def _box(graph: LineageGraph, node_id: str) -> str:
    return dataset_box_id(node_id) if node_id in graph.datasets else job_box_id(node_id)


def _common_folder(names: list[str]) -> int:
    """How many leading path segments all ``names`` share (never the last three of any name)."""
    split = [n.split("/") for n in names]
    if not split:
        return 0
    shared = 0
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        shared += 1
    return max(0, min([shared, *[len(s) - 3 for s in split]]))


def dataset_labels(node: DatasetNode, strip: int, main_namespace: str | None) -> tuple[str, str]:
    """Title and subtitle of a dataset box; the host of tables is only shown when it is not the usual one."""
    if node.kind == "table":
        db = node.database
        title = node.name.split(".", 1)[1] if db else node.name
        where = urlsplit(node.namespace).netloc or node.namespace
        if node.namespace == main_namespace and db:
            return title, db
        return title, f"{db} · {where}" if db else where
    if node.kind == "file":
        title = "/".join(node.name.split("/")[strip:]) if strip else node.name
        scheme = node.namespace.split("://", 1)[0]
        return title, " · ".join(p for p in (scheme if scheme == "file" else node.namespace, node.count_label) if p)
    if node.kind == "api":
        host = urlsplit(node.namespace).netloc or node.namespace
        return f"{host}{node.name if node.name.startswith('/') else '/' + node.name}", "HTTP API"
    return node.name, node.namespace


def build(graph: LineageGraph, reach: Reach, related_only: bool = False, budget_width: float = 1500.0) -> Diagram:
    hot = {dataset_box_id(t.id): TARGET for t in reach.targets}
    hot.update({dataset_box_id(d): REACHED for d in reach.hops})
    hot.update({job_box_id(j): REACHED for j in reach.jobs})

    files_by_namespace: dict[str, list[str]] = {}
    for node in graph.datasets.values():
        if node.kind == "file":
            files_by_namespace.setdefault(node.namespace, []).append(node.name)
    strip = {ns: _common_folder(names) for ns, names in files_by_namespace.items()}
    table_namespaces = Counter(d.namespace for d in graph.datasets.values() if d.kind == "table")
    main_namespace = table_namespaces.most_common(1)[0][0] if table_namespaces else None

    boxes: list[Box] = []
    kind: dict[str, str] = {}
    tooltip: dict[str, str] = {}
    for node in graph.datasets.values():
        box_id = dataset_box_id(node.id)
        if related_only and box_id not in hot:
            continue
        title, subtitle = dataset_labels(node, strip.get(node.namespace, 0), main_namespace)
        bold = hot.get(box_id) == TARGET
        boxes.append(Box(box_id, "dataset", title, subtitle, keep_end=node.kind in ("file", "api"), bold=bold))
        kind[box_id] = node.kind
        extra = f" ({node.count_label})" if node.count_label else ""
        tooltip[box_id] = f"{node.namespace}/{node.name}{extra}"
    for job in graph.jobs.values():
        box_id = job_box_id(job.id)
        if related_only and box_id not in hot:
            continue
        boxes.append(Box(box_id, "job", job.task_id, job.dag_id or job.namespace))
        kind[box_id] = "job"
        tooltip[box_id] = f"job {job.name} ({job.namespace}), {len(job.runs)} COMPLETE run(s)"

    edges = [(_box(graph, a), _box(graph, b)) for a, b in graph.edges()]
    placed = layout(boxes, edges, budget_width)
    walked = {(_box(graph, a), _box(graph, b)) for a, b in reach.edges}
    hot_edges = {(r.source, r.target) for r in placed.routes if (r.source, r.target) in walked}
    names = ", ".join(t.name for t in reach.targets)
    return Diagram(
        layout=placed,
        state={b: hot.get(b, OTHER) for b in placed.boxes},
        kind=kind,
        tooltip=tooltip,
        hot_edges=hot_edges,
        direction=reach.direction,
        title=f"{reach.direction.capitalize()} of {names}",
    )

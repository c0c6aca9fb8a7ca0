"""The plain-text answer printed by ``impact``: what matched, then the datasets reached, grouped by hops.

Downstream lines name the jobs that produce each dataset; upstream lines name the
jobs that read it on the way to the target, and mark sources (nothing in the
events writes them). With several matches (one table in two databases) each line
says which numbered match it is reached from.
"""

from __future__ import annotations

from acme_lineage.events import LINEAGE_EVENT, EventLog
from acme_lineage.graph import DatasetNode, LineageGraph, Match, Reach


def events_summary(log: EventLog) -> str:
    files = ", ".join(str(p) for p in log.paths)
    text = f"{log.events} events in {files}; {len(log.runs)} {LINEAGE_EVENT} events with datasets (union of all runs)"
    return text + (f"; {log.malformed} malformed line(s) skipped" if log.malformed else "")


def display_name(node: DatasetNode) -> str:
    return f"{node.name} ({node.count_label})" if node.count_label else node.name


def match_lines(match: Match) -> list[str]:
    if len(match.datasets) == 1:
        node = match.datasets[0]
        return [f"{match.target} -> {display_name(node)}  [{node.namespace}]"]
    several_dbs = len(match.databases) > 1
    why = f"in different databases ({', '.join(match.databases)})" if several_dbs else f"by {match.how}"
    lines = [f"{match.target} matches {len(match.datasets)} datasets {why}; showing all of them:"]
    width = max(len(display_name(n)) for n in match.datasets)
    for index, node in enumerate(match.datasets, start=1):
        lines.append(f"  [{index}] {display_name(node):<{width}}  {node.namespace}")
    return lines


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    if not rows:
        return []
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]


def format_reach(graph: LineageGraph, match: Match, reach: Reach, log: EventLog) -> str:
    lines = match_lines(match)
    several = len(match.datasets) > 1
    downstream = reach.direction == "downstream"
    lines.append(
        f"{reach.direction.capitalize()}: {len(reach.hops)} dataset(s) through {len(reach.jobs)} job(s)"
        f"  ({events_summary(log)})"
    )
    if not downstream:
        writers = sorted({graph.jobs[j].name for t in match.datasets for j in t.producers})
        lines.append(f"written by: {', '.join(writers) if writers else 'nothing in the events (it is a source)'}")
    if not reach.hops:
        lines.append(
            f"nothing {reach.direction} in the recorded events: "
            + ("no job with a COMPLETE event reads it." if downstream else "no job with a COMPLETE event writes it.")
        )
        return "\n".join(lines)
    for hop, dataset_ids in reach.by_hop().items():
        lines.append("")
        lines.append(f"hop {hop}")
        rows = []
        for dataset_id in dataset_ids:
            node = graph.datasets[dataset_id]
            jobs = ", ".join(sorted(graph.jobs[j].name for j in reach.via[dataset_id]))
            source = "" if downstream or node.producers else "   (source)"
            link = f"<- {jobs}" if downstream else f"-> read by {jobs}{source}"
            if several:
                link += "   [from " + ",".join(str(i) for i in sorted(reach.origins[dataset_id])) + "]"
            rows.append((display_name(node), node.namespace, link))
        lines.extend(_table(rows))
    dags: dict[str, list[str]] = {}
    for job_id in sorted(reach.jobs, key=lambda j: (reach.jobs[j], j)):
        job = graph.jobs[job_id]
        dags.setdefault(job.dag_id or job.namespace, []).append(job.task_id)
    lines.append("")
    lines.append(f"jobs ({len(reach.jobs)}): " + "; ".join(f"{dag}: {', '.join(tasks)}" for dag, tasks in dags.items()))
    return "\n".join(lines)


def no_match_message(target: str, suggestions: list[str]) -> str:
    text = f"no dataset in the events matches {target!r}"
    if suggestions:
        return text + ". Close names:\n" + "\n".join(f"  {s}" for s in suggestions)
    return text + " (and nothing has a similar name)."

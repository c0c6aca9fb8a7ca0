"""One self-contained HTML page: the lineage graph as inline SVG, then tables of the datasets and jobs.

No scripts, stylesheets, fonts or images from anywhere else (it is opened offline
and screenshotted by headless Chromium): styles are inline, the SVG is inline, and
full names are in ``<title>`` tooltips. The only URLs in the page are dataset
namespaces printed as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

from acme_lineage.diagram import OTHER, TARGET, Diagram, dataset_box_id, job_box_id
from acme_lineage.graph import LineageGraph, Match, Reach
from acme_lineage.layout import PAD_X, bezier

KIND_COLOUR = {"table": "#475569", "file": "#15803d", "api": "#7e22ce", "other": "#a16207", "job": "#334155"}
HOT = {"downstream": ("#b91c1c", "#fee2e2"), "upstream": ("#0369a1", "#e0f2fe")}
TARGET_COLOURS = ("#c2410c", "#ffedd5")


def box_style(state: str, kind: str, direction: str) -> tuple[str, str, float]:
    """Stroke, fill and stroke width (SVG px) of a node box: the target, reached, or other; the PNG scales it."""
    if state == TARGET:
        return TARGET_COLOURS[0], TARGET_COLOURS[1], 3.0
    if state == OTHER:
        return "#cbd5e1", "#ffffff" if kind != "job" else "#f1f5f9", 1.2
    hot_stroke, hot_fill = HOT[direction]
    return hot_stroke, hot_fill, 2.0


MAX_COLUMNS_SHOWN = 14

CSS = """
body { margin: 0; padding: 14px 20px 28px; background: #f4f5f7; color: #1f2937;
       font-family: "DejaVu Sans", Verdana, "Segoe UI", sans-serif; font-size: 14px; }
h1 { font-size: 21px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 22px 0 8px; }
.meta { color: #4b5563; font-size: 13px; margin: 2px 0; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 12px; margin-top: 10px; }
.legend { display: flex; flex-wrap: wrap; gap: 16px; font-size: 12.5px; color: #374151; margin: 0 0 6px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.sw { display: inline-block; width: 14px; height: 14px; border-radius: 3px; border: 2px solid; }
svg { display: block; width: 100%; height: auto; margin: 0 auto; }
svg text { font-family: "DejaVu Sans", Verdana, sans-serif; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e5e7eb; }
th { background: #f9fafb; font-weight: 600; color: #374151; position: sticky; top: 0; }
td.name { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; overflow-wrap: anywhere; }
td.ns { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; white-space: nowrap; }
td.cols { font-size: 12px; color: #374151; max-width: 520px; }
tr.target td { background: #fff7ed; }
tr.reached td { background: #fef9f9; }
tr.upstream td { background: #f0f9ff; }
tr.other td { color: #6b7280; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11.5px; border: 1px solid #d1d5db; }
footer { color: #6b7280; font-size: 12px; margin-top: 18px; }
"""


def _svg(diagram: Diagram) -> str:
    plan = diagram.layout
    hot_stroke = HOT[diagram.direction][0]
    out = [
        f'<svg viewBox="0 0 {plan.width:.0f} {plan.height:.0f}" style="max-width:{plan.width:.0f}px" '
        f'role="img" aria-label="{escape(diagram.title)}">',
        "<defs>",
    ]
    for name, colour in (("plain", "#94a3b8"), ("hot", hot_stroke)):
        out.append(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
            f'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    ordered = sorted(plan.routes, key=lambda r: (r.source, r.target) in diagram.hot_edges)  # hot edges on top
    for route in ordered:
        hot = (route.source, route.target) in diagram.hot_edges
        (x0, y0), path = route.points[0], []
        for (c1x, c1y), (c2x, c2y), (x, y) in bezier(route.points):
            path.append(f"C{c1x:.1f},{c1y:.1f} {c2x:.1f},{c2y:.1f} {x:.1f},{y:.1f}")
        style = f'stroke="{hot_stroke}" stroke-width="2.2"' if hot else 'stroke="#cbd5e1" stroke-width="1.3"'
        out.append(
            f'<path d="M{x0:.1f},{y0:.1f} {" ".join(path)}" fill="none" {style} '
            f'marker-end="url(#arrow-{"hot" if hot else "plain"})"/>'
        )
    for box_id, box in plan.boxes.items():
        state, kind = diagram.state[box_id], diagram.kind[box_id]
        left, top = box.x - box.w / 2, box.y - box.h / 2
        stroke, fill, width = box_style(state, kind, diagram.direction)
        radius = box.h / 2 if kind == "job" else 5
        opacity = ' opacity="0.55"' if state == OTHER else ""
        out.append(f'<g class="node {kind} {state}"{opacity}><title>{escape(diagram.tooltip[box_id])}</title>')
        out.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="{radius:.1f}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
        )
        if kind != "job":
            out.append(
                f'<rect x="{left + 1:.1f}" y="{top + 4:.1f}" width="4" height="{box.h - 8:.1f}" rx="2" '
                f'fill="{KIND_COLOUR[kind]}"/>'
            )
        anchor_x = box.x if kind == "job" else left + PAD_X
        anchor = "middle" if kind == "job" else "start"
        for offset, text, size, is_title in box.text_lines():
            colour = "#111827" if is_title else "#6b7280"
            weight = ' font-weight="bold"' if is_title and box.bold else ""
            out.append(
                f'<text x="{anchor_x:.1f}" y="{box.y + offset:.1f}" font-size="{size}" text-anchor="{anchor}" '
                f'fill="{colour}"{weight}>{escape(text)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _legend(diagram: Diagram) -> str:
    hot_stroke, hot_fill = HOT[diagram.direction]
    items = [
        ("target", TARGET_COLOURS[0], TARGET_COLOURS[1], "3px"),
        (diagram.direction, hot_stroke, hot_fill, "3px"),
        ("unrelated", "#cbd5e1", "#ffffff", "3px"),
        ("job (task)", "#94a3b8", "#f1f5f9", "7px"),
    ]
    parts = [
        f'<span><i class="sw" style="border-color:{s};background:{f};border-radius:{r}"></i>{escape(label)}</span>'
        for label, s, f, r in items
    ]
    for kind, label in (("table", "table"), ("file", "files"), ("api", "HTTP API"), ("other", "other")):
        colour = KIND_COLOUR[kind]
        parts.append(
            f'<span><i class="sw" style="border-color:{colour};background:{colour};width:4px"></i>{label}</span>'
        )
    return '<div class="legend">' + "".join(parts) + "</div>"


def _breakable(text: str) -> str:
    """Escaped, with line-break opportunities after ``/`` in paths, else after ``.`` (long names wrap there)."""
    return escape(text).replace("/", "/<wbr>") if "/" in text else escape(text).replace(".", ".<wbr>")


def _columns(fields: tuple[tuple[str, str], ...]) -> str:
    if not fields:
        return '<span style="color:#9ca3af">no schema facet</span>'
    shown = ", ".join(
        f"{escape(n)} <span style='color:#9ca3af'>{escape(t)}</span>" for n, t in fields[:MAX_COLUMNS_SHOWN]
    )
    rest = len(fields) - MAX_COLUMNS_SHOWN
    if rest > 0:
        full = escape(", ".join(n for n, _ in fields))
        shown += f' <span class="tag" title="{full}">+{rest} more</span>'
    return shown


def _dataset_rows(graph: LineageGraph, reach: Reach) -> str:
    targets = {t.id for t in reach.targets}

    def order(dataset_id: str) -> tuple[int, str]:
        if dataset_id in targets:
            return (0, dataset_id)
        return (reach.hops.get(dataset_id, 10_000), dataset_id)

    rows = []
    upstream = reach.direction == "upstream"
    for dataset_id in sorted(graph.datasets, key=order):
        node = graph.datasets[dataset_id]
        if dataset_id in targets:
            css, hop = "target", "target"
        elif dataset_id in reach.hops:
            css, hop = ("upstream" if upstream else "reached"), str(reach.hops[dataset_id])
        else:
            css, hop = "other", "–"
        producers = ", ".join(sorted(graph.jobs[j].name for j in node.producers)) or "<em>source</em>"
        readers = ", ".join(sorted(graph.jobs[j].name for j in node.consumers)) or "–"
        count = f' <span class="tag">{escape(node.count_label)}</span>' if node.count_label else ""
        examples = sorted(node.members)[:3]
        title = escape("\n".join(examples) + ("\n..." if len(node.members) > 3 else ""))
        rows.append(
            f'<tr class="{css}" id="{escape(dataset_box_id(dataset_id))}"><td>{hop}</td>'
            f'<td class="name" title="{title}">{_breakable(node.name)}{count}</td>'
            f'<td class="ns">{escape(node.namespace)}</td><td class="cols">{_columns(node.fields)}</td>'
            f"<td>{escape(producers) if node.producers else producers}</td><td>{escape(readers)}</td></tr>"
        )
    head = "<tr><th>hop</th><th>dataset</th><th>namespace</th><th>columns</th><th>produced by</th><th>read by</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _job_rows(graph: LineageGraph, reach: Reach) -> str:
    rows = []
    for job_id in sorted(graph.jobs, key=lambda j: (reach.jobs.get(j, 10_000), j)):
        job = graph.jobs[job_id]
        css = ("upstream" if reach.direction == "upstream" else "reached") if job_id in reach.jobs else "other"
        last = job.last_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if job.last_time else "–"
        reads = ", ".join(_breakable(graph.datasets[d].name) for d in sorted(job.inputs)) or "–"
        writes = ", ".join(_breakable(graph.datasets[d].name) for d in sorted(job.outputs)) or "–"
        rows.append(
            f'<tr class="{css}" id="{escape(job_box_id(job_id))}"><td class="name">{escape(job.name)}</td>'
            f"<td>{escape(job.namespace)}</td><td>{len(job.runs)}</td><td>{last}</td>"
            f'<td class="name">{reads}</td><td class="name">{writes}</td></tr>'
        )
    head = "<tr><th>job</th><th>namespace</th><th>runs</th><th>last COMPLETE</th><th>reads</th><th>writes</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(diagram: Diagram, graph: LineageGraph, match: Match, reach: Reach, summary: str) -> str:
    matched = ", ".join(f"{t.name} [{t.namespace}]" for t in match.datasets)
    counts = f"{len(reach.hops)} {reach.direction} dataset(s) through {len(reach.jobs)} job(s)"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(diagram.title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(diagram.title)}</h1>
<p class="meta"><b>{escape(match.target)}</b> matched {escape(matched)} ({escape(match.how)}) · {counts}</p>
<p class="meta">{escape(summary)}</p>
<div class="card">
{_legend(diagram)}
{_svg(diagram)}
</div>
<h2>Datasets ({len(graph.datasets)})</h2>
{_dataset_rows(graph, reach)}
<h2>Jobs ({len(graph.jobs)})</h2>
{_job_rows(graph, reach)}
<footer>Generated {generated} by <code>python -m acme_lineage impact</code>. Edges come from COMPLETE events only,
as a union over all runs; partitioned paths (dt=…, dated names, part-NNN) are collapsed into one node.
Columns are from the schema facet of the latest event naming the dataset with one.</footer>
</body>
</html>
"""


def write_html(path: Path, diagram: Diagram, graph: LineageGraph, match: Match, reach: Reach, summary: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(diagram, graph, match, reach, summary), encoding="utf-8")
    return path

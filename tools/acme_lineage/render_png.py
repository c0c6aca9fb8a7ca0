"""The same lineage layout drawn with matplotlib into a PNG (1600x1000 px by default).

matplotlib is imported here, lazily, with the Agg backend: no display needed and
the ``impact`` text answer does not pay for it. The layout's pixel coordinates
are scaled to fit under a title line; font sizes scale with them.
"""

from __future__ import annotations

from pathlib import Path

from acme_lineage.diagram import OTHER, Diagram
from acme_lineage.layout import PAD_X, bezier, text_width
from acme_lineage.render_html import HOT, KIND_COLOUR, TARGET_COLOURS, box_style

HEADER_PX = 64.0


def write_png(
    path: Path, diagram: Diagram, subtitle: str, size: tuple[int, int] = (1600, 1000), dpi: int = 100
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    width_px, height_px = size
    plan = diagram.layout
    scale = min(width_px / plan.width, (height_px - HEADER_PX) / plan.height, 1.3)
    left = (width_px - plan.width * scale) / 2
    top = HEADER_PX + max(0.0, (height_px - HEADER_PX - plan.height * scale) / 2)
    points_per_px = 72.0 / dpi

    def xy(x: float, y: float) -> tuple[float, float]:  # layout px (y down) -> figure px (y up)
        return left + x * scale, height_px - (top + y * scale)

    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor="#ffffff")
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width_px)
    axes.set_ylim(0, height_px)
    axes.set_axis_off()
    axes.text(20, height_px - 30, diagram.title, fontsize=17 * points_per_px * 1.0, fontweight="bold", color="#111827")
    axes.text(20, height_px - 52, subtitle, fontsize=11.5 * points_per_px, color="#4b5563")

    hot_stroke, hot_fill = HOT[diagram.direction]
    legend = [
        ("target", TARGET_COLOURS[0], TARGET_COLOURS[1]),
        (diagram.direction, hot_stroke, hot_fill),
        ("unrelated", "#cbd5e1", "#ffffff"),
        ("table", KIND_COLOUR["table"], KIND_COLOUR["table"]),
        ("files", KIND_COLOUR["file"], KIND_COLOUR["file"]),
        ("HTTP API", KIND_COLOUR["api"], KIND_COLOUR["api"]),
    ]
    steps = [30 + text_width(label, 11) + 14 for label, _, _ in legend]
    x = width_px - 20 - sum(steps)
    for (label, stroke, fill), step in zip(legend, steps, strict=True):
        axes.add_patch(
            FancyBboxPatch((x, height_px - 36), 12, 12, boxstyle="round,pad=0,rounding_size=2", facecolor=fill,
                           edgecolor=stroke, linewidth=1.6)
        )  # fmt: skip
        axes.text(x + 18, height_px - 34, label, fontsize=11 * points_per_px, color="#374151")
        x += step
    routes = sorted(plan.routes, key=lambda r: (r.source, r.target) in diagram.hot_edges)
    for route in routes:
        hot = (route.source, route.target) in diagram.hot_edges
        colour = hot_stroke if hot else "#cbd5e1"
        vertices = [xy(*route.points[0])]
        codes = [MplPath.MOVETO]
        for c1, c2, end in bezier(route.points):
            vertices += [xy(*c1), xy(*c2), xy(*end)]
            codes += [MplPath.CURVE4] * 3
        axes.add_patch(
            PathPatch(MplPath(vertices, codes), fill=False, edgecolor=colour, linewidth=(1.8 if hot else 1.0), zorder=1)
        )
        ex, ey = xy(*route.points[-1])
        head = 7.0 * scale
        sign = 1.0 if route.points[-1][0] >= route.points[-2][0] else -1.0
        axes.add_patch(
            Polygon(
                [(ex, ey), (ex - sign * head, ey + head / 2), (ex - sign * head, ey - head / 2)],
                closed=True,
                facecolor=hot_stroke if hot else "#94a3b8",
                edgecolor="none",
                zorder=2,
            )
        )

    for box_id, box in plan.boxes.items():
        state, kind = diagram.state[box_id], diagram.kind[box_id]
        stroke, fill, width = box_style(state, kind, diagram.direction)
        line = width * 0.8  # points at the PNG's scale
        alpha = 0.55 if state == OTHER else 1.0
        x0, y0 = xy(box.x - box.w / 2, box.y + box.h / 2)
        w, h = box.w * scale, box.h * scale
        radius = h / 2 if kind == "job" else 5 * scale
        axes.add_patch(
            FancyBboxPatch(
                (x0 + radius, y0 + radius),
                max(w - 2 * radius, 0.1),
                max(h - 2 * radius, 0.1),
                boxstyle=f"round,pad={radius}",
                facecolor=fill,
                edgecolor=stroke,
                linewidth=line,
                alpha=alpha,
                zorder=3,
            )
        )
        if kind != "job":
            sx, sy = xy(box.x - box.w / 2 + 1, box.y + box.h / 2 - 4)
            axes.add_patch(
                FancyBboxPatch(
                    (sx, sy),
                    4 * scale,
                    (box.h - 8) * scale,
                    boxstyle="square,pad=0",
                    facecolor=KIND_COLOUR[kind],
                    edgecolor="none",
                    alpha=alpha,
                    zorder=4,
                )
            )
        tx = box.x if kind == "job" else box.x - box.w / 2 + PAD_X
        align = "center" if kind == "job" else "left"
        text_alpha = 0.6 if state == OTHER else 1.0
        for offset, text, size, is_title in box.text_lines():
            axes.text(
                *xy(tx, box.y + offset),
                text,
                fontsize=size * scale * points_per_px,
                ha=align,
                va="baseline",
                color="#111827" if is_title else "#6b7280",
                alpha=text_alpha,
                fontweight="bold" if is_title and box.bold else "normal",
                zorder=5,
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, facecolor=figure.get_facecolor())
    return path

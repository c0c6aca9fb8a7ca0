"""A left-to-right layered layout of the lineage graph, shared by the SVG and the PNG so both look the same.

Layers are the longest path from the sources (a source sits just before its first
consumer, so a landing file is not stranded at the far left); cycles are broken
first. Edges spanning several layers get dummy points so they route between
nodes; node order within a layer comes from barycenter sweeps that keep the order
with the fewest crossings; vertical positions pull each node towards its
neighbours while keeping order and spacing (isotonic regression). Sizes are in
CSS pixels; label widths are measured with DejaVu Sans metrics (the font both
Chromium on Linux and matplotlib use here), and long labels are truncated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

# DejaVu Sans advance widths of ASCII 32..126 in 1/1000 em (from the font matplotlib ships).
# fmt: off
_WIDTHS = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636,
    636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775,
    752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390,
    337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
)
# fmt: on
ELLIPSIS = "…"

TITLE_PX = 12.5
SUB_PX = 10.5
TITLE_LINE = 15.0
SUB_LINE = 13.0
PAD_TOP = 6.0
PAD_BOTTOM = 6.0
NODE_H = PAD_TOP + TITLE_LINE + SUB_LINE + PAD_BOTTOM
PAD_X = 10.0
MIN_W = 100.0
MAX_W = {"dataset": 250.0, "job": 210.0}
GAP_X = 34.0
GAP_Y = 20.0
DUMMY_H = 6.0
MARGIN = 16.0
BOLD = 1.15  # DejaVu Sans Bold is at most this much wider than regular
PATH_LINES = NAME_LINES = 3
BREAK_PRIORITY = {".": 4, "/": 3, "_": 2, "-": 1}


def text_width(text: str, size: float) -> float:
    """Rendered width in px of ``text`` at font ``size`` px."""
    total = 0
    for char in text:
        code = ord(char)
        total += _WIDTHS[code - 32] if 32 <= code <= 126 else 1000 if char == ELLIPSIS else 700
    return total * size / 1000.0


def fit_text(text: str, size: float, width: float, keep_end: bool = False) -> str:
    """``text`` cut with an ellipsis to fit ``width`` px; ``keep_end`` keeps the tail (for paths)."""
    if text_width(text, size) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # longest kept length that fits with the ellipsis
        mid = (low + high + 1) // 2
        candidate = ELLIPSIS + text[-mid:] if keep_end else text[:mid] + ELLIPSIS
        if mid == 0 or text_width(candidate, size) <= width:
            low = mid
        else:
            high = mid - 1
    return (ELLIPSIS + text[-low:] if low else ELLIPSIS) if keep_end else text[:low] + ELLIPSIS


def wrap_text(text: str, size: float, width: float, keep_end: bool = False) -> list[str]:
    """``text`` on one line, or split after separators so each line fits ``width``; what still does not fit is cut.

    Names split at the strongest separator that makes both parts fit (``features.`` /
    ``customer_features``), up to three lines. Paths (``keep_end``) split at ``/`` into up to three lines from the
    end, so the file name stays whole and the head is cut if anything.
    """
    if text_width(text, size) <= width:
        return [text]
    if keep_end and "/" in text:
        lines: list[str] = []
        rest = text
        while len(lines) < PATH_LINES - 1 and text_width(rest, size) > width:
            cuts = [
                i + 1 for i, char in enumerate(rest[:-1]) if char == "/" and text_width(rest[i + 1 :], size) <= width
            ]
            if not cuts:
                break
            lines.insert(0, rest[cuts[0] :])
            rest = rest[: cuts[0]]
        return [fit_text(rest, size, width, keep_end=True), *lines]
    return _split_name(text, size, width, NAME_LINES)


def _split_name(text: str, size: float, width: float, lines: int) -> list[str]:
    if text_width(text, size) <= width:
        return [text]
    breaks = [i + 1 for i, char in enumerate(text[:-1]) if char in BREAK_PRIORITY]
    heads = [b for b in breaks if text_width(text[:b], size) <= width]
    if lines <= 1 or not heads:
        return [fit_text(text, size, width)]
    both = [b for b in heads if text_width(text[b:], size) <= width]
    if both:
        best = max(both, key=lambda b: (BREAK_PRIORITY[text[b - 1]], b))
        return [text[:best], text[best:]]
    return [text[: heads[-1]], *_split_name(text[heads[-1] :], size, width, lines - 1)]


@dataclass
class Box:
    """A node to place: ``title`` and ``subtitle`` are the full label lines (truncated at layout)."""

    id: str
    kind: str  # "dataset" or "job"
    title: str
    subtitle: str = ""
    keep_end: bool = False
    bold: bool = False
    # filled by the layout
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H
    title_lines: list[str] = field(default_factory=list)
    shown_subtitle: str = ""

    def text_lines(self) -> list[tuple[float, str, float, bool]]:
        """(baseline offset from the box centre, text, font px, is_title) for each line."""
        top = -self.h / 2 + PAD_TOP
        out = [(top + TITLE_LINE * (i + 1) - 4, line, TITLE_PX, True) for i, line in enumerate(self.title_lines)]
        out.append((top + TITLE_LINE * len(self.title_lines) + SUB_LINE - 3, self.shown_subtitle, SUB_PX, False))
        return out


@dataclass
class Route:
    source: str
    target: str
    points: list[tuple[float, float]]


@dataclass
class Layout:
    boxes: dict[str, Box]
    routes: list[Route]
    width: float
    height: float
    layers: int = 0
    notes: list[str] = field(default_factory=list)


def _break_cycles(ids: list[str], edges: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], set[int]]:
    """Reverse the back edges a depth-first search finds; return the acyclic edges and the indexes reversed."""
    succ: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, (a, b) in enumerate(edges):
        succ[a].append((index, b))
    state: dict[str, int] = {}
    reversed_: set[int] = set()
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            step = next(children, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            index, child = step
            if state.get(child) == 1:
                reversed_.add(index)
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ[child])))
    return [(b, a) if i in reversed_ else (a, b) for i, (a, b) in enumerate(edges)], reversed_


def _layers(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    layer: dict[str, int] = {}
    indegree = {i: len(preds[i]) for i in ids}
    ready = [i for i in ids if indegree[i] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        layer[node] = max((layer[p] + 1 for p in preds[node]), default=0)
        for child in succs[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    for node in ids:  # sources sit just before their first consumer
        if not preds[node] and succs[node]:
            layer[node] = max(0, min(layer[c] for c in succs[node]) - 1)
    return layer


def _crossings(upper: list[str], lower: list[str], edges: list[tuple[str, str]]) -> int:
    pos_u = {n: i for i, n in enumerate(upper)}
    pos_l = {n: i for i, n in enumerate(lower)}
    pairs = [(pos_u[a], pos_l[b]) for a, b in edges if a in pos_u and b in pos_l]
    return sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1 :] if (a1 - a2) * (b1 - b2) < 0)


def _order(rows: list[list[str]], edges: list[tuple[str, str]]) -> list[list[str]]:
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)

    def total(candidate: list[list[str]]) -> int:
        return sum(_crossings(candidate[i], candidate[i + 1], edges) for i in range(len(candidate) - 1))

    best, best_score = [list(r) for r in rows], total(rows)
    current = [list(r) for r in rows]
    for sweep in range(16):
        down = sweep % 2 == 0
        indexes = range(1, len(current)) if down else range(len(current) - 2, -1, -1)
        for i in indexes:
            fixed = {n: p for p, n in enumerate(current[i - 1] if down else current[i + 1])}
            neighbours = preds if down else succs

            was = {n: p for p, n in enumerate(current[i])}

            def key(node: str, fixed: dict[str, int] = fixed, links: dict = neighbours, was: dict = was) -> float:
                linked = [fixed[n] for n in links[node] if n in fixed]
                return sum(linked) / len(linked) if linked else float(was[node])

            current[i] = sorted(current[i], key=key)
        score = total(current)
        if score < best_score:
            best, best_score = [list(r) for r in current], score
    return best


def _isotonic(desired: list[float], weights: list[float]) -> list[float]:
    """Non-decreasing values closest (weighted least squares) to ``desired``: pool adjacent violators."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(desired, weights, strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return out


def _widths(boxes: dict[str, Box], rows: list[list[str]], budget: float) -> list[float]:
    """Column widths: each column's widest label, capped; caps shrink until the columns fit ``budget``."""

    def natural(box: Box) -> float:
        title = text_width(box.title, TITLE_PX) * (BOLD if box.bold else 1.0)
        wanted = max(title, text_width(box.subtitle, SUB_PX)) + 2 * PAD_X
        return min(max(wanted, MIN_W), MAX_W[box.kind])

    columns = [max((natural(boxes[n]) for n in row if n in boxes), default=8.0) for row in rows]
    gaps = GAP_X * (len(rows) - 1) + 2 * MARGIN
    while sum(columns) + gaps > budget:
        widest = max(range(len(columns)), key=lambda i: columns[i])
        if columns[widest] <= MIN_W:
            break
        columns[widest] = max(MIN_W, columns[widest] - 4.0)
    return columns


def layout(boxes: list[Box], edges: list[tuple[str, str]], budget_width: float = 1500.0) -> Layout:
    """Place ``boxes`` (unique ids) and route ``edges`` between them; ``budget_width`` suits a 1600 px wide page."""
    by_id = {b.id: b for b in boxes}
    ids = sorted(by_id)
    edges = [(a, b) for a, b in dict.fromkeys(edges) if a != b and a in by_id and b in by_id]
    acyclic, reversed_ = _break_cycles(ids, edges)
    layer = _layers(ids, acyclic)

    # dummy points for long edges
    chains: list[list[str]] = []
    short_edges: list[tuple[str, str]] = []
    dummy_layer: dict[str, int] = {}
    for index, (a, b) in enumerate(acyclic):
        chain = [a]
        for step in range(layer[a] + 1, layer[b]):
            dummy = f"\x00{index}:{step}"
            dummy_layer[dummy] = step
            chain.append(dummy)
        chain.append(b)
        chains.append(chain)
        short_edges.extend(pairwise(chain))
    count = max([*layer.values(), *dummy_layer.values(), 0]) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for node in ids:  # by id: a stable start for the sweeps
        rows[layer[node]].append(node)
    for dummy, step in dummy_layer.items():
        rows[step].append(dummy)
    rows = _order(rows, short_edges)

    columns = _widths(by_id, rows, budget_width)
    xs, left = [], MARGIN
    for index, width in enumerate(columns):
        xs.append(left + width / 2)
        left += width + GAP_X
        for node in rows[index]:
            if node in by_id:  # the column width decides the label lines, and those the height
                box = by_id[node]
                inner = width - 2 * PAD_X
                box.layer, box.w, box.x = index, width, xs[index]
                box.title_lines = wrap_text(box.title, TITLE_PX * (BOLD if box.bold else 1.0), inner, box.keep_end)
                box.shown_subtitle = fit_text(box.subtitle, SUB_PX, inner)
                box.h = NODE_H + TITLE_LINE * (len(box.title_lines) - 1)

    def height(node: str) -> float:
        return by_id[node].h if node in by_id else DUMMY_H

    def gap(a: str, b: str) -> float:
        return GAP_Y if a in by_id and b in by_id else GAP_Y / 2

    y: dict[str, float] = {}
    for row in rows:  # start: each column stacked and centred on 0
        total = sum(height(n) for n in row) + sum(gap(a, b) for a, b in pairwise(row))
        top = -total / 2
        for i, node in enumerate(row):
            y[node] = top + height(node) / 2
            top += height(node) + (gap(node, row[i + 1]) if i + 1 < len(row) else 0)
    neighbours: dict[str, list[str]] = defaultdict(list)
    for a, b in short_edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for _ in range(12):
        for row in rows:
            offsets, offset = [], 0.0
            for i, node in enumerate(row):
                if i:
                    offset += height(row[i - 1]) / 2 + gap(row[i - 1], node) + height(node) / 2
                offsets.append(offset)
            desired = [
                (sum(y[n] for n in neighbours[node]) / len(neighbours[node]) if neighbours[node] else y[node])
                - offsets[i]
                for i, node in enumerate(row)
            ]
            weights = [1.0 if node in by_id else 0.5 for node in row]
            for node, value, off in zip(row, _isotonic(desired, weights), offsets, strict=True):
                y[node] = value + off
    top = min((y[n] - height(n) / 2 for n in y), default=0.0)
    bottom = max((y[n] + height(n) / 2 for n in y), default=0.0)
    for node in y:
        y[node] += MARGIN - top

    for box in by_id.values():
        box.y = y[box.id]

    routes = []
    for index, chain in enumerate(chains):
        first, last = by_id[chain[0]], by_id[chain[-1]]
        points = [(first.x + first.w / 2, first.y)]
        for dummy in chain[1:-1]:  # straight through a column, curving only in the gaps
            column = dummy_layer[dummy]
            points += [(xs[column] - columns[column] / 2, y[dummy]), (xs[column] + columns[column] / 2, y[dummy])]
        points.append((last.x - last.w / 2, last.y))
        source, target = chain[0], chain[-1]
        if index in reversed_:  # drawn in its real direction, right to left
            points.reverse()
            source, target = target, source
        routes.append(Route(source, target, points))
    width = (xs[-1] + columns[-1] / 2 + MARGIN) if xs else 2 * MARGIN
    return Layout(by_id, routes, width, bottom - top + 2 * MARGIN, count)


def bezier(
    points: list[tuple[float, float]],
) -> list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]:
    """Cubic segments (control 1, control 2, end) through ``points`` with horizontal tangents at each point."""
    segments = []
    for (x0, y0), (x1, y1) in pairwise(points):
        dx = (x1 - x0) / 2 if x1 != x0 else 30.0
        segments.append(((x0 + dx, y0), (x1 - dx, y1), (x1, y1)))
    return segments

"""PNG previews of the Grafana dashboards: each panel's PromQL answered by a real Prometheus.

No Grafana runs here, so a preview is not a screenshot. It is drawn from two real things:

- a dashboard of ``deploy/grafana/dashboards/`` (panel titles, types, ``gridPos`` layout on
  Grafana's 24-column grid, targets' PromQL, ``instant``/range, ``legendFormat``, units,
  thresholds, template variables);
- what Prometheus answers to those queries over the StatsD datagrams a run emitted: the
  capture (``make demo``'s ``data/artifacts/metrics/statsd.log``) is backfilled into a
  Prometheus TSDB and served by ``prometheus`` itself (``acme_localdev.prometheus`` says how
  and what of that chain is not the real tool).

Queries are sent as Grafana sends them: the dashboard's time range is the capture's (first
to last scrape), range targets go to ``/api/v1/query_range`` with a step of the scrape interval
(coarser for long captures), instant targets to ``/api/v1/query`` at the end; template variables
take their saved current value (``All`` is the variable's ``allValue``, else the regex of the
values Prometheus lists), ``$__interval``/``$__rate_interval``/``$__range`` are computed from
the step and scrape interval as Grafana does. A query Prometheus rejects raises
``PanelQueryError`` naming the dashboard, the panel and the query.

Drawing: row panels are section headers, ``timeseries`` panels line charts of the returned
series over time, ``stat`` panels the last value of the first series, ``bargauge``/``barchart``
horizontal bars of each series' last value, ``table`` panels the instant vectors joined on
their labels; a panel whose queries returned nothing says "No data", as Grafana does.

    python -m acme_localdev.dashboard_preview --dashboard deploy/grafana/dashboards/rows_and_rejects.json \\
        --capture data/artifacts/metrics/statsd.log --png rows.png [--html rows.html]
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acme_localdev import observability as obs
from acme_localdev import prometheus as prom

Labels = prom.Labels
Points = list[tuple[float, float]]

MAX_BARS = 12
MAX_LEGEND = 8
MAX_POINTS = 400  # query_range steps per panel at most (Grafana's maxDataPoints is about the panel width)
FIG_WIDTH = 1600
MIN_HEIGHT = 1000
DPI = 100
CAPTURE_SOURCE = "make demo"

# Grafana's dark theme, roughly.
BG = "#111217"
PANEL_BG = "#181b1f"
BORDER = "#2c3037"
TEXT = "#d8d9da"
MUTED = "#8e8e99"
FAINT = "#5b5f6a"
TRACK = "#22252b"
ACCENT = "#ff9830"
PALETTE = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#37872d", "#fade2a")
NAMED_COLORS = {
    "green": "#73bf69",
    "red": "#f2495c",
    "orange": "#ff9830",
    "yellow": "#fade2a",
    "blue": "#5794f2",
    "purple": "#b877d9",
    "dark-red": "#c4162a",
    "dark-green": "#37872d",
    "dark-orange": "#fa6400",
    "dark-yellow": "#e0b400",
    "text": TEXT,
}


class PanelQueryError(RuntimeError):
    """Prometheus rejected a panel's query; the message names the dashboard, panel and query."""


# --- time range and template variables, as Grafana fills them ------------------------------------


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range (the capture's scrapes) and the query step."""

    start: float
    end: float
    step: float
    scrape: float  # the datasource's scrape interval

    @classmethod
    def of(cls, loaded: prom.Loaded) -> TimeRange:
        span = loaded.end - loaded.start
        steps = max(1, math.ceil(span / loaded.interval / MAX_POINTS))
        return cls(loaded.start, loaded.end, steps * loaded.interval, loaded.interval)

    def builtins(self) -> dict[str, str]:
        """Grafana's ``$__interval``, ``$__rate_interval`` (max(interval + scrape, 4 x scrape)) and ``$__range``."""
        rate = max(self.step + self.scrape, 4 * self.scrape)
        span = max(self.end - self.start, self.step)
        return {
            "__interval": prom.format_duration(self.step),
            "__interval_ms": str(round(self.step * 1000)),
            "__rate_interval": prom.format_duration(rate),
            "__rate_interval_ms": str(round(rate * 1000)),
            "__range": f"{round(span)}s",
            "__range_s": str(round(span)),
            "__range_ms": str(round(span * 1000)),
        }


_SPECIAL = re.compile(r"[$^*+?.()|\\{}\[\]]")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def _regex_value(values: Sequence[str]) -> str:
    """Grafana's Prometheus formatting of selected values for ``=~``: escaped, ``(a|b)`` when several."""
    escaped = [_SPECIAL.sub(lambda m: "\\\\" + m.group(), v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` replaced; unknown names are left as they are."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group())

    return _VARIABLE.sub(repl, text)


def variable_values(
    dashboard: Mapping[str, Any], time_range: TimeRange, server: prom.PrometheusServer | None = None
) -> dict[str, str]:
    """Every template variable's value as Grafana would insert it for the saved selection, and the built-ins."""
    values = time_range.builtins()
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        name, kind = variable.get("name"), variable.get("type")
        current = (variable.get("current") or {}).get("value")
        selected = [str(v) for v in current] if isinstance(current, list) else [str(current or "")]
        if kind == "interval":
            chosen = selected[0]
            values[name] = values["__interval"] if chosen in {"$__auto", "$__auto_interval", "auto", ""} else chosen
        elif kind in {"query", "custom"}:
            if "$__all" in selected or selected == ["All"]:
                if variable.get("allValue"):
                    values[name] = str(variable["allValue"])
                    continue
                selected = _all_values(variable, values, server)
            values[name] = _regex_value(selected) if selected else ""
        else:  # constant, textbox
            values[name] = selected[0]
    return values


def _all_values(
    variable: Mapping[str, Any], values: Mapping[str, str], server: prom.PrometheusServer | None
) -> list[str]:
    """The values "All" stands for when the variable has no allValue: its options, or what Prometheus lists."""
    if variable.get("type") == "custom":
        return [str(o.get("value")) for o in variable.get("options") or [] if o.get("value") not in {"$__all", None}]
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, dict) else str(query or "")
    m = obs._LABEL_VALUES.match(text)
    if m is None or server is None:
        raise ValueError(f"variable {variable.get('name')!r}: cannot list the values of {text!r}")
    match = substitute(m.group("expr"), values) if m.group("expr") else None
    return server.label_values(m.group("label"), match)


# --- the panels' queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetResult:
    """One query of a panel: as written, as sent, and what Prometheus answered."""

    ref_id: str
    expr: str  # as in the dashboard
    query: str  # as sent, variables substituted
    legend: str
    instant: bool
    series: Mapping[Labels, Points]

    @property
    def values(self) -> dict[Labels, float]:
        """Each series' last value that is not NaN (Grafana's lastNotNull), else its last."""
        out = {}
        for labels, points in self.series.items():
            if points:
                out[labels] = next((v for _, v in reversed(points) if not math.isnan(v)), points[-1][1])
        return out


@dataclass(frozen=True)
class PanelPreview:
    """A panel and what Prometheus answered to its queries."""

    title: str  # variables substituted
    type: str
    grid: Mapping[str, int]
    targets: tuple[TargetResult, ...]
    drawn: bool = True  # False for panels inside a collapsed row

    @property
    def has_data(self) -> bool:
        return any(points for t in self.targets for points in t.series.values())

    @property
    def series_count(self) -> int:
        return sum(len(t.series) for t in self.targets)


@dataclass(frozen=True)
class PreviewResult:
    """The files written and, per panel (rows excluded), what it got."""

    dashboard: Path
    title: str
    png: Path
    html: Path | None
    size: tuple[int, int]  # PNG width, height in pixels
    panels: tuple[PanelPreview, ...]
    variables: Mapping[str, str]

    def panel(self, title: str) -> PanelPreview:
        for panel in self.panels:
            if panel.title == title:
                return panel
        raise KeyError(title)


def query_panel(
    panel: Mapping[str, Any],
    server: prom.PrometheusServer,
    time_range: TimeRange,
    values: Mapping[str, str],
    *,
    dashboard_name: str = "",
    drawn: bool = True,
) -> PanelPreview:
    """Send a panel's visible targets to Prometheus; PanelQueryError if it rejects one."""
    title = substitute(str(panel.get("title", "")), values)
    results = []
    for target in panel.get("targets") or []:
        expr = target.get("expr")
        if not expr or target.get("hide"):
            continue
        query = substitute(expr, values)
        instant = bool(target.get("instant")) and not target.get("range")
        try:
            if instant:
                data = server.query(query, time_range.end)
            else:
                data = server.query_range(query, time_range.start, time_range.end, time_range.step)
        except prom.QueryError as exc:
            raise PanelQueryError(
                f"{dashboard_name}: panel {title!r}, query {target.get('refId', '?')}: "
                f"Prometheus rejected {query!r}: {exc}"
            ) from exc
        results.append(
            TargetResult(
                ref_id=str(target.get("refId", "?")),
                expr=expr,
                query=query,
                legend=str(target.get("legendFormat") or ""),
                instant=instant,
                series=prom.series_points(data),
            )
        )
    return PanelPreview(title, str(panel.get("type", "")), dict(panel.get("gridPos") or {}), tuple(results), drawn)


def query_dashboard(
    dashboard: Mapping[str, Any], loaded: prom.Loaded, dashboard_name: str = ""
) -> tuple[dict[int, PanelPreview], list[PanelPreview], dict[str, str]]:
    """Every panel's answers: top-level panels by index (drawn), all panels in order (rows excluded), variables."""
    time_range = TimeRange.of(loaded)
    values = variable_values(dashboard, time_range, loaded.server)
    drawn: dict[int, PanelPreview] = {}
    listed: list[PanelPreview] = []
    for index, panel in enumerate(dashboard.get("panels") or []):
        nested = [p for p in obs.iter_panels(panel.get("panels") or []) if p.get("type") != "row"]
        if panel.get("type") != "row":
            drawn[index] = query_panel(panel, loaded.server, time_range, values, dashboard_name=dashboard_name)
            listed.append(drawn[index])
        visible = panel.get("type") == "row" and not panel.get("collapsed")
        for child in nested:
            listed.append(
                query_panel(child, loaded.server, time_range, values, dashboard_name=dashboard_name, drawn=visible)
            )
    return drawn, listed, values


# --- formatting -----------------------------------------------------------------------------------


def format_value(value: float, unit: str | None) -> str:
    """Grafana-like display of a number in a unit (short, percentunit, percent, s, ms, bytes)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    unit = unit or "short"
    if unit == "percentunit":
        return f"{value * 100:.3g}%" if abs(value) < 0.1 else f"{value * 100:.1f}%"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit in {"s", "ms"}:
        seconds = value / 1000 if unit == "ms" else value
        if seconds == 0:
            return "0 s"
        for limit, div, name in ((1, 0.001, "ms"), (60, 1, "s"), (3600, 60, "min"), (86400, 3600, "hour")):
            if abs(seconds) < limit:
                return f"{seconds / div:.3g} {name}"
        return f"{seconds / 86400:.3g} day"
    if unit in {"bytes", "decbytes"}:
        step, names = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if unit == "bytes" else (1000, ("B", "kB", "MB", "GB"))
        for name in names:
            if abs(value) < step or name == names[-1]:
                return f"{value:.0f} {name}" if name == "B" else f"{value:.3g} {name}"
            value /= step
    for limit, name in ((1e12, "Tri"), (1e9, "Bil"), (1e6, "Mil"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.3g} {name}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _threshold_color(panel: Mapping[str, Any], value: float) -> str:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get("steps") or []
    color = "green"
    for step in steps:
        limit = step.get("value")
        if limit is None or (not math.isnan(value) and value >= float(limit)):
            color = step.get("color", color)
    return NAMED_COLORS.get(color, color if str(color).startswith("#") else PALETTE[0])


def legend(template: str, labels: Labels) -> str:
    """``{{table}}`` and friends filled from the labels; Grafana's ``{a="b"}`` form without a legendFormat."""
    values = dict(labels)
    if template:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template).strip()
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "value"


def _series_name(target: TargetResult) -> str:
    """A target's name in a table header or legend: the literal words of its legendFormat, else its metric."""
    literal = re.sub(r"\{\{\s*\w+\s*\}\}", "", target.legend).strip(" .-·")
    if literal:
        return literal
    try:
        metrics = sorted(obs.promql_metric_names(target.expr))
    except ValueError:
        metrics = []
    if not metrics:
        return target.ref_id
    name = metrics[0].removeprefix("acme_pipeline_").removeprefix("airflow_")
    return re.sub(r"_(total|seconds|bucket|sum|count)$", "", name)


# --- drawing ---------------------------------------------------------------------------------------

_PX_PER_PT = DPI / 72


def _fit(text: str, width_px: float, size_pt: float) -> str:
    """Truncate text to about ``width_px`` at ``size_pt`` (DejaVu Sans averages ~0.6 em per character)."""
    limit = max(1, int(width_px / (size_pt * _PX_PER_PT * 0.6)))
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


@dataclass(frozen=True)
class _Box:
    x: float
    y: float  # top, in pixels from the top of the figure
    w: float
    h: float


class _Canvas:
    """One matplotlib axes covering the figure, in pixel coordinates with y pointing down."""

    def __init__(self, width: int, height: int) -> None:
        from matplotlib.figure import Figure

        self.width, self.height = width, height
        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BG)
        self.ax = self.figure.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(height, 0)
        self.ax.set_axis_off()
        self.ax.set_facecolor(BG)

    def rect(self, x: float, y: float, w: float, h: float, color: str, edge: str | None = None, **kw: Any) -> None:
        from matplotlib.patches import Rectangle

        self.ax.add_patch(
            Rectangle((x, y), max(w, 0), h, facecolor=color, edgecolor=edge or "none", linewidth=1 if edge else 0, **kw)
        )

    def text(self, x: float, y: float, text: str, size: float, color: str = TEXT, **kw: Any) -> None:
        kw.setdefault("va", "top")
        kw.setdefault("ha", "left")
        kw.setdefault("parse_math", False)  # "$dag_id" is text, not mathtext
        self.ax.text(x, y, text, fontsize=size, color=color, **kw)

    def axes(self, box: _Box) -> Any:
        """A chart's own axes over ``box`` (pixels), styled like Grafana's dark theme."""
        ax = self.figure.add_axes(
            (box.x / self.width, 1 - (box.y + box.h) / self.height, box.w / self.width, box.h / self.height)
        )
        ax.set_facecolor(PANEL_BG)
        for side, spine in ax.spines.items():
            spine.set_visible(side in {"left", "bottom"})
            spine.set_color(BORDER)
        ax.tick_params(colors=MUTED, labelsize=7, length=2)
        ax.grid(True, color=BORDER, linewidth=0.6)
        return ax

    def save(self, path: Path) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self.figure).print_png(str(path))


def _field(panel: Mapping[str, Any], key: str) -> Any:
    return ((panel.get("fieldConfig") or {}).get("defaults") or {}).get(key)


def _draw_no_data(canvas: _Canvas, box: _Box) -> None:
    canvas.text(box.x + box.w / 2, box.y + box.h / 2, "No data", 11, MUTED, ha="center", va="center")


def _draw_stat(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    target = next(t for t in preview.targets if t.values)
    labels, value = next(iter(target.values.items()))
    text = format_value(value, _field(panel, "unit"))
    size = min(box.h * 0.42 / _PX_PER_PT, (box.w - 20) / (max(len(text), 2) * 0.62 * _PX_PER_PT), 44)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    canvas.text(cx, cy, text, size, _threshold_color(panel, value), ha="center", va="center", weight="bold")
    if target.legend:
        name = _fit(legend(target.legend, labels), box.w, 8)
        canvas.text(cx, box.y + box.h - 2, name, 8, MUTED, ha="center", va="bottom")


def _categories(targets: Sequence[TargetResult]) -> list[Labels]:
    """Label sets over all targets, largest first (by their largest last value), for bars and table rows."""
    best: dict[Labels, float] = {}
    for target in targets:
        for labels, value in target.values.items():
            v = value if math.isfinite(value) else -math.inf
            best[labels] = max(best.get(labels, -math.inf), v)
    return sorted(best, key=lambda labels: (-best[labels], labels))


def _draw_bars(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    """Bar gauges: one bar per series (its last value), coloured by thresholds when the panel says so."""
    unit = _field(panel, "unit")
    bars = [(legend(t.legend, labels), t, labels, v) for t in preview.targets for labels, v in t.values.items()]
    bars.sort(key=lambda bar: -bar[3] if math.isfinite(bar[3]) else math.inf)
    thresholds = (_field(panel, "color") or {}).get("mode") == "thresholds"
    label_h, bar_h, gap = 12, 8, 6
    row_h = label_h + bar_h + gap
    fit = max(1, int(box.h // row_h))
    shown = bars[: min(MAX_BARS, fit)]
    if len(shown) < len(bars):
        shown = bars[: max(1, min(MAX_BARS, int((box.h - 12) // row_h)))]
    finite = [bar[3] for bar in bars if math.isfinite(bar[3])]
    low, high = _field(panel, "min"), _field(panel, "max")
    low = float(low) if low is not None else min(0.0, *finite) if finite else 0.0
    high = float(high) if high is not None else max(finite, default=1.0)
    if high <= low:
        high = low + 1
    y = box.y
    for row, (name, _, _, value) in enumerate(shown):
        color = _threshold_color(panel, value) if thresholds else PALETTE[row % len(PALETTE)]
        canvas.text(box.x, y, _fit(name, box.w - 70, 8), 8, TEXT)
        canvas.text(box.x + box.w, y, format_value(value, unit), 8, color, ha="right", weight="bold")
        frac = (value - low) / (high - low) if math.isfinite(value) else (1.0 if value > 0 else 0.0)
        canvas.rect(box.x, y + label_h, box.w, bar_h, TRACK)
        canvas.rect(box.x, y + label_h, box.w * min(max(frac, 0.0), 1.0), bar_h, color)
        y += row_h
    if len(shown) < len(bars):
        canvas.text(box.x, y, f"+{len(bars) - len(shown)} more", 7.5, FAINT, style="italic")


def _draw_table(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    """Instant vectors joined on their labels, one column per query (Grafana's merge of table queries)."""
    unit = _field(panel, "unit")
    targets = [t for t in preview.targets if t.values]
    rows = _categories(targets)
    order = ("dag_id", "task_id", "table", "state", "deadline")
    names = sorted({k for labels in rows for k, _ in labels}, key=lambda n: (order.index(n) if n in order else 99, n))
    headers = [*names, *((_series_name(t) for t in targets) if len(targets) > 1 else ["Value"])]
    label_share = 0.6 if names else 0.0
    widths = [box.w * label_share / max(len(names), 1)] * len(names)
    widths += [box.w * (1 - label_share) / len(targets)] * len(targets)
    row_h = 15
    fit = max(1, int((box.h - row_h) // row_h))
    shown = rows[: min(MAX_BARS, fit)]
    if len(shown) < len(rows):
        shown = rows[: max(1, min(MAX_BARS, fit - 1))]
    x = box.x
    for header, width in zip(headers, widths, strict=True):
        canvas.text(x + 3, box.y, _fit(header, width - 6, 7.5), 7.5, "#6e9fff", weight="bold")
        x += width
    canvas.rect(box.x, box.y + row_h - 2, box.w, 1, BORDER)
    maxima = [max((v for v in t.values.values() if math.isfinite(v)), default=0.0) for t in targets]
    y = box.y + row_h
    for row, labels in enumerate(shown):
        if row % 2:
            canvas.rect(box.x, y - 1, box.w, row_h, "#1e2126")
        values = dict(labels)
        x = box.x
        for name, width in zip(names, widths, strict=False):
            canvas.text(x + 3, y + 1, _fit(values.get(name, ""), width - 6, 7.5), 7.5, TEXT)
            x += width
        for index, target in enumerate(targets):
            width = widths[len(names) + index]
            value = target.values.get(labels)
            if value is not None:
                frac = value / maxima[index] if maxima[index] > 0 and math.isfinite(value) else 0.0
                canvas.rect(x + 2, y + 1, (width - 4) * min(max(frac, 0.0), 1.0), row_h - 4, PALETTE[index], alpha=0.35)
                canvas.text(x + width - 4, y + 1, format_value(value, unit), 7.5, TEXT, ha="right")
            x += width
        y += row_h
    if len(shown) < len(rows):
        canvas.text(box.x + 3, y + 1, f"+{len(rows) - len(shown)} more rows", 7.5, FAINT, style="italic")


def _draw_timeseries(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    """Every returned series as a line over the time range; a legend of the largest (last value) below."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    unit = _field(panel, "unit")
    lines = [
        (legend(t.legend, labels), points)
        for t in preview.targets
        for labels, points in sorted(t.series.items())
        if points
    ]
    lines.sort(key=lambda line: -line[1][-1][1] if math.isfinite(line[1][-1][1]) else math.inf)
    legend_rows = min(len(lines), MAX_LEGEND // 2 if box.h < 200 else MAX_LEGEND)
    columns = 2 if len(lines) > 4 else 1
    legend_h = 12 * math.ceil(legend_rows / columns) + (12 if len(lines) > legend_rows else 0)
    chart = _Box(box.x + 44, box.y, box.w - 50, max(box.h - legend_h - 18, 30))
    ax = canvas.axes(chart)
    for index, (_, points) in enumerate(lines):
        xs = [t for t, _ in points]
        ys = [v for _, v in points]
        color = PALETTE[index % len(PALETTE)]
        if len(points) == 1:
            ax.plot(xs, ys, "o", color=color, markersize=3)
        else:
            ax.plot(xs, ys, color=color, linewidth=1.2)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")))
    y = chart.y + chart.h + 16
    width = box.w / columns
    for index, (name, _) in enumerate(lines[:legend_rows]):
        x = box.x + (index % columns) * width
        row_y = y + (index // columns) * 12
        canvas.rect(x, row_y + 3, 10, 3, PALETTE[index % len(PALETTE)])
        canvas.text(x + 14, row_y, _fit(name, width - 20, 7.5), 7.5, MUTED)
    if len(lines) > legend_rows:
        more_y = y + math.ceil(legend_rows / columns) * 12
        canvas.text(box.x, more_y, f"+{len(lines) - legend_rows} more series", 7, FAINT, style="italic")


def _draw_panel(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    canvas.rect(box.x, box.y, box.w, box.h, PANEL_BG, BORDER)
    canvas.text(box.x + 8, box.y + 6, _fit(preview.title, box.w - 16, 9.5), 9.5, TEXT, weight="bold")
    inner = _Box(box.x + 10, box.y + 28, box.w - 20, box.h - 36)
    if not preview.has_data:
        _draw_no_data(canvas, inner)
    elif preview.type == "stat":
        _draw_stat(canvas, inner, panel, preview)
    elif preview.type == "table":
        _draw_table(canvas, inner, panel, preview)
    elif preview.type == "timeseries":
        _draw_timeseries(canvas, inner, panel, preview)
    else:  # bargauge, barchart, gauge
        _draw_bars(canvas, inner, panel, preview)


HEADER_PX = 70
FOOTER_PX = 40
PAD_PX = 12
GAP_PX = 4


def footer_text(dashboard_name: str, datagrams: int, version: str, source: str = CAPTURE_SOURCE) -> str:
    return (
        f"Preview: {dashboard_name}'s PromQL answered by Prometheus {version} over {datagrams} StatsD "
        f"datagrams captured during {source} (acme_localdev.dashboard_preview, not a Grafana screenshot)"
    )


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(obs.ROOT))
    except ValueError:
        return path.name


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _draw_dashboard(
    dashboard: Mapping[str, Any],
    previews: Mapping[int, PanelPreview],
    values: Mapping[str, str],
    loaded: prom.Loaded,
    dashboard_name: str,
    out_png: Path,
    source: str,
) -> tuple[int, int]:
    panels = list(dashboard.get("panels") or [])
    bottom = max(
        ((p.get("gridPos") or {}).get("y", 0) + (p.get("gridPos") or {}).get("h", 1) for p in panels), default=1
    )
    unit = max(30.0, min(40.0, (MIN_HEIGHT - HEADER_PX - FOOTER_PX - PAD_PX) / max(bottom, 1)))
    height = round(HEADER_PX + bottom * unit + FOOTER_PX + PAD_PX)
    canvas = _Canvas(FIG_WIDTH, height)
    column = (FIG_WIDTH - 2 * PAD_PX) / 24

    time_range = TimeRange.of(loaded)
    variables = [v.get("name") for v in (dashboard.get("templating") or {}).get("list") or [] if v.get("name")]
    shown = ", ".join(f"${v} = {values.get(v, '?')}" for v in variables)
    canvas.text(PAD_PX, 12, str(dashboard.get("title", dashboard_name)), 16, TEXT, weight="bold")
    canvas.text(
        PAD_PX,
        42,
        f"{dashboard_name} · {_stamp(time_range.start)} – {_stamp(time_range.end)} UTC (the capture), "
        f"step {prom.format_duration(time_range.step)} · {shown or 'no variables'}",
        9,
        MUTED,
    )
    canvas.rect(FIG_WIDTH - PAD_PX - 92, 14, 92, 24, "none", ACCENT)
    canvas.text(FIG_WIDTH - PAD_PX - 46, 26, "PREVIEW", 11, ACCENT, ha="center", va="center", weight="bold")

    for index, panel in enumerate(panels):
        grid = panel.get("gridPos") or {}
        x = PAD_PX + grid.get("x", 0) * column
        y = HEADER_PX + grid.get("y", 0) * unit
        w, h = grid.get("w", 24) * column, grid.get("h", 1) * unit
        if panel.get("type") == "row":
            title = substitute(str(panel.get("title", "")), values)
            hidden = len(panel.get("panels") or []) if panel.get("collapsed") else 0
            suffix = f"  ({hidden} panels collapsed)" if hidden else ""
            canvas.text(x + GAP_PX, y + h / 2, f"▾ {title}{suffix}", 11.5, TEXT, va="center", weight="bold")
            continue
        preview = previews.get(index)
        if preview is not None:
            _draw_panel(canvas, _Box(x + GAP_PX, y + GAP_PX, w - 2 * GAP_PX, h - 2 * GAP_PX), panel, preview)

    footer = footer_text(dashboard_name, len(loaded.capture.datagrams), loaded.server.version, source)
    canvas.rect(0, height - FOOTER_PX, FIG_WIDTH, FOOTER_PX, "#0b0c0e")
    canvas.text(
        FIG_WIDTH / 2, height - FOOTER_PX / 2, _fit(footer, FIG_WIDTH - 20, 9), 9, ACCENT, ha="center", va="center"
    )
    canvas.save(out_png)
    return FIG_WIDTH, height


# --- HTML -----------------------------------------------------------------------------------------


def _write_html(result: PreviewResult, loaded: prom.Loaded, dashboard_name: str, source: str) -> None:
    assert result.html is not None
    png = base64.b64encode(result.png.read_bytes()).decode("ascii")
    e = html.escape
    rows = []
    for panel in result.panels:
        queries = "".join(
            f"<div><code>{e(t.ref_id)}: {e(t.query)}</code> <span class=muted>"
            f"{'instant' if t.instant else 'range'}, {len(t.series)} series</span></div>"
            for t in panel.targets
        )
        status = "yes" if panel.has_data else "<b class=no>no</b>"
        note = "" if panel.drawn else " <span class=muted>(in a collapsed row: not drawn)</span>"
        rows.append(
            f"<tr><td>{e(panel.title)}{note}</td><td>{e(panel.type)}</td><td>{queries}</td><td>{status}</td></tr>"
        )
    exposition = loaded.exposition
    unmapped = ", ".join(f"{e(n)} ×{c}" for n, c in sorted(exposition.unmapped.items())) or "none"
    footer = footer_text(dashboard_name, len(loaded.capture.datagrams), loaded.server.version, source)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Preview: {e(result.title)}</title>
<style>
body {{ background: {BG}; color: {TEXT}; font: 14px/1.45 system-ui, sans-serif; margin: 24px; }}
img {{ max-width: 100%; border: 1px solid {BORDER}; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 16px; }}
th, td {{ border: 1px solid {BORDER}; padding: 6px 8px; vertical-align: top; text-align: left; }}
th {{ background: {PANEL_BG}; }}
code {{ font-size: 12px; white-space: pre-wrap; word-break: break-word; }}
.muted {{ color: {MUTED}; font-size: 12px; }}
.no {{ color: {ACCENT}; }}
.banner {{ border: 1px solid {ACCENT}; color: {ACCENT}; padding: 8px 12px; display: inline-block; }}
</style></head><body>
<h1>{e(result.title)}: preview</h1>
<p class="banner">{e(footer)}</p>
<p>The capture was replayed through <code>deploy/statsd/mapping.yml</code> into statsd_exporter's metrics,
sampled every {prom.format_duration(loaded.interval)} as a scrape would, backfilled with
<code>promtool tsdb create-blocks-from openmetrics</code> and served by Prometheus; each panel's query
below is what was sent to its HTTP API.</p>
<p class="muted">Capture: {len(loaded.capture.datagrams)} datagrams, {loaded.capture.malformed} malformed lines
skipped, {loaded.samples} samples backfilled; StatsD names no mapping rule matches: {unmapped}.</p>
<img alt="{e(result.title)} preview" src="data:image/png;base64,{png}" width="{result.size[0]}">
<table>
<tr><th>Panel</th><th>Type</th><th>PromQL sent</th><th>Data</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""
    result.html.write_text(page, encoding="utf-8")


# --- entry points ----------------------------------------------------------------------------------


def render_loaded(
    dashboard_json: Path,
    loaded: prom.Loaded,
    out_png: Path,
    *,
    out_html: Path | None = None,
    source: str = CAPTURE_SOURCE,
) -> PreviewResult:
    """Query ``dashboard_json``'s panels on a loaded Prometheus and draw the answers to ``out_png``."""
    dashboard_json, out_png = Path(dashboard_json), Path(out_png)
    dashboard = json.loads(dashboard_json.read_text())
    name = _display_path(dashboard_json)
    drawn, listed, values = query_dashboard(dashboard, loaded, name)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    size = _draw_dashboard(dashboard, drawn, values, loaded, name, out_png, source)
    result = PreviewResult(
        dashboard=dashboard_json,
        title=str(dashboard.get("title", dashboard_json.stem)),
        png=out_png,
        html=Path(out_html) if out_html else None,
        size=size,
        panels=tuple(listed),
        variables=values,
    )
    if result.html is not None:
        result.html.parent.mkdir(parents=True, exist_ok=True)
        _write_html(result, loaded, name, source)
    return result


def render_previews(
    dashboards: Iterable[Path],
    capture: Path,
    out_dir: Path,
    *,
    html: bool = False,
    source: str = CAPTURE_SOURCE,
) -> list[PreviewResult]:
    """``<out_dir>/<dashboard stem>.png`` (and ``.html``) for each dashboard, from one Prometheus loaded once."""
    out_dir = Path(out_dir)
    with prom.CaptureServer(Path(capture)) as loaded:
        return [
            render_loaded(
                path,
                loaded,
                out_dir / f"{Path(path).stem}.png",
                out_html=out_dir / f"{Path(path).stem}.html" if html else None,
                source=source,
            )
            for path in dashboards
        ]


def render_preview(
    dashboard_json: Path,
    capture: Path,
    out_png: Path,
    *,
    out_html: Path | None = None,
    source: str = CAPTURE_SOURCE,
) -> PreviewResult:
    """One dashboard's preview (a Prometheus of its own): ``out_png`` and optionally ``out_html``."""
    with prom.CaptureServer(Path(capture)) as loaded:
        return render_loaded(dashboard_json, loaded, out_png, out_html=out_html, source=source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acme_localdev.dashboard_preview",
        description="A PNG preview of a Grafana dashboard: its PromQL answered by Prometheus over a StatsD capture.",
    )
    parser.add_argument("--dashboard", type=Path, required=True, help="deploy/grafana/dashboards/<name>.json")
    parser.add_argument("--capture", type=Path, required=True, help="StatsD lines, one per line (<unix-ts> <line>)")
    parser.add_argument("--png", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--html", type=Path, help="also write a self-contained HTML page")
    parser.add_argument("--source", default=CAPTURE_SOURCE, help="what produced the capture (footer text)")
    args = parser.parse_args(argv)
    try:
        result = render_preview(args.dashboard, args.capture, args.png, out_html=args.html, source=args.source)
    except (prom.PrometheusMissingError, PanelQueryError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    with_data = sum(p.has_data for p in result.panels)
    print(
        f"{result.png}: {result.size[0]}x{result.size[1]} px, {result.title}: {with_data}/{len(result.panels)} panels"
    )
    for panel in result.panels:
        print(f"  {'+' if panel.has_data else '-'} {panel.title}: {panel.series_count} series")
    if result.html:
        print(f"{result.html}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())

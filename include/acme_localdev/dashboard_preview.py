"""A PNG preview of a Grafana dashboard, drawn from the real dashboard JSON and captured StatsD datagrams.

There is no Grafana or Prometheus here, so this is not a screenshot: it is what the
dashboard's panels would show for the StatsD traffic one run (``make demo``) sent,
computed by reading the same files the real chain reads. The footer of the image
says so: "Preview rendered by acme_localdev.dashboard_preview from <dashboard file>
and <N> StatsD datagrams captured during make demo — not a Grafana screenshot".

Inputs:

- a dashboard of ``deploy/grafana/dashboards/`` (panel titles, types, ``gridPos``
  layout on Grafana's 24-column grid, targets' PromQL and ``legendFormat``, units,
  thresholds);
- a capture file: one StatsD line per line (``airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c``),
  optionally prefixed by a unix timestamp and a space (``1764241234.123 airflow...``).
  Blank lines and ``#`` comments are skipped; lines that are not a StatsD sample
  (no value, a non-number, an unknown type, a negative counter) are skipped and counted.

Semantics (simple on purpose, all over the whole capture):

- every datagram goes through ``deploy/statsd/mapping.yml`` as statsd-exporter would
  (``observability.map_statsd_name``): Prometheus name, labels (tags + rule labels),
  ``ms`` timers observed in seconds, counters scaled by their ``@rate``;
- a series' value is: counter -> the sum of its increments, gauge -> its last value,
  histogram ``_sum``/``_count`` -> sum/count of its observations, ``_bucket`` -> the raw
  observations (``histogram_quantile`` takes their exact quantile; Prometheus would
  interpolate within buckets);
- PromQL is evaluated on that one instant: ``increase()`` and the ``*_over_time``
  functions are the identity (a "per hour" or ``$window`` query shows the total during
  the capture), ``rate()`` divides by the capture's time span when lines are timestamped
  (else it is the total too), ``time()`` and ``timestamp()`` need timestamps; ``sum``/
  ``avg``/``min``/``max``/``count`` ``by (...)``, arithmetic, comparisons and ``or``/``and``/
  ``unless`` behave as in PromQL. So a ratio of increases is the ratio of totals and
  ``sum(_sum)/sum(_count)`` is the mean;
- template variables (``$dag_id``, ``$table``, ...) are "All": matchers on them are ignored;
- a panel none of whose metrics occur in the capture shows "no data in this capture"
  (the demo runs ``dag.test()`` without a scheduler: no heartbeats, pools, executor
  gauges), even where the query would fall back to ``or vector(0)``.

Drawing: row panels are section headers, ``stat`` panels big numbers, ``table`` panels
tables with in-cell bars, other panels (timeseries, barchart, bargauge) horizontal bars
of the grouped values (top 12, labelled by ``legendFormat``). ``--html`` also writes a
self-contained page with the PNG and, per panel, its PromQL, its metrics with the number
of captured datagrams feeding each, and whether it had data.

    python -m acme_localdev.dashboard_preview --dashboard deploy/grafana/dashboards/rows_and_rejects.json \\
        --capture statsd.log --png rows.png [--html rows.html]
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acme_localdev import observability as obs

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; no __name__

MAX_BARS = 12
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


# --- the capture ---------------------------------------------------------------------------------


@dataclass
class Series:
    """One Prometheus series built from the capture."""

    kind: str  # counter, gauge or observer
    total: float = 0.0  # counter: sum of increments
    last: float = 0.0  # gauge: last value
    observations: list[float] = field(default_factory=list)  # observer: values in seconds for ms timers
    ts: float | None = None  # timestamp of the last sample, when the capture has them
    samples: int = 0


@dataclass
class Capture:
    """The datagrams of a capture file, mapped to Prometheus series as statsd-exporter would."""

    series: dict[str, dict[Labels, Series]] = field(default_factory=dict)  # metric -> labels -> series
    datagrams: int = 0  # well-formed StatsD samples
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)  # StatsD names no rule maps
    dropped: int = 0  # mapped by a drop rule, or of a type the metric already had another of
    start: float | None = None
    end: float | None = None

    @property
    def span(self) -> float | None:
        """Seconds between the first and last timestamped line, or None."""
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        return self.end - self.start

    def samples(self, metric: str) -> int:
        """Datagrams that fed a Prometheus metric (base name; histogram suffixes are stripped)."""
        return sum(s.samples for s in self.series.get(_base_name(metric, self), {}).values())


_TS_PREFIX = re.compile(r"^(?P<ts>\d+(?:\.\d+)?)\s+(?P<rest>\S.*)$")


class MalformedLineError(ValueError):
    """A capture line that is not a StatsD sample statsd-exporter would accept."""


def parse_capture_line(line: str) -> tuple[float | None, obs.StatsdSample, float]:
    """``[<unix ts> ]<statsd line>`` -> (timestamp, sample, sample rate); MalformedLineError if not a sample."""
    text = line.strip()
    ts = None
    if m := _TS_PREFIX.match(text):
        ts, text = float(m["ts"]), m["rest"].strip()
    sample = obs.parse_statsd_line(text)
    if not sample.name or any(c.isspace() for c in sample.name):
        raise MalformedLineError(f"bad metric name in {line!r}")
    if sample.value is None or sample.type not in obs.STATSD_TYPES:
        raise MalformedLineError(f"no value|type in {line!r}")
    try:
        value = float(sample.value)
        rates = [float(part[1:]) for part in text.partition(":")[2].split("|")[2:] if part.startswith("@")]
    except ValueError:
        raise MalformedLineError(f"not a number in {line!r}") from None
    rate = rates[-1] if rates else 1.0
    if not math.isfinite(value) or not 0 < rate <= 1:
        raise MalformedLineError(f"bad value or sample rate in {line!r}")
    if sample.type == "c" and value < 0:
        raise MalformedLineError(f"negative counter in {line!r}")  # statsd-exporter rejects these
    return ts, sample, rate


def load_capture(capture: Path | Iterable[str], rules: Iterable[obs.Rule] | None = None) -> Capture:
    """Read a capture (a file, or its lines) and map every datagram through the mapping rules."""
    rules = list(obs.load_mapping() if rules is None else rules)
    lines = capture.read_text(errors="replace").splitlines() if isinstance(capture, Path) else capture
    out = Capture()
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            ts, sample, rate = parse_capture_line(line)
        except MalformedLineError:
            out.malformed += 1
            if len(out.malformed_examples) < 5:
                out.malformed_examples.append(line.strip()[:200])
            continue
        out.datagrams += 1
        if ts is not None:
            out.start = ts if out.start is None else min(out.start, ts)
            out.end = ts if out.end is None else max(out.end, ts)
        mapped = obs.map_statsd_name(sample.name, sample.type, rules)
        if mapped is None:
            out.unmapped[sample.name] += 1
            continue
        if mapped.dropped:
            out.dropped += 1
            continue
        labels = dict(sample.tags)
        labels.update(mapped.labels)
        key: Labels = tuple(sorted((k, v) for k, v in labels.items() if v and k != "__name__"))
        kind = obs.STATSD_TYPES[sample.type or ""]
        series = out.series.setdefault(mapped.name, {}).setdefault(key, Series(kind))
        if series.kind != kind:
            out.dropped += 1  # statsd-exporter: a metric name of another type is a conflict
            continue
        assert sample.value is not None
        value = float(sample.value)
        if kind == "counter":
            series.total += value / rate
        elif kind == "gauge":
            relative = sample.value.startswith(("+", "-"))
            series.last = series.last + value if relative else value
        else:
            series.observations.append(value / 1000 if sample.type == "ms" else value)
        series.samples += 1
        if ts is not None:
            series.ts = ts if series.ts is None else max(series.ts, ts)
    return out


def _base_name(metric: str, capture: Capture | None = None) -> str:
    """``x_bucket``/``x_sum``/``x_count`` -> ``x`` when x is a histogram (in the capture or the mapping)."""
    if capture is not None and metric in capture.series:
        return metric
    for suffix in obs.HISTOGRAM_SUFFIXES:
        if metric.endswith(suffix):
            base = metric[: -len(suffix)]
            if capture is not None and base in capture.series:
                return base
            return obs.base_metric(metric) or metric
    return metric


def _quantile(values: Iterable[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if not 0 <= q <= 1:
        return math.inf if q > 1 else -math.inf
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def aggregate(capture: Capture, metric: str, by: Iterable[str] = (), how: str | None = None) -> dict[Labels, float]:
    """The preview's aggregation of one metric over the whole capture, grouped by the ``by`` labels.

    ``how``: ``sum`` (counters' default: total increments), ``last`` (gauges' default: the
    last value of each series, summed over the group), ``mean`` (histograms' default: over
    all observations of the group) or ``pNN`` (quantile of the observations, e.g. ``p95``).
    The panels get the same numbers through ``evaluate`` of their PromQL.
    """
    by = tuple(by)
    groups: dict[Labels, list[Series]] = {}
    for labels, series in capture.series.get(_base_name(metric, capture), {}).items():
        key = tuple((k, v) for k, v in labels if k in by)
        groups.setdefault(key, []).append(series)
    out: dict[Labels, float] = {}
    for key, members in groups.items():
        kind = members[0].kind
        mode = how or {"counter": "sum", "gauge": "last"}.get(kind, "mean")
        observations = [v for s in members for v in s.observations]
        if mode == "sum":
            out[key] = sum(s.total if s.kind == "counter" else sum(s.observations) for s in members)
        elif mode == "last":
            out[key] = sum(s.last for s in members)
        elif mode == "mean":
            out[key] = sum(observations) / len(observations) if observations else math.nan
        elif re.fullmatch(r"p\d+(\.\d+)?", mode):
            out[key] = _quantile(observations, float(mode[1:]) / 100)
        else:
            raise ValueError(f"unknown aggregation {how!r}")
    return out


# --- a small PromQL evaluator over the capture ---------------------------------------------------


class UnsupportedQueryError(ValueError):
    """The expression uses PromQL the preview does not evaluate."""


class TimestampsRequiredError(UnsupportedQueryError):
    """``time()`` or ``timestamp()`` over a capture without timestamps."""


@dataclass(frozen=True)
class _Val:
    value: float | tuple[float, ...]  # a tuple: raw observations of a histogram (a _bucket selector)
    ts: float | None = None


Vector = dict[Labels, _Val]
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)),
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
    "^": lambda a, b: a**b,
    "atan2": math.atan2,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}
_IDENTITY_FUNCTIONS = frozenset(
    {"increase", "delta", "idelta", "sort", "sort_desc"}
    | {f"{agg}_over_time" for agg in ("max", "min", "avg", "sum", "last")}
)
_MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": lambda v: math.sqrt(v) if v >= 0 else math.nan,
    "exp": math.exp,
    "ln": lambda v: math.log(v) if v > 0 else math.nan,
    "log2": lambda v: math.log2(v) if v > 0 else math.nan,
    "log10": lambda v: math.log10(v) if v > 0 else math.nan,
}


def _num(v: _Val) -> float:
    if isinstance(v.value, tuple):
        raise UnsupportedQueryError("arithmetic on raw histogram observations (use histogram_quantile)")
    return v.value


def _latest(*stamps: float | None) -> float | None:
    known = [t for t in stamps if t is not None]
    return max(known) if known else None


def _is_variable(value: str) -> bool:
    return "$" in value or "[[" in value


class _Evaluator:
    """Recursive descent over ``observability.promql_tokens``; values are floats (scalars) or Vectors."""

    def __init__(self, expr: str, capture: Capture) -> None:
        self.expr = expr
        self.capture = capture
        self.tokens = obs.promql_tokens(expr)
        self.i = 0

    # token helpers
    def peek(self, ahead: int = 0) -> tuple[str, str]:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else ("", "")

    def word(self, ahead: int = 0) -> str:
        kind, text = self.peek(ahead)
        return text.lower() if kind == "ident" else ""

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        _, got = self.take()
        if got != text:
            raise UnsupportedQueryError(f"expected {text!r}, got {got!r} in {self.expr!r}")

    def label_list(self) -> list[str]:
        self.expect("(")
        names = []
        while self.peek()[1] != ")":
            kind, text = self.take()
            if kind == "":
                raise UnsupportedQueryError(f"unclosed label list in {self.expr!r}")
            if kind in {"ident", "string"}:
                names.append(text.strip("\"'`"))
        self.expect(")")
        return names

    def evaluate(self) -> float | Vector:
        value = self.or_expr()
        if self.i < len(self.tokens):
            raise UnsupportedQueryError(f"unexpected {self.peek()[1]!r} in {self.expr!r}")
        return value

    # precedence climbing, lowest first
    def or_expr(self) -> float | Vector:
        left = self.and_expr()
        while self.word() == "or":
            self.take()
            matching = self.matching()
            left = self.binary("or", left, self.and_expr(), matching)
        return left

    def and_expr(self) -> float | Vector:
        left = self.compare_expr()
        while self.word() in {"and", "unless"}:
            op = self.take()[1].lower()
            matching = self.matching()
            left = self.binary(op, left, self.compare_expr(), matching)
        return left

    def compare_expr(self) -> float | Vector:
        left = self.add_expr()
        while self.peek()[0] == "op" and self.peek()[1] in _COMPARE:
            op = self.take()[1]
            as_bool = self.word() == "bool"
            if as_bool:
                self.take()
            matching = self.matching()
            left = self.binary(op, left, self.add_expr(), matching, as_bool=as_bool)
        return left

    def add_expr(self) -> float | Vector:
        left = self.mul_expr()
        while self.peek() in {("op", "+"), ("op", "-")}:
            op = self.take()[1]
            matching = self.matching()
            left = self.binary(op, left, self.mul_expr(), matching)
        return left

    def mul_expr(self) -> float | Vector:
        left = self.unary()
        while self.peek() in {("op", "*"), ("op", "/"), ("op", "%")} or self.word() == "atan2":
            op = self.take()[1].lower()
            matching = self.matching()
            left = self.binary(op, left, self.unary(), matching)
        return left

    def unary(self) -> float | Vector:
        if self.peek() in {("op", "-"), ("op", "+")}:
            sign = -1.0 if self.take()[1] == "-" else 1.0
            return self.binary("*", sign, self.unary(), {}) if sign < 0 else self.unary()
        return self.power()

    def power(self) -> float | Vector:
        base = self.postfix(self.primary())
        if self.peek() == ("op", "^"):
            self.take()
            matching = self.matching()
            return self.binary("^", base, self.unary(), matching)  # right-associative
        return base

    def matching(self) -> dict[str, Any]:
        """``on(...)``/``ignoring(...)`` and ``group_left(...)``/``group_right(...)`` after a binary operator."""
        out: dict[str, Any] = {}
        if self.word() in {"on", "ignoring"}:
            out[self.take()[1].lower()] = self.label_list()
        if self.word() in {"group_left", "group_right"}:
            side = self.take()[1].lower()
            out[side] = self.label_list() if self.peek() == ("op", "(") else []
        return out

    def postfix(self, value: float | Vector) -> float | Vector:
        """Ranges and subqueries (``[5m]``, ``[7d:1m]``), ``offset`` and ``@``: the whole capture, ignored."""
        while True:
            if self.peek() == ("op", "["):
                depth = 0
                while True:
                    kind, text = self.take()
                    if kind == "":
                        raise UnsupportedQueryError(f"unclosed '[' in {self.expr!r}")
                    depth += {"[": 1, "]": -1}.get(text, 0) if kind == "op" else 0
                    if depth == 0:
                        break
            elif self.word() == "offset" or self.peek() == ("op", "@"):
                self.take()
                if self.peek() == ("op", "-"):
                    self.take()
                self.take()
            else:
                return value

    def primary(self) -> float | Vector:
        kind, text = self.peek()
        if (kind, text) == ("op", "("):
            self.take()
            value = self.or_expr()
            self.expect(")")
            return value
        if kind == "number":
            self.take()
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        if (kind, text) == ("op", "{"):
            return self.selector(None)
        if kind != "ident":
            raise UnsupportedQueryError(f"unexpected {text!r} in {self.expr!r}")
        word = text.lower()
        nxt = self.peek(1)
        if word in {"inf", "nan"} and nxt != ("op", "{"):
            self.take()
            return math.inf if word == "inf" else math.nan
        if word in obs.AGGREGATORS and (nxt == ("op", "(") or self.word(1) in {"by", "without"}):
            return self.aggregation()
        if nxt == ("op", "("):
            return self.function()
        return self.selector(text)

    # selectors
    def selector(self, name: str | None) -> Vector:
        if name is not None:
            self.take()
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == ("op", "{"):
            self.take()
            while self.peek() != ("op", "}"):
                kind, text = self.take()
                if kind == "":
                    raise UnsupportedQueryError(f"unclosed '{{' in {self.expr!r}")
                if (kind, text) == ("op", ","):
                    continue
                label = text.strip("\"'`")
                if self.peek()[0] == "op" and self.peek()[1] in obs.MATCH_OPS:
                    op = self.take()[1]
                    value = self.take()[1].strip("\"'`")
                    if label == "__name__" and op == "=":
                        name = value
                    else:
                        matchers.append((label, op, value))
                elif kind == "string":
                    name = label
                else:
                    raise UnsupportedQueryError(f"unexpected {text!r} in label matchers of {self.expr!r}")
            self.take()
        if name is None:
            raise UnsupportedQueryError(f"selector without a metric name in {self.expr!r}")
        return self.select(name, matchers)

    def select(self, name: str, matchers: list[tuple[str, str, str]]) -> Vector:
        base = _base_name(name, self.capture)
        suffix = name[len(base) :] if name != base and name.startswith(base) else ""
        out: Vector = {}
        for labels, series in self.capture.series.get(base, {}).items():
            values = dict(labels)
            if not all(_matches(values.get(label, ""), op, want) for label, op, want in matchers):
                continue
            if series.kind == "counter" and not suffix:
                value: float | tuple[float, ...] = series.total
            elif series.kind == "gauge" and not suffix:
                value = series.last
            elif series.kind == "observer" and suffix == "_sum":
                value = sum(series.observations)
            elif series.kind == "observer" and suffix == "_count":
                value = float(len(series.observations))
            elif series.kind == "observer" and suffix == "_bucket":
                value = tuple(series.observations)
            elif series.kind == "observer" and not suffix:  # a summary's own name: the mean
                value = sum(series.observations) / len(series.observations) if series.observations else math.nan
            else:
                continue
            out[labels] = _Val(value, series.ts)
        return out

    # calls
    def args(self) -> list[Any]:
        self.expect("(")
        out: list[Any] = []
        while self.peek() != ("op", ")"):
            if self.peek()[0] == "string":
                out.append(self.take()[1][1:-1])
            else:
                out.append(self.or_expr())
            if self.peek() == ("op", ","):
                self.take()
            elif self.peek() != ("op", ")"):
                raise UnsupportedQueryError(f"unexpected {self.peek()[1]!r} in arguments of {self.expr!r}")
        self.expect(")")
        return out

    def aggregation(self) -> Vector:
        op = self.take()[1].lower()
        grouping: tuple[str, list[str]] | None = None
        if self.word() in {"by", "without"}:
            grouping = (self.take()[1].lower(), self.label_list())
        args = self.args()
        if self.word() in {"by", "without"}:
            grouping = (self.take()[1].lower(), self.label_list())
        vector = args[-1]
        if not isinstance(vector, dict):
            raise UnsupportedQueryError(f"{op}() of a scalar in {self.expr!r}")
        mode, names = grouping or ("by", [])

        def key(labels: Labels) -> Labels:
            return tuple((k, v) for k, v in labels if (k in names) == (mode == "by"))

        groups: dict[Labels, list[tuple[Labels, _Val]]] = {}
        for labels, val in vector.items():
            groups.setdefault(key(labels), []).append((labels, val))
        out: Vector = {}
        for group, members in groups.items():
            ts = _latest(*(v.ts for _, v in members))
            if op == "sum" and all(isinstance(v.value, tuple) for _, v in members):
                out[group] = _Val(tuple(x for _, v in members for x in v.value), ts)  # type: ignore[union-attr]
                continue
            numbers = [_num(v) for _, v in members]
            if op == "sum":
                out[group] = _Val(sum(numbers), ts)
            elif op == "avg":
                out[group] = _Val(sum(numbers) / len(numbers), ts)
            elif op == "min":
                out[group] = _Val(min(numbers), ts)
            elif op == "max":
                out[group] = _Val(max(numbers), ts)
            elif op == "count":
                out[group] = _Val(float(len(numbers)), ts)
            elif op == "group":
                out[group] = _Val(1.0, ts)
            elif op in {"topk", "bottomk"}:
                k = int(args[0])
                ranked = sorted(members, key=lambda m: _num(m[1]), reverse=op == "topk")[:k]
                out.update(dict(ranked))
            elif op == "quantile":
                out[group] = _Val(_quantile(numbers, float(args[0])), ts)
            else:
                raise UnsupportedQueryError(f"aggregator {op}() in {self.expr!r}")
        return out

    def function(self) -> float | Vector:
        name = self.take()[1].lower()
        if name not in obs.FUNCTIONS:
            raise UnsupportedQueryError(f"unknown function {name}() in {self.expr!r}")
        args = self.args()
        first = args[0] if args else None
        if name == "time":
            if self.capture.end is None:
                raise TimestampsRequiredError("time() needs a capture with timestamps")
            return self.capture.end
        if name == "vector":
            return {(): _Val(float(first))}  # type: ignore[arg-type]
        if name == "histogram_quantile":
            vector = args[1] if len(args) == 2 else None
            if not isinstance(first, float) or not isinstance(vector, dict):
                raise UnsupportedQueryError(f"histogram_quantile(scalar, vector) expected in {self.expr!r}")
            return {
                labels: _Val(_quantile(v.value, first), v.ts)
                for labels, v in vector.items()
                if isinstance(v.value, tuple) and v.value
            }
        if not isinstance(first, dict):
            raise UnsupportedQueryError(f"{name}() of a scalar in {self.expr!r}")
        if name in _IDENTITY_FUNCTIONS:
            return first
        if name in {"rate", "irate"}:
            span = self.capture.span
            if span is None:
                return first  # no timestamps: the total, as for increase()
            return {labels: _Val(_num(v) / span, v.ts) for labels, v in first.items()}
        if name == "timestamp":
            if any(v.ts is None for v in first.values()):
                raise TimestampsRequiredError("timestamp() needs a capture with timestamps")
            return {labels: _Val(float(v.ts), v.ts) for labels, v in first.items()}  # type: ignore[arg-type]
        if name == "scalar":
            return _num(next(iter(first.values()))) if len(first) == 1 else math.nan
        if name == "absent":
            return {} if first else {(): _Val(1.0)}
        if name in _MATH_FUNCTIONS:
            return {labels: _Val(float(_MATH_FUNCTIONS[name](_num(v))), v.ts) for labels, v in first.items()}
        if name in {"clamp", "clamp_min", "clamp_max"}:
            low = float(args[1]) if name in {"clamp", "clamp_min"} else -math.inf
            high = float(args[-1]) if name in {"clamp", "clamp_max"} else math.inf
            return {labels: _Val(min(max(_num(v), low), high), v.ts) for labels, v in first.items()}
        if name == "round":
            step = float(args[1]) if len(args) > 1 else 1.0
            return {labels: _Val(round(_num(v) / step) * step, v.ts) for labels, v in first.items()}
        raise UnsupportedQueryError(f"function {name}() is not previewed")

    # binary operators
    def binary(
        self, op: str, left: float | Vector, right: float | Vector, matching: Mapping[str, Any], as_bool: bool = False
    ) -> float | Vector:
        if op in {"and", "or", "unless"}:
            if not isinstance(left, dict) or not isinstance(right, dict):
                raise UnsupportedQueryError(f"{op} needs two vectors in {self.expr!r}")
            key = _matching_key(matching)
            right_keys = {key(labels) for labels in right}
            if op == "and":
                return {labels: v for labels, v in left.items() if key(labels) in right_keys}
            if op == "unless":
                return {labels: v for labels, v in left.items() if key(labels) not in right_keys}
            left_keys = {key(labels) for labels in left}
            return left | {labels: v for labels, v in right.items() if key(labels) not in left_keys}
        compare = _COMPARE.get(op)
        arith = _ARITH.get(op)

        def combine(a: _Val, b: _Val, keep: _Val) -> _Val | None:
            x, y = _num(a), _num(b)
            if compare is None:
                return _Val(arith(x, y), _latest(a.ts, b.ts))  # type: ignore[misc]
            if as_bool:
                return _Val(float(compare(x, y)), _latest(a.ts, b.ts))
            return keep if compare(x, y) else None

        if not isinstance(left, dict) and not isinstance(right, dict):
            if compare is not None:
                return float(compare(left, right))
            return arith(left, right)  # type: ignore[misc]
        if not isinstance(left, dict) or not isinstance(right, dict):
            out: Vector = {}
            vector_on_left = isinstance(left, dict)
            vector = left if isinstance(left, dict) else right
            scalar = _Val(float(right if vector_on_left else left))  # type: ignore[arg-type]
            for labels, v in vector.items():
                result = combine(v, scalar, v) if vector_on_left else combine(scalar, v, v)
                if result is not None:
                    out[labels] = result
            return out
        key = _matching_key(matching)
        one, many = (right, left) if "group_right" not in matching else (left, right)
        by_key: dict[Labels, tuple[Labels, _Val]] = {}
        for labels, v in one.items():
            by_key.setdefault(key(labels), (labels, v))
        out = {}
        for labels, v in many.items():
            match = by_key.get(key(labels))
            if match is None:
                continue
            a, b = (v, match[1]) if "group_right" not in matching else (match[1], v)
            result = combine(a, b, a if "group_right" not in matching else b)
            if result is None:
                continue
            if "on" in matching and not ({"group_left", "group_right"} & set(matching)):
                labels = key(labels)
            elif "ignoring" in matching and not ({"group_left", "group_right"} & set(matching)):
                labels = tuple((k, val) for k, val in labels if k not in matching["ignoring"])
            extra = matching.get("group_left") or matching.get("group_right") or []
            if extra:
                merged = dict(labels) | {k: val for k, val in match[0] if k in extra}
                labels = tuple(sorted(merged.items()))
            out[labels] = result
        return out


def _matches(value: str, op: str, want: str) -> bool:
    """One label matcher; a Grafana variable (``$dag_id``) is "All" and matches everything."""
    if _is_variable(want):
        return True
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    try:
        found = re.fullmatch(want, value) is not None
    except re.error:
        return True
    return found if op == "=~" else not found


def _matching_key(matching: Mapping[str, Any]) -> Callable[[Labels], Labels]:
    if "on" in matching:
        names = set(matching["on"])
        return lambda labels: tuple((k, v) for k, v in labels if k in names)
    ignored = set(matching.get("ignoring", ()))
    return lambda labels: tuple((k, v) for k, v in labels if k not in ignored)


def evaluate(expr: str, capture: Capture) -> dict[Labels, float]:
    """A panel query's result over the whole capture: label set -> value (a scalar is ``{(): value}``).

    Raises ``UnsupportedQueryError`` (or ``TimestampsRequiredError``) for PromQL the preview does not evaluate.
    """
    result = _Evaluator(expr, capture).evaluate()
    if not isinstance(result, dict):
        return {(): float(result)}
    return {labels: _num(v) for labels, v in result.items()}


# --- panels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPreview:
    """One query of a panel and what the capture gives it."""

    ref_id: str
    expr: str
    legend: str
    values: dict[Labels, float]
    note: str = ""


@dataclass(frozen=True)
class PanelPreview:
    """What the preview shows for one panel, and where it came from."""

    title: str
    type: str
    grid: Mapping[str, int]
    metrics: tuple[str, ...]  # Prometheus metrics the panel's queries use (histogram base names)
    datagrams: Mapping[str, int]  # metric -> captured datagrams that fed it
    targets: tuple[TargetPreview, ...]
    has_data: bool
    shown_as: str  # how the whole-capture value reads: "total during the capture", "p95 ...", ...
    note: str = ""  # why there is no data, or what could not be evaluated
    drawn: bool = True  # False for panels inside a collapsed row

    @property
    def captured(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if self.datagrams.get(m))


@dataclass(frozen=True)
class PreviewResult:
    """The files written and, per panel (rows excluded), its metrics and whether it had data."""

    dashboard: Path
    title: str
    png: Path
    html: Path | None
    size: tuple[int, int]  # PNG width, height in pixels
    datagrams: int
    malformed: int
    unmapped: Mapping[str, int]
    panels: tuple[PanelPreview, ...]

    def panel(self, title: str) -> PanelPreview:
        for panel in self.panels:
            if panel.title == title:
                return panel
        raise KeyError(title)


def _shown_as(exprs: Iterable[str]) -> str:
    """A short phrase saying what the whole-capture number is, from the shape of the queries."""
    text = " ".join(exprs)
    if m := re.search(r"histogram_quantile\(\s*([\d.]+)", text):
        return f"p{float(m.group(1)) * 100:g} of the captured observations"
    if "time()" in text:
        return "seconds from the last such sample to the end of the capture"
    if re.search(r"_sum\b.*/.*_count\b", text):
        return "mean over the capture"
    if re.search(r"\b(increase|rate)\(", text):
        return "ratio of totals over the capture" if "/" in text else "total during the capture"
    return "last value in the capture"


def _target_metrics(expr: str) -> list[str]:
    try:
        return sorted({_base_name(m) for m in obs.promql_refs(expr).metrics})
    except ValueError:
        return []


def preview_panel(panel: Mapping[str, Any], capture: Capture, *, drawn: bool = True) -> PanelPreview:
    """Evaluate a panel's targets over the capture."""
    targets: list[TargetPreview] = []
    metrics: list[str] = []
    for target in panel.get("targets") or []:
        expr = target.get("expr")
        if not expr or target.get("hide"):
            continue
        for metric in _target_metrics(expr):
            if metric not in metrics:
                metrics.append(metric)
        note, values = "", {}
        try:
            values = evaluate(expr, capture)
        except TimestampsRequiredError as exc:
            note = str(exc)
        except (ValueError, ArithmeticError) as exc:  # UnsupportedQueryError, or PromQL the tokenizer rejects
            note = f"not previewed: {exc}"
        targets.append(TargetPreview(target.get("refId", "?"), expr, target.get("legendFormat") or "", values, note))
    datagrams = {m: capture.samples(m) for m in metrics}
    captured = any(datagrams.values())
    has_data = captured and any(t.values for t in targets)
    notes = sorted({t.note for t in targets if t.note})
    if not captured and metrics:
        note = "no data in this capture: " + ", ".join(metrics) + " not emitted"
    elif notes:
        note = "; ".join(notes)
    elif not has_data and metrics:
        note = "no matching series in this capture"
    else:
        note = ""
    return PanelPreview(
        title=str(panel.get("title", "")),
        type=str(panel.get("type", "")),
        grid=dict(panel.get("gridPos") or {}),
        metrics=tuple(metrics),
        datagrams=datagrams,
        targets=tuple(targets),
        has_data=has_data,
        shown_as=_shown_as(t.expr for t in targets),
        note=note,
        drawn=drawn,
    )


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


def _legend(template: str, labels: Labels) -> str:
    """``{{table}}`` and friends filled from the labels; label values when there is no legendFormat."""
    values = dict(labels)
    if template:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template).strip()
    return " · ".join(v for _, v in labels) or "value"


def _series_name(target: TargetPreview) -> str:
    """A target's name in a legend: the literal words of its legendFormat, else its metric's short name."""
    literal = re.sub(r"\{\{\s*\w+\s*\}\}", "", target.legend).strip(" .-·")
    if literal:
        return literal
    metrics = _target_metrics(target.expr)
    if not metrics:
        return target.ref_id
    name = metrics[0].removeprefix("acme_pipeline_").removeprefix("airflow_")
    return re.sub(r"_(total|seconds)$", "", name)


def _substitute_variables(text: str, dashboard: Mapping[str, Any]) -> str:
    """Titles: interval variables (``$window``) read "capture", the others "All"."""
    kinds = {v.get("name"): v.get("type") for v in (dashboard.get("templating") or {}).get("list") or []}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return "whole capture" if kinds.get(name) == "interval" else "All"

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, text)


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

    def save(self, path: Path) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self.figure).print_png(str(path))


def _field(panel: Mapping[str, Any], key: str) -> Any:
    return ((panel.get("fieldConfig") or {}).get("defaults") or {}).get(key)


def _draw_no_data(canvas: _Canvas, box: _Box, preview: PanelPreview) -> None:
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    first = "no data in this capture" if not preview.captured else "no matching series in this capture"
    if preview.captured and preview.note and "timestamps" in preview.note:
        first = "needs a capture with timestamps"
    elif preview.captured and preview.note.startswith("not previewed"):
        first = "not previewed"
    canvas.text(cx, cy - 4, first, 10, MUTED, ha="center", va="bottom", style="italic")
    if not preview.captured and preview.metrics:
        detail = ", ".join(preview.metrics) + " not emitted"
        canvas.text(cx, cy + 4, _fit(detail, box.w - 16, 7), 7, FAINT, ha="center")


def _draw_stat(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    target = next(t for t in preview.targets if t.values)
    value = next(iter(target.values.values()))
    text = format_value(value, _field(panel, "unit"))
    size = min(box.h * 0.42 / _PX_PER_PT, (box.w - 20) / (max(len(text), 2) * 0.62 * _PX_PER_PT), 44)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    canvas.text(cx, cy, text, size, _threshold_color(panel, value), ha="center", va="center", weight="bold")
    if target.legend:
        canvas.text(
            cx, box.y + box.h - 2, _fit(_legend(target.legend, ()), box.w, 8), 8, MUTED, ha="center", va="bottom"
        )


def _categories(preview: PanelPreview) -> list[Labels]:
    """Label sets over all targets, largest first (by their largest value), for bars and table rows."""
    best: dict[Labels, float] = {}
    for target in preview.targets:
        for labels, value in target.values.items():
            v = value if math.isfinite(value) else -math.inf
            best[labels] = max(best.get(labels, -math.inf), v)
    return sorted(best, key=lambda labels: (-best[labels], labels))


def _category_name(labels: Labels, targets: list[TargetPreview], multi: bool) -> str:
    """A bar's label: the legendFormat of the first target having it (multi-target: without trailing words)."""
    target = next((t for t in targets if labels in t.values), targets[0])
    legend = re.sub(r"(?<=\}\})[^{]*$", "", target.legend) if multi else target.legend
    return _legend(legend, labels) or " · ".join(v for _, v in labels) or "value"


def _draw_bars(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    unit = _field(panel, "unit")
    targets = [t for t in preview.targets if t.values]
    multi = len(targets) > 1
    thresholds = (_field(panel, "color") or {}).get("mode") == "thresholds"
    y = box.y
    if multi:  # legend of the targets
        x = box.x
        for index, target in enumerate(targets):
            name = _fit(_series_name(target), box.w / len(targets) - 16, 7.5)
            canvas.rect(x, y + 2, 8, 8, PALETTE[index % len(PALETTE)])
            canvas.text(x + 11, y + 1, name, 7.5, MUTED)
            x += 14 + len(name) * 7.5 * _PX_PER_PT * 0.6 + 10
        y += 15
    categories = _categories(preview)[:MAX_BARS]
    label_h, bar_h, gap = 12, 7 if multi else 8, 6
    row_h = label_h + len(targets) * (bar_h + 2) + gap
    fit = max(1, int((box.y + box.h - y) // row_h))
    hidden = len(_categories(preview)) - min(len(categories), fit)
    if hidden > 0:
        fit = max(1, int((box.y + box.h - y - 12) // row_h))
        categories = categories[:fit]
        hidden = len(_categories(preview)) - len(categories)
    low, high = _field(panel, "min"), _field(panel, "max")
    finite = [v for t in targets for v in t.values.values() if math.isfinite(v)]
    low = float(low) if low is not None else min(0.0, *finite) if finite else 0.0
    high = float(high) if high is not None else max(finite, default=1.0)
    if high <= low:
        high = low + 1
    value_w = 70
    for row, labels in enumerate(categories):
        name = _category_name(labels, targets, multi)
        canvas.text(box.x, y, _fit(name, box.w - (0 if multi else value_w), 8), 8, TEXT)
        by = y + label_h
        for index, target in enumerate(targets):
            value = target.values.get(labels)
            if value is None:
                by += bar_h + 2
                continue
            if multi:
                color = PALETTE[index % len(PALETTE)]
            elif thresholds:
                color = _threshold_color(panel, value)
            else:
                color = PALETTE[row % len(PALETTE)]
            track_w = box.w - (value_w if multi else 0)
            frac = (value - low) / (high - low) if math.isfinite(value) else (1.0 if value > 0 else 0.0)
            canvas.rect(box.x, by, track_w, bar_h, TRACK)
            canvas.rect(box.x, by, track_w * min(max(frac, 0.0), 1.0), bar_h, color)
            text = format_value(value, unit)
            if multi:
                canvas.text(box.x + box.w, by + bar_h / 2, text, 7, TEXT, ha="right", va="center")
            else:
                canvas.text(box.x + box.w, y, text, 8, color, ha="right", weight="bold")
            by += bar_h + 2
        y += row_h
    if hidden > 0:
        canvas.text(box.x, y, f"+{hidden} more", 7.5, FAINT, style="italic")


def _draw_table(canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview) -> None:
    unit = _field(panel, "unit")
    targets = [t for t in preview.targets if t.values]
    rows = _categories(preview)
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


def _draw_panel(
    canvas: _Canvas, box: _Box, panel: Mapping[str, Any], preview: PanelPreview, dashboard: Mapping[str, Any]
) -> None:
    canvas.rect(box.x, box.y, box.w, box.h, PANEL_BG, BORDER)
    title = _substitute_variables(preview.title, dashboard)
    canvas.text(box.x + 8, box.y + 6, _fit(title, box.w - 16, 9.5), 9.5, TEXT, weight="bold")
    inner = _Box(box.x + 10, box.y + 28, box.w - 20, box.h - 36)
    if preview.has_data:  # what the number means here, at the panel's foot
        canvas.text(
            box.x + box.w - 8,
            box.y + box.h - 4,
            _fit(preview.shown_as, box.w - 16, 7),
            7,
            FAINT,
            ha="right",
            va="bottom",
            style="italic",
        )
        inner = _Box(inner.x, inner.y, inner.w, inner.h - 12)
    if not preview.has_data:
        _draw_no_data(canvas, inner, preview)
        return
    total_series = sum(len(t.values) for t in preview.targets)
    if preview.type == "stat" and total_series == 1:
        _draw_stat(canvas, inner, panel, preview)
    elif preview.type == "table":
        _draw_table(canvas, inner, panel, preview)
    else:
        _draw_bars(canvas, inner, panel, preview)


HEADER_PX = 70
FOOTER_PX = 40
PAD_PX = 12
GAP_PX = 4


def footer_text(dashboard_name: str, datagrams: int, source: str = CAPTURE_SOURCE) -> str:
    return (
        f"Preview rendered by acme_localdev.dashboard_preview from {dashboard_name} and {datagrams} "
        f"StatsD datagrams captured during {source} — not a Grafana screenshot"
    )


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(obs.ROOT))
    except ValueError:
        return path.name


def _draw_dashboard(
    dashboard: Mapping[str, Any],
    previews: Mapping[int, PanelPreview],
    capture: Capture,
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

    variables = [v.get("name") for v in (dashboard.get("templating") or {}).get("list") or [] if v.get("name")]
    canvas.text(PAD_PX, 12, str(dashboard.get("title", dashboard_name)), 16, TEXT, weight="bold")
    span = ""
    if capture.start is not None and capture.end is not None:
        from datetime import UTC, datetime

        def stamp(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")

        span = f" · capture {stamp(capture.start)} – {stamp(capture.end)} UTC"
    assumptions = ", ".join(f"${v} = All" if v != "window" else "$window = whole capture" for v in variables)
    canvas.text(
        PAD_PX,
        42,
        f"{dashboard_name} · {assumptions or 'no variables'} · every range = the whole capture{span}",
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
            title = _substitute_variables(str(panel.get("title", "")), dashboard)
            hidden = len(panel.get("panels") or []) if panel.get("collapsed") else 0
            suffix = f"  ({hidden} panels collapsed)" if hidden else ""
            canvas.text(x + GAP_PX, y + h / 2, f"▾ {title}{suffix}", 11.5, TEXT, va="center", weight="bold")
            continue
        preview = previews.get(index)
        if preview is None:
            continue
        _draw_panel(canvas, _Box(x + GAP_PX, y + GAP_PX, w - 2 * GAP_PX, h - 2 * GAP_PX), panel, preview, dashboard)

    footer = footer_text(dashboard_name, capture.datagrams, source)
    canvas.rect(0, height - FOOTER_PX, FIG_WIDTH, FOOTER_PX, "#0b0c0e")
    canvas.text(FIG_WIDTH / 2, height - FOOTER_PX / 2, footer, 10, ACCENT, ha="center", va="center")
    canvas.save(out_png)
    return FIG_WIDTH, height


# --- HTML -----------------------------------------------------------------------------------------


def _write_html(result: PreviewResult, capture: Capture, dashboard_name: str, source: str) -> None:
    assert result.html is not None
    png = base64.b64encode(result.png.read_bytes()).decode("ascii")
    e = html.escape
    rows = []
    for panel in result.panels:
        queries = "".join(
            f"<div><code>{e(t.ref_id)}: {e(t.expr)}</code>"
            + (f" <span class=muted>legend {e(t.legend)}</span>" if t.legend else "")
            + "</div>"
            for t in panel.targets
        )
        metrics = (
            "<br>".join(f"<code>{e(m)}</code> ({panel.datagrams.get(m, 0)} datagrams)" for m in panel.metrics)
            or "<span class=muted>none</span>"
        )
        status = "yes" if panel.has_data else "<b class=no>no</b>"
        note = e(panel.note) + ("" if panel.drawn else " (in a collapsed row: not drawn)")
        rows.append(
            f"<tr><td>{e(panel.title)}</td><td>{e(panel.type)}</td><td>{queries}</td><td>{metrics}</td>"
            f"<td>{status}</td><td>{e(panel.shown_as) if panel.has_data else ''}<div class=muted>{note}</div></td></tr>"
        )
    unmapped = ", ".join(f"{e(name)} ×{count}" for name, count in sorted(capture.unmapped.items())) or "none"
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
<p class="banner">{e(footer_text(dashboard_name, capture.datagrams, source))}</p>
<p>Each panel's PromQL was evaluated over the whole capture after mapping every datagram through
<code>deploy/statsd/mapping.yml</code>: counters are the total during the capture (an <code>increase()</code>
"per hour" or <code>$window</code> query shows the total), gauges their last value, histograms the mean or the
quantile of the captured observations; template variables are "All". Panels whose metrics the capture does not
contain say "no data in this capture".</p>
<p class="muted">Capture: {capture.datagrams} datagrams, {capture.malformed} malformed lines skipped,
{capture.dropped} dropped; StatsD names no mapping rule matches: {unmapped}.</p>
<img alt="{e(result.title)} preview" src="data:image/png;base64,{png}" width="{result.size[0]}">
<table>
<tr><th>Panel</th><th>Type</th><th>PromQL</th><th>Metrics (captured datagrams)</th><th>Data</th><th>Shown as</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""
    result.html.write_text(page, encoding="utf-8")


# --- entry points ----------------------------------------------------------------------------------


def render_preview(
    dashboard_json: Path,
    capture: Path,
    out_png: Path,
    *,
    out_html: Path | None = None,
    source: str = CAPTURE_SOURCE,
    rules: Iterable[obs.Rule] | None = None,
) -> PreviewResult:
    """Render ``dashboard_json`` for the datagrams in ``capture`` to ``out_png`` (and ``out_html``)."""
    import json

    dashboard_json, capture, out_png = Path(dashboard_json), Path(capture), Path(out_png)
    dashboard = json.loads(dashboard_json.read_text())
    data = load_capture(capture, rules)
    dashboard_name = _display_path(dashboard_json)

    previews: dict[int, PanelPreview] = {}
    listed: list[PanelPreview] = []
    for index, panel in enumerate(dashboard.get("panels") or []):
        if panel.get("type") == "row":
            for nested in obs.iter_panels(panel.get("panels") or []):
                if nested.get("type") != "row":
                    listed.append(preview_panel(nested, data, drawn=not panel.get("collapsed")))
            continue
        previews[index] = preview_panel(panel, data)
        listed.append(previews[index])
        for nested in obs.iter_panels(panel.get("panels") or []):
            listed.append(preview_panel(nested, data, drawn=False))

    out_png.parent.mkdir(parents=True, exist_ok=True)
    size = _draw_dashboard(dashboard, previews, data, dashboard_name, out_png, source)
    result = PreviewResult(
        dashboard=dashboard_json,
        title=str(dashboard.get("title", dashboard_json.stem)),
        png=out_png,
        html=Path(out_html) if out_html else None,
        size=size,
        datagrams=data.datagrams,
        malformed=data.malformed,
        unmapped=dict(data.unmapped),
        panels=tuple(listed),
    )
    if result.html is not None:
        result.html.parent.mkdir(parents=True, exist_ok=True)
        _write_html(result, data, dashboard_name, source)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acme_localdev.dashboard_preview",
        description="Render a PNG preview of a Grafana dashboard from captured StatsD datagrams (not a screenshot).",
    )
    parser.add_argument("--dashboard", type=Path, required=True, help="deploy/grafana/dashboards/<name>.json")
    parser.add_argument("--capture", type=Path, required=True, help="StatsD lines, one per line ([unix-ts ]line)")
    parser.add_argument("--png", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--html", type=Path, help="also write a self-contained HTML page")
    parser.add_argument("--source", default=CAPTURE_SOURCE, help="what produced the capture (footer text)")
    args = parser.parse_args(argv)
    result = render_preview(args.dashboard, args.capture, args.png, out_html=args.html, source=args.source)
    with_data = sum(p.has_data for p in result.panels)
    print(
        f"{result.png}: {result.size[0]}x{result.size[1]} px, {result.title}: {with_data}/{len(result.panels)} panels "
        f"with data from {result.datagrams} datagrams ({result.malformed} malformed lines skipped)"
    )
    for panel in result.panels:
        print(f"  {'+' if panel.has_data else '-'} {panel.title}" + ("" if panel.has_data else f"  [{panel.note}]"))
    if result.html:
        print(f"{result.html}: written")
    if result.datagrams == 0:
        print(f"warning: no StatsD datagrams in {args.capture}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

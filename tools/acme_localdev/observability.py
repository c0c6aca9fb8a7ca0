"""StatsD names -> Prometheus metrics -> Grafana dashboards: one reading of the deploy/ files.

Airflow sends StatsD (``airflow.<name>,<tag>=<value>,...:<value>|<type>``) to
statsd-exporter, which turns it into Prometheus metrics by the rules of
``deploy/statsd/mapping.yml``; Prometheus scrapes it; the Grafana dashboards of
``deploy/grafana/dashboards/`` query Prometheus. This module reads those files
the way statsd-exporter and PromQL do, for four users:

- ``tests/test_observability_files.py`` (static cross-checks of the files, in the unit
  tier: no binary runs there, and Prometheus 2.42 has no API returning a query's
  selectors, so ``promql_refs`` reads them; the queries themselves are run by a real
  Prometheus in ``tests/test_dashboard_preview.py``),
- ``docs/metrics.md`` (its metric table is ``render_metrics_table()``;
  ``python -m acme_localdev.observability --write-docs`` rewrites it),
- tests that capture real datagrams: ``dashboard_coverage(observed)`` says which
  dashboard metrics the observed StatsD names feed and which none does,
- ``acme_localdev.prometheus``, which replays a capture through ``map_statsd_name``
  into statsd-exporter's metrics (statsd-exporter itself has no Debian package).

Matching follows statsd-exporter: tags are split off the name before matching,
glob rules (``*`` is one dot-separated component) are tried in file order before
regex rules, the first match wins, ``match_metric_type`` restricts a rule to
counters, gauges or observers (timers), and ``ms`` timers are observed in seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAPPING_FILE = ROOT / "deploy" / "statsd" / "mapping.yml"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
METRICS_DOC = ROOT / "docs" / "metrics.md"

STATSD_PREFIX = "airflow"  # [metrics] statsd_prefix
ACME_PREFIX = f"{STATSD_PREFIX}.acme.pipeline."  # + acme_pipelines.metrics.CATALOG names

# StatsD type -> statsd-exporter's metric type (what match_metric_type names).
STATSD_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}
REGISTRY_TYPES = {"counter": "counter", "gauge": "gauge", "timer": "observer"}  # Airflow's metrics_template.yaml

# Tags Airflow 3.3 attaches to the metrics the mapping names (read from its source; the
# registry's name_variables are the legacy name's parts, not the tags). team_name is added
# only with [core] multi_team and is left out. dagrun_id (deadline_alerts.deadline_missed)
# is stripped by the default [metrics] statsd_disabled_tags=job_id,run_id.
AIRFLOW_TAGS: dict[str, tuple[str, ...]] = {
    "ti.finish": ("dag_id", "task_id", "state"),  # sdk/execution_time/task_runner.py
    "ti_successes": ("dag_id", "task_id"),
    "ti_failures": ("dag_id", "task_id"),  # also models/taskinstance.py
    "task.duration": ("dag_id", "task_id"),
    "ti.running": ("queue", "dag_id", "task_id"),  # jobs/scheduler_job_runner.py
    "ti.queued": ("queue", "dag_id", "task_id"),
    "dagrun.duration.success": ("dag_id", "run_type"),  # models/dagrun.py stats_tags
    "dagrun.duration.failed": ("dag_id", "run_type"),
    "dagrun.schedule_delay": ("dag_id",),
    "deadline_alerts.deadline_missed": ("dag_id",),  # models/deadline.py
    "scheduler_heartbeat": (),
    "triggerer_heartbeat": (),
    "dag_processor_heartbeat": (),
    "dag_processing.import_errors": (),
    "pool.open_slots": ("pool_name",),
    "pool.running_slots": ("pool_name",),
    "pool.queued_slots": ("pool_name",),
    "pool.deferred_slots": ("pool_name",),
    "pool.scheduled_slots": ("pool_name",),
    "pool.starving_tasks": ("pool_name",),
    "scheduler.tasks.starving": (),
    "executor.open_slots": ("executor_class_name", "status"),  # executors/base_executor.py
    "executor.running_tasks": ("executor_class_name", "status"),
    "executor.queued_tasks": ("executor_class_name", "status"),
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SUMMARY_SUFFIXES = ("_sum", "_count")


# --- mapping rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One entry of mapping.yml's ``mappings``."""

    index: int
    match: str
    name: str
    match_type: str = "glob"
    metric_type: str | None = None  # match_metric_type
    labels: Mapping[str, str] = field(default_factory=dict)
    observer_type: str = "summary"
    action: str = "map"
    help: str = ""
    buckets: tuple[float, ...] = ()  # histogram_options.buckets (or the defaults'); () = the exporter's default

    @property
    def pattern(self) -> re.Pattern[str]:
        if self.match_type == "regex":
            return re.compile(self.match)
        parts = ("([^.]+)" if part == "*" else re.escape(part) for part in self.match.split("."))
        return re.compile("^" + r"\.".join(parts) + "$")

    @property
    def prometheus_type(self) -> str:
        """counter, gauge, histogram or summary (observer rules), or ``any`` without match_metric_type."""
        if self.metric_type == "observer":
            return self.observer_type
        return self.metric_type or "any"

    def series(self) -> set[str]:
        """The names Prometheus stores for this rule (histograms: _bucket, _sum, _count)."""
        if self.action == "drop":
            return set()
        if self.prometheus_type == "histogram":
            return {self.name + suffix for suffix in HISTOGRAM_SUFFIXES}
        if self.prometheus_type == "summary":
            return {self.name} | {self.name + suffix for suffix in SUMMARY_SUFFIXES}
        return {self.name}

    def accepts(self, metric_type: str | None) -> bool:
        return self.metric_type is None or metric_type is None or self.metric_type == metric_type

    def apply(self, statsd_name: str, metric_type: str | None = None) -> Mapped | None:
        if not self.accepts(metric_type):
            return None
        found = self.pattern.search(statsd_name) if self.match_type == "regex" else self.pattern.match(statsd_name)
        if not found:
            return None
        return Mapped(
            rule=self,
            statsd_name=statsd_name,
            name=_expand(self.name, found),
            labels={key: _expand(value, found) for key, value in self.labels.items()},
        )


@dataclass(frozen=True)
class Mapped:
    """What statsd-exporter makes of one StatsD name."""

    rule: Rule
    statsd_name: str
    name: str  # the Prometheus metric name ("" when the rule drops it)
    labels: Mapping[str, str]

    @property
    def dropped(self) -> bool:
        return self.rule.action == "drop"


def _expand(template: str, found: re.Match[str]) -> str:
    """statsd-exporter's ``$1`` / ``${1}`` / ``${name}`` substitution."""

    def group(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        try:
            return found.group(int(key) if key.isdigit() else key) or ""
        except IndexError:  # re's error for an unknown group number or name
            return ""

    return re.sub(r"\$\{(\w+)\}|\$(\d+)", group, template)


def load_mapping(path: Path = MAPPING_FILE) -> list[Rule]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("mappings"), list):
        raise ValueError(f"{path}: expected a mapping with a `mappings` list")
    defaults = data.get("defaults") or {}
    rules = []
    for index, entry in enumerate(data["mappings"]):
        if not isinstance(entry, dict) or "match" not in entry or "name" not in entry:
            raise ValueError(f"{path}: mapping #{index} needs `match` and `name`: {entry!r}")
        rules.append(
            Rule(
                index=index,
                match=str(entry["match"]),
                name=str(entry["name"]),
                match_type=entry.get("match_type") or defaults.get("match_type") or "glob",
                metric_type=entry.get("match_metric_type"),
                labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
                observer_type=entry.get("observer_type")
                or entry.get("timer_type")
                or defaults.get("observer_type")
                or "summary",
                action=entry.get("action") or "map",
                help=entry.get("help") or "",
                buckets=tuple(
                    float(b)
                    for b in (entry.get("histogram_options") or {}).get("buckets")
                    or entry.get("buckets")
                    or (defaults.get("histogram_options") or {}).get("buckets")
                    or ()
                ),
            )
        )
    return rules


@cache
def _default_rules() -> tuple[Rule, ...]:
    return tuple(load_mapping())


def map_statsd_name(
    statsd_name: str, metric_type: str | None = None, rules: Iterable[Rule] | None = None
) -> Mapped | None:
    """The rule statsd-exporter applies to ``statsd_name`` (tags already split off), or None (unmapped).

    ``metric_type`` is counter/gauge/observer (or a StatsD type: c, g, ms); None matches any rule type.
    """
    metric_type = STATSD_TYPES.get(metric_type, metric_type) if metric_type else None
    ordered = list(_default_rules() if rules is None else rules)
    for rule in [r for r in ordered if r.match_type != "regex"] + [r for r in ordered if r.match_type == "regex"]:
        if mapped := rule.apply(statsd_name, metric_type):
            return mapped
    return None


def series_index(rules: Iterable[Rule] | None = None) -> dict[str, Rule]:
    """Every Prometheus series name the mapping produces -> the (first) rule producing it."""
    index: dict[str, Rule] = {}
    for rule in _default_rules() if rules is None else rules:
        for series in rule.series():
            index.setdefault(series, rule)
    return index


def base_metric(series: str, rules: Iterable[Rule] | None = None) -> str | None:
    """``acme_pipeline_load_seconds_bucket`` -> ``acme_pipeline_load_seconds``; None if no rule makes it."""
    rule = series_index(rules).get(series)
    return rule.name if rule else None


# --- what the rules correspond to ---------------------------------------------------------------


@cache
def airflow_registry() -> dict[str, dict[str, Any]]:
    """Airflow's own metric registry (metrics_template.yaml), by new-style name."""
    from airflow.sdk._shared.observability.metrics.metrics_registry import YAML_REGISTRY_PATH, read_metrics_yaml

    return {m["name"]: m for m in read_metrics_yaml(str(YAML_REGISTRY_PATH))}


def catalog() -> dict[str, Any]:
    from acme_pipelines.metrics import CATALOG

    return CATALOG


def _placeholder_free(name: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", name)


def rule_sources(rule: Rule) -> dict[str, str]:
    """StatsD names (without the ``airflow.`` prefix) a rule maps -> ``catalog`` or ``airflow``.

    CATALOG measures are ``acme.pipeline.<name>``; Airflow registry names keep their
    ``{variable}`` placeholders. Only sources whose type the rule accepts count.
    """
    out: dict[str, str] = {}
    for measure, metric in catalog().items():
        full = ACME_PREFIX + measure
        kind = "observer" if metric.kind == "timer" else metric.kind
        if rule.apply(full, kind):
            out[full.removeprefix(STATSD_PREFIX + ".")] = "catalog"
    for name, entry in airflow_registry().items():
        kind = REGISTRY_TYPES.get(str(entry.get("type", "")).lower())
        if rule.apply(f"{STATSD_PREFIX}.{_placeholder_free(name)}", kind):
            out[name] = "airflow"
    return out


def metric_labels(rules: Iterable[Rule] | None = None) -> dict[str, set[str]]:
    """Prometheus series name -> the labels its samples carry (tags + rule labels, histograms + ``le``)."""
    rules = list(_default_rules() if rules is None else rules)
    labels: dict[str, set[str]] = {}
    for rule in rules:
        tags: set[str] = set()
        for source, origin in rule_sources(rule).items():
            if origin == "catalog":
                tags |= set(catalog()[source.rsplit(".", 1)[-1]].tags)
            else:
                tags |= set(AIRFLOW_TAGS.get(source, ()))
        tags |= {k for k, v in rule.labels.items() if v}
        tags -= {k for k, v in rule.labels.items() if not v}
        for series in rule.series():
            extra = {"le"} if series.endswith("_bucket") else set()
            if rule.prometheus_type == "summary" and series == rule.name:
                extra = {"quantile"}
            labels.setdefault(series, set()).update(tags | extra)
    return labels


# --- PromQL -------------------------------------------------------------------------------------

AGGREGATORS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio".split()  # noqa: SIM905
)
FUNCTIONS = frozenset(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv
    double_exponential_smoothing end exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase info
    irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute
    month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
    sort_by_label sort_by_label_desc sort_desc sqrt start stddev_over_time stdvar_over_time sum_over_time tan tanh
    time timestamp vector year""".split()  # noqa: SIM905
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<var>\$\{[^}]+\}|\$\w+|\[\[\w+(?::\w+)?\]\])
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,(){}\[\]:])
    """,
    re.VERBOSE,
)


def promql_tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {pos}: {expr[pos : pos + 20]!r} in {expr!r}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup or "", m.group()))
        pos = m.end()
    return out


@dataclass(frozen=True)
class PromQLRefs:
    """The metric selectors of a PromQL expression and the labels it groups or matches on."""

    selectors: tuple[tuple[str, frozenset[str]], ...]  # (metric name, label names in its {matchers})
    grouping: frozenset[str]  # labels in by/without/on/ignoring/group_left/group_right clauses

    @property
    def metrics(self) -> set[str]:
        return {name for name, _ in self.selectors}


def _string_value(text: str) -> str:
    return text[1:-1]


def _matchers(tokens: list[tuple[str, str]], start: int) -> tuple[set[str], str | None, int]:
    """Read ``{...}`` from ``tokens[start]`` ('{'): label names, a quoted/__name__ metric name, the index after '}'."""
    labels: set[str] = set()
    name = None
    i = start + 1
    while i < len(tokens) and tokens[i] != ("op", "}"):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind in {"ident", "string"} and nxt[0] == "op" and nxt[1] in MATCH_OPS:
            label = _string_value(text) if kind == "string" else text
            value = tokens[i + 2] if i + 2 < len(tokens) else ("", "")
            if label == "__name__" and nxt[1] == "=" and value[0] == "string":
                name = _string_value(value[1])
            else:
                labels.add(label)
            i += 3
        elif kind == "string":  # PromQL 3: {"metric.name", ...}
            name = _string_value(text)
            i += 1
        elif (kind, text) == ("op", ","):
            i += 1
        else:
            raise ValueError(f"unexpected {text!r} in label matchers")
    if i >= len(tokens):
        raise ValueError("unclosed '{'")
    return labels, name, i + 1


def promql_refs(expr: str) -> PromQLRefs:
    """Metric names and label names of a PromQL expression (Grafana variables allowed).

    Identifiers followed by ``(`` are functions (unknown ones are an error, to catch typos),
    aggregators may be followed by ``by``/``without``, identifiers in ``{...}`` before a
    matcher operator are labels, the contents of ``[...]`` are durations, and the
    parenthesised lists after by/without/on/ignoring/group_left/group_right are labels.
    """
    tokens = promql_tokens(expr)
    selectors: list[tuple[str, frozenset[str]]] = []
    grouping: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if (kind, text) == ("op", "["):
            depth = 0
            while i < len(tokens):
                depth += {"[": 1, "]": -1}.get(tokens[i][1], 0) if tokens[i][0] == "op" else 0
                i += 1
                if depth == 0:
                    break
            continue
        if (kind, text) == ("op", "{"):  # a selector without a leading name: {__name__="x", ...}
            labels, name, i = _matchers(tokens, i)
            if name is None:
                raise ValueError(f"selector without a metric name in {expr!r}")
            selectors.append((name, frozenset(labels)))
            continue
        if kind != "ident":
            i += 1
            continue
        word = text.lower()
        if word in GROUPING:
            i += 1
            if i < len(tokens) and tokens[i] == ("op", "("):
                i += 1
                while i < len(tokens) and tokens[i] != ("op", ")"):
                    if tokens[i][0] == "ident":
                        grouping.add(tokens[i][1])
                    i += 1
                i += 1
            continue
        if word in KEYWORDS:
            i += 1
            continue
        if nxt == ("op", "("):
            if word not in FUNCTIONS and word not in AGGREGATORS:
                raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
            i += 1
            continue
        if word in AGGREGATORS and nxt[0] == "ident" and nxt[1].lower() in {"by", "without"}:
            i += 1
            continue
        labels: set[str] = set()
        i += 1
        if i < len(tokens) and tokens[i] == ("op", "{"):
            labels, _, i = _matchers(tokens, i)
        selectors.append((text, frozenset(labels)))
    return PromQLRefs(tuple(selectors), frozenset(grouping))


def promql_metric_names(expr: str) -> set[str]:
    return promql_refs(expr).metrics


# --- Grafana dashboards -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel target or a template variable's query."""

    dashboard: str  # the dashboard uid
    title: str  # panel title or "$variable"
    expr: str
    label: str | None = None  # label_values(expr, label): the label the variable lists


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<expr>.*?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """Dashboard JSON files by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def iter_panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """Panels, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def dashboard_queries(dashboards: Mapping[str, dict[str, Any]] | None = None) -> list[Query]:
    queries = []
    for dashboard in (load_dashboards() if dashboards is None else dashboards).values():
        uid = dashboard.get("uid", "?")
        for panel in iter_panels(dashboard.get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    queries.append(Query(uid, panel.get("title", "?"), target["expr"]))
        for variable in (dashboard.get("templating") or {}).get("list") or []:
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            if m := _LABEL_VALUES.match(text):
                if m.group("expr"):
                    queries.append(Query(uid, "$" + variable["name"], m.group("expr"), m.group("label")))
            elif m := _QUERY_RESULT.match(text):
                queries.append(Query(uid, "$" + variable["name"], m.group("expr")))
            elif text.strip():
                raise ValueError(f"{uid}: variable {variable['name']!r} has an unsupported query {text!r}")
    return queries


def dashboard_metrics(
    dashboards: Mapping[str, dict[str, Any]] | None = None, rules: Iterable[Rule] | None = None
) -> dict[str, set[str]]:
    """Prometheus metric (the mapping's name; an unknown series as it is) -> uids of the dashboards using it."""
    rules = list(_default_rules() if rules is None else rules)
    used: dict[str, set[str]] = {}
    for query in dashboard_queries(dashboards):
        for series in promql_metric_names(query.expr):
            used.setdefault(base_metric(series, rules) or series, set()).add(query.dashboard)
    return used


# --- StatsD datagrams and coverage --------------------------------------------------------------


@dataclass(frozen=True)
class StatsdSample:
    name: str
    tags: Mapping[str, str]
    value: str | None = None
    type: str | None = None  # c, g, ms, ...


def parse_statsd_line(line: str) -> StatsdSample:
    """``name[,k=v...][:value|type[|@rate][|#k:v,...]]`` (InfluxDB or DogStatsD tags), or a bare name."""
    line = line.strip()
    head, _, rest = line.partition(":")
    name, *influx = head.split(",")
    tags = dict(tag.partition("=")[::2] for tag in influx if tag)
    value = kind = None
    if rest:
        value, *parts = rest.split("|")
        kind = parts[0] if parts else None
        for part in parts[1:]:
            if part.startswith("#"):
                tags.update(tag.partition(":")[::2] for tag in part[1:].split(",") if tag)
    return StatsdSample(name, tags, value, kind)


def parse_datagram(payload: str | bytes) -> list[StatsdSample]:
    """One UDP payload (may hold several newline-separated lines)."""
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    return [parse_statsd_line(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Coverage:
    """Which dashboard metrics a set of observed StatsD names feeds."""

    covered: dict[str, frozenset[str]]  # dashboard metric (Prometheus name) -> observed StatsD names feeding it
    missing: frozenset[str]  # dashboard metrics nothing observed feeds
    unmapped: frozenset[str]  # observed StatsD names no rule maps (statsd-exporter's default naming applies)
    not_on_dashboards: frozenset[str]  # observed names that are mapped but feed no dashboard metric

    @property
    def complete(self) -> bool:
        return not self.missing


def dashboard_coverage(
    observed: Iterable[str | bytes],
    *,
    rules: Iterable[Rule] | None = None,
    dashboards: Mapping[str, dict[str, Any]] | None = None,
) -> Coverage:
    """Which dashboard metrics the observed StatsD traffic feeds, and which it does not.

    ``observed``: StatsD names (``airflow.ti.finish``) or raw lines/datagrams
    (``airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c``); a line's type, when
    present, must agree with a rule's ``match_metric_type`` as in statsd-exporter.
    """
    rules = list(_default_rules() if rules is None else rules)
    wanted = set(dashboard_metrics(dashboards, rules))
    covered: dict[str, set[str]] = {}
    unmapped, elsewhere = set(), set()
    for item in observed:
        for sample in parse_datagram(item):
            mapped = map_statsd_name(sample.name, sample.type, rules)
            if mapped is None or mapped.dropped:
                unmapped.add(sample.name)
            elif mapped.name in wanted:
                covered.setdefault(mapped.name, set()).add(sample.name)
            else:
                elsewhere.add(sample.name)
    return Coverage(
        covered={name: frozenset(names) for name, names in sorted(covered.items())},
        missing=frozenset(wanted - set(covered)),
        unmapped=frozenset(unmapped),
        not_on_dashboards=frozenset(elsewhere),
    )


# --- docs/metrics.md ----------------------------------------------------------------------------

DOC_BEGIN = "<!-- BEGIN metrics table: generated by `python -m acme_localdev.observability --write-docs` -->"
DOC_END = "<!-- END metrics table -->"


def _statsd_display(rule: Rule) -> str:
    """The match for people: a ``*`` component shows as ``<label>`` when a label captures it."""
    if rule.match_type == "regex":
        return f"/{rule.match}/"
    by_capture = {value: key for key, value in rule.labels.items()}
    parts, star = [], 0
    for part in rule.match.split("."):
        if part == "*":
            star += 1
            part = "<{}>".format(by_capture.get(f"${star}") or by_capture.get(f"${{{star}}}") or "*")
        parts.append(part)
    return ".".join(parts)


def _description(rule: Rule) -> str:
    """CATALOG's description for acme metrics; the rule's ``help`` (else the registry's text) for Airflow's."""
    sources = rule_sources(rule)
    measures = [source.rsplit(".", 1)[-1] for source, origin in sources.items() if origin == "catalog"]
    if measures:
        text = "; ".join(catalog()[measure].description for measure in measures)
    else:
        text = rule.help or "; ".join(
            " ".join(str(airflow_registry()[source]["description"]).split()).replace("``", "`") for source in sources
        )
    return text.replace("|", "\\|")


def render_metrics_table(rules: Iterable[Rule] | None = None) -> str:
    """The Markdown table of every mapping rule: StatsD name, Prometheus name, type, labels, source, dashboards."""
    rules = list(_default_rules() if rules is None else rules)
    labels = metric_labels(rules)
    used = dashboard_metrics(rules=rules)
    titles = {d.get("uid"): d.get("title", d.get("uid")) for d in load_dashboards().values()}
    lines = [
        "| StatsD name (on the wire) | Prometheus metric | Type | Labels | Source | Description | Dashboards |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in rules:
        if rule.action == "drop":
            continue
        origin = "acme CATALOG" if set(rule_sources(rule).values()) == {"catalog"} else "Airflow"
        kind = rule.prometheus_type
        unit = " (seconds)" if kind in {"histogram", "summary"} else ""
        shown = sorted(labels.get(rule.name if kind != "histogram" else rule.name + "_count", set()))
        boards = ", ".join(sorted(titles.get(uid, uid) for uid in used.get(rule.name, ()))) or "-"
        lines.append(
            f"| `{_statsd_display(rule)}` | `{rule.name}` | {kind}{unit} | "
            f"{', '.join(f'`{name}`' for name in shown) or '-'} | {origin} | {_description(rule)} | {boards} |"
        )
    return "\n".join(lines)


def docs_table_block(text: str) -> str | None:
    """The generated block of docs/metrics.md (without the markers), or None."""
    start, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if start < 0 or end < start:
        return None
    return text[start + len(DOC_BEGIN) : end].strip("\n")


def write_docs(path: Path = METRICS_DOC) -> bool:
    """Rewrite the generated table of docs/metrics.md; True if it changed."""
    text = path.read_text()
    if docs_table_block(text) is None:
        raise ValueError(f"{path}: markers {DOC_BEGIN!r} ... {DOC_END!r} not found")
    start, end = text.index(DOC_BEGIN) + len(DOC_BEGIN), text.index(DOC_END)
    new = text[:start] + "\n" + render_metrics_table() + "\n" + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acme_localdev.observability", description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite the table in {METRICS_DOC.name}")
    args = parser.parse_args(argv)
    if args.write_docs:
        print(f"{METRICS_DOC}: {'updated' if write_docs() else 'up to date'}")
    else:
        print(render_metrics_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Static checks of the observability files: statsd-exporter mapping, Prometheus, Grafana, docs, compose.

Nothing is started. The chain is Airflow StatsD -> deploy/statsd/mapping.yml ->
Prometheus -> deploy/grafana/dashboards; these tests check each link against the
next: every metric a dashboard queries is produced by a mapping rule (histogram
series included), every rule maps a metric of acme_pipelines.metrics.CATALOG or of
Airflow's own registry with the same type, every label a query matches or groups
on is one the metric carries, docs/metrics.md is the generated table, and the
compose services mount what the configs expect where they expect it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from acme_localdev import observability as obs
from conftest import ROOT

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "docker-compose.yaml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "acme.yml"
SETTINGS = ROOT / "airflow_settings.yaml"
DASHBOARD_FILES = sorted(obs.DASHBOARDS_DIR.glob("*.json"))
EXPECTED_DASHBOARDS = {
    "acme-pipeline-health",
    "acme-run-durations",
    "acme-rows-rejects",
    "acme-deadlines-alerts",
    "acme-pools",
}
GRAFANA_BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
# Keys statsd-exporter reads in a mapping (pkg/mapper/mapping.go); anything else is a typo it would ignore.
MAPPING_KEYS = {
    "match",
    "name",
    "labels",
    "observer_type",
    "timer_type",
    "buckets",
    "quantiles",
    "match_type",
    "help",
    "action",
    "match_metric_type",
    "ttl",
    "summary_options",
    "histogram_options",
    "scale",
    "honor_labels",
}
# statsd-exporter's own check of a glob match (mapper.go metricLineRE).
GLOB_MATCH = re.compile(r"^(\*\.|[a-zA-Z_](-?[a-zA-Z0-9_])*\.)+(\*|[a-zA-Z_](-?[a-zA-Z0-9_])*)$")
PROMETHEUS_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
STATSD_TYPE_CHAR = {"counter": "c", "gauge": "g", "observer": "ms"}

# Images of the observability services: repository -> a pinned version tag is required.
OBSERVABILITY_SERVICES = {
    "statsd-exporter": "prom/statsd-exporter",
    "prometheus": "prom/prometheus",
    "grafana": "grafana/grafana",
    "marquez": "marquezproject/marquez",
    "marquez-db": "postgres",
}
AIRFLOW_METRICS_ENV = {
    "AIRFLOW__METRICS__STATSD_ON": "True",
    "AIRFLOW__METRICS__STATSD_HOST": "statsd-exporter",
    "AIRFLOW__METRICS__STATSD_PORT": "9125",
    "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "acme",
}


@cache
def rules() -> tuple[obs.Rule, ...]:
    return tuple(obs.load_mapping())


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    return obs.load_dashboards()


@cache
def queries() -> tuple[obs.Query, ...]:
    return tuple(obs.dashboard_queries(dashboards()))


@cache
def labels_by_series() -> dict[str, set[str]]:
    return obs.metric_labels(rules())


def load_yaml(path: Path) -> Any:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


@cache
def compose_services() -> dict[str, dict[str, Any]]:
    return load_yaml(COMPOSE)["services"]


def flag(service: dict[str, Any], name: str) -> str:
    """The value of ``--name=value`` in a service's command."""
    values = [arg.split("=", 1)[1] for arg in service.get("command") or [] if arg.startswith(f"--{name}=")]
    assert len(values) == 1, f"expected one --{name}=... in {service.get('command')}"
    return values[0]


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo source (``./...``) of a service's bind mounts."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, _, rest = str(entry).partition(":")
        if source.startswith("./"):
            mounts[rest.split(":")[0]] = source
    return mounts


def mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The repo file a service sees at ``container_path`` (directly, or inside a mounted directory)."""
    for target, source in bind_mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            path = ROOT / source / Path(container_path).relative_to(target)
            assert path.exists(), f"{container_path} is mounted from {path.relative_to(ROOT)}, which does not exist"
            return path
    raise AssertionError(f"nothing is mounted at {container_path}: {bind_mounts(service)}")


# --- (a) the files parse and hang together ------------------------------------------------------


def test_mapping_rules_are_explicit_and_well_formed() -> None:
    raw = load_yaml(obs.MAPPING_FILE)["mappings"]
    assert raw, "mapping.yml has no mappings"
    problems = []
    for entry, rule in zip(raw, rules(), strict=True):
        where = f"mapping #{rule.index} ({rule.match})"
        if unknown := set(entry) - MAPPING_KEYS:
            problems.append(f"{where}: keys statsd-exporter does not know: {sorted(unknown)}")
        if rule.match_type == "glob" and not GLOB_MATCH.match(rule.match):
            problems.append(f"{where}: not a valid statsd-exporter glob")
        if not PROMETHEUS_NAME.match(rule.name):
            problems.append(f"{where}: name {rule.name!r} is not an explicit Prometheus name")
        if rule.action != "map":
            problems.append(f"{where}: action {rule.action!r}: nothing may be dropped silently")
        if rule.metric_type not in {"counter", "gauge", "observer"}:
            problems.append(f"{where}: needs match_metric_type counter|gauge|observer, not {rule.metric_type!r}")
        if rule.metric_type == "counter" and not rule.name.endswith("_total"):
            problems.append(f"{where}: a counter's name ends in _total")
        if rule.metric_type != "counter" and rule.name.endswith("_total"):
            problems.append(f"{where}: only counters end in _total")
        if rule.metric_type == "observer":
            buckets = (entry.get("histogram_options") or {}).get("buckets") or []
            if rule.observer_type != "histogram" or not rule.name.endswith("_seconds"):
                problems.append(f"{where}: timers map to histograms named *_seconds (values are seconds)")
            if not buckets or buckets != sorted(set(buckets)):
                problems.append(f"{where}: needs explicit ascending histogram_options.buckets, got {buckets}")
        if any(not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]+$", key) for key in rule.labels):
            problems.append(f"{where}: invalid label name in {sorted(rule.labels)}")
    names = [rule.name for rule in rules()]
    if duplicates := {name for name in names if names.count(name) > 1}:
        problems.append(f"one Prometheus name from several rules: {sorted(duplicates)}")
    assert not problems, "\n".join(problems)


def test_prometheus_scrapes_statsd_exporter_every_15s() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    targets = {
        job["job_name"]: [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        for job in config["scrape_configs"]
    }
    exporter = compose_services()["statsd-exporter"]
    port = flag(exporter, "web.listen-address").rsplit(":", 1)[1]
    assert f"statsd-exporter:{port}" in targets.get("statsd-exporter", []), targets
    assert "localhost:9090" in targets.get("prometheus", []), targets
    assert all(job.get("scrape_interval", "15s") == "15s" for job in config["scrape_configs"])


@cache
def datasource() -> dict[str, Any]:
    config = load_yaml(GRAFANA_DATASOURCE)
    (source,) = [ds for ds in config["datasources"] if ds["type"] == "prometheus"]
    return source


def test_grafana_datasource_points_at_the_prometheus_service() -> None:
    source = datasource()
    assert source.get("uid"), "the dashboards need a fixed datasource uid"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose_services()


def test_grafana_dashboard_provider_reads_the_mounted_dashboards() -> None:
    (provider,) = load_yaml(GRAFANA_PROVIDER)["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    grafana = compose_services()["grafana"]
    assert bind_mounts(grafana).get(path) == "./deploy/grafana/dashboards", bind_mounts(grafana)
    assert bind_mounts(grafana).get("/etc/grafana/provisioning") == "./deploy/grafana/provisioning"
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        mounted_file(grafana, home)


def test_the_five_dashboards_exist() -> None:
    uids = [board.get("uid") for board in dashboards().values()]
    assert len(uids) == len(set(uids)), f"duplicate dashboard uids: {uids}"
    assert set(uids) == EXPECTED_DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board.get("title"), "needs a title"
    assert board.get("uid"), "needs a uid"
    assert board.get("schemaVersion", 0) >= 36, "Grafana 10/11 dashboard schema expected"
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    assert "dag_id" in variables, "every dashboard has the dag_id variable"
    uid = datasource()["uid"]
    problems, ids = [], []
    for panel in obs.iter_panels(board.get("panels") or []):
        ids.append(panel.get("id"))
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        if (panel.get("datasource") or {}).get("uid") != uid:
            problems.append(f"{title}: panel datasource is not uid {uid!r}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{title}: no queries")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            problems.append(f"{title}: duplicate refIds {refs}")
        for target in targets:
            if (target.get("datasource") or {}).get("uid") != uid:
                problems.append(f"{title}: query {target.get('refId')} datasource is not uid {uid!r}")
            for name in re.findall(r"\$\{?(\w+)", target.get("expr", "")):
                if name not in variables and name not in GRAFANA_BUILTIN_VARIABLES:
                    problems.append(f"{title}: ${name} is not a variable of the dashboard")
    for variable in variables.values():
        if variable.get("type") == "query" and (variable.get("datasource") or {}).get("uid") != uid:
            problems.append(f"variable {variable['name']}: datasource is not uid {uid!r}")
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate panel ids: {ids}")
    assert not problems, "\n".join(problems)


# --- the PromQL reader --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "metrics", "matcher_labels", "grouping"),
    [
        (
            'sum by (dag_id) (increase(airflow_ti_successes_total{dag_id=~"$dag_id"}[1h]))',
            {"airflow_ti_successes_total"},
            {"dag_id"},
            {"dag_id"},
        ),
        (
            "histogram_quantile(0.95, sum by (table, le) "
            '(increase(acme_pipeline_load_seconds_bucket{dag_id=~"$dag_id",table=~"$table"}[$window])))',
            {"acme_pipeline_load_seconds_bucket"},
            {"dag_id", "table"},
            {"table", "le"},
        ),
        (
            "time() - max by (dag_id) (max_over_time((timestamp(increase("
            'runs_count{state="success"}[3m]) > 0))[7d:1m]))',
            {"runs_count"},
            {"state"},
            {"dag_id"},
        ),
        ("a / on(pool_name) group_left(team) b offset 1h30m", {"a", "b"}, set(), {"pool_name", "team"}),
        (
            'sum without (instance) (rate(m{job="x", le!="+Inf"}[5m])) and bool on() vector(1)',
            {"m"},
            {"job", "le"},
            {"instance"},
        ),
        ('{__name__="up", job="prometheus"}', {"up"}, {"job"}, set()),
        (
            'count_values("version", build_info) or label_replace(up, "dst", "$1", "src", "(.*)")',
            {"build_info", "up"},
            set(),
            set(),
        ),
        ("topk(5, sum by(task_id)(rate(job:requests:rate5m[5m]))) * 60", {"job:requests:rate5m"}, set(), {"task_id"}),
        ("sum(rate(x_total[$__rate_interval])) * 60 or vector(0)", {"x_total"}, set(), set()),
        ("max(SUM by (a) (y))", {"y"}, set(), {"a"}),
    ],
)
def test_promql_reader(expr: str, metrics: set[str], matcher_labels: set[str], grouping: set[str]) -> None:
    refs = obs.promql_refs(expr)
    assert refs.metrics == metrics
    assert set().union(*(labels for _, labels in refs.selectors)) == matcher_labels
    assert refs.grouping == grouping


@pytest.mark.parametrize("expr", ["rat(x[5m])", 'sum(x{a="b")', "x{a=}", "sum(x) ? 2"])
def test_promql_reader_rejects_what_it_cannot_read(expr: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- the message varies with the mistake
        obs.promql_refs(expr)


def test_variable_queries_are_read() -> None:
    board = {
        "uid": "x",
        "panels": [{"type": "row", "panels": [{"title": "nested", "targets": [{"expr": "sum(a_total)"}]}]}],
        "templating": {
            "list": [
                {"name": "dag_id", "type": "query", "query": {"query": "label_values(b_total, dag_id)"}},
                {"name": "t", "type": "query", "query": 'label_values(c_total{dag_id=~"$dag_id"}, table)'},
                {"name": "w", "type": "interval", "query": "1h,1d"},
            ]
        },
    }
    found = {(q.title, q.expr, q.label) for q in obs.dashboard_queries({"x.json": board})}
    assert found == {
        ("nested", "sum(a_total)", None),
        ("$dag_id", "b_total", "dag_id"),
        ("$t", 'c_total{dag_id=~"$dag_id"}', "table"),
    }


# --- (b) dashboards query only what the mapping produces ----------------------------------------


def test_every_dashboard_metric_is_produced_by_the_mapping() -> None:
    produced = obs.series_index(rules())
    unknown = [
        f"{q.dashboard} / {q.title}: {name}"
        for q in queries()
        for name in sorted(obs.promql_metric_names(q.expr))
        if name not in produced
    ]
    assert queries(), "no dashboard queries found"
    assert not unknown, "metrics no mapping rule produces:\n" + "\n".join(unknown)


# --- (c) each rule maps a CATALOG metric or an Airflow registry metric --------------------------


def test_every_rule_maps_a_catalog_or_airflow_metric_of_its_type() -> None:
    problems = []
    for rule in rules():
        sources = obs.rule_sources(rule)
        origins = set(sources.values())
        if not sources:
            problems.append(
                f"{rule.match} ({rule.metric_type}): neither airflow.acme.pipeline.<CATALOG name> nor a "
                "metric of Airflow's metrics_template.yaml of that type"
            )
        elif rule.match.startswith(obs.ACME_PREFIX) != (origins == {"catalog"}):
            problems.append(f"{rule.match}: mixes acme and Airflow names: {sources}")
    assert not problems, "\n".join(problems)


def test_airflow_tags_table_matches_the_registry() -> None:
    registry = obs.airflow_registry()
    mapped = {source for rule in rules() for source, origin in obs.rule_sources(rule).items() if origin == "airflow"}
    problems = [f"{name}: mapped but not in AIRFLOW_TAGS" for name in sorted(mapped - set(obs.AIRFLOW_TAGS))]
    for name, tags in obs.AIRFLOW_TAGS.items():
        if name not in registry:
            problems.append(f"AIRFLOW_TAGS[{name!r}] is not a metric of Airflow's registry")
        elif missing := set(registry[name].get("name_variables") or []) - set(tags):
            problems.append(f"AIRFLOW_TAGS[{name!r}] lacks the registry's variables {sorted(missing)}")
    assert not problems, "\n".join(problems)


# --- (d) every CATALOG metric is mapped and on a dashboard --------------------------------------


def test_every_catalog_metric_is_mapped_and_on_a_dashboard() -> None:
    used = obs.dashboard_metrics(dashboards(), rules())
    problems = []
    for measure, metric in obs.catalog().items():
        kind = "observer" if metric.kind == "timer" else metric.kind
        mapped = obs.map_statsd_name(obs.ACME_PREFIX + measure, kind, rules())
        if mapped is None:
            problems.append(f"{measure}: no rule maps {obs.ACME_PREFIX}{measure} ({kind})")
        elif mapped.name not in used:
            problems.append(f"{measure}: {mapped.name} is on no dashboard")
        elif any(set(metric.tags) - labels_by_series()[series] for series in mapped.rule.series()):
            problems.append(f"{measure}: {mapped.name} lacks some of the tags {metric.tags}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("line", "name", "labels"),
    [
        (
            "airflow.acme.pipeline.rows_in,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:5|c",
            "acme_pipeline_rows_in_total",
            {"dag_id": "daily_etl", "task_id": "load_payments", "table": "core.fact_payments"},
        ),
        (
            "airflow.acme.pipeline.seconds,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:1234.5|ms",
            "acme_pipeline_load_seconds",
            {"dag_id": "daily_etl", "task_id": "load_payments", "table": "core.fact_payments"},
        ),
        (
            "airflow.ti.finish,dag_id=D,task_id=T,state=success:1|c",
            "airflow_ti_finish_total",
            {"dag_id": "D", "task_id": "T", "state": "success"},
        ),
        (
            "airflow.dagrun.duration.failed,dag_id=D,run_type=scheduled:8554.9|ms",
            "airflow_dagrun_duration_seconds",
            {"dag_id": "D", "run_type": "scheduled", "state": "failed"},
        ),
        ("airflow.pool.open_slots,pool_name=warehouse:4|g", "airflow_pool_open_slots", {"pool_name": "warehouse"}),
        ("airflow.scheduler_heartbeat:1|c", "airflow_scheduler_heartbeat_total", {}),
    ],
)
def test_wire_examples_map_as_documented(line: str, name: str, labels: dict[str, str]) -> None:
    sample = obs.parse_statsd_line(line)
    mapped = obs.map_statsd_name(sample.name, sample.type, rules())
    assert mapped is not None
    assert (mapped.name, {**sample.tags, **mapped.labels}) == (name, labels)


def test_a_type_mismatch_is_not_mapped() -> None:
    """statsd-exporter applies match_metric_type: a gauge named like a counter falls through."""
    assert obs.map_statsd_name("airflow.ti.finish", "g", rules()) is None
    assert obs.map_statsd_name("airflow.acme.pipeline.unknown", "c", rules()) is None


# --- (e) pools ----------------------------------------------------------------------------------


def test_pool_dashboard_shows_slots_per_pool() -> None:
    (board,) = [b for b in dashboards().values() if b["uid"] == "acme-pools"]
    per_pool = {
        name
        for q in obs.dashboard_queries({"pools": board})
        if "pool_name" in obs.promql_refs(q.expr).grouping
        for name in obs.promql_metric_names(q.expr)
    }
    wanted = {"airflow_pool_open_slots", "airflow_pool_running_slots", "airflow_pool_queued_slots"}
    assert wanted | {"airflow_pool_starving_tasks"} <= per_pool, per_pool
    executor = {name for q in obs.dashboard_queries({"pools": board}) for name in obs.promql_metric_names(q.expr)}
    assert {
        "airflow_executor_open_slots",
        "airflow_executor_running_tasks",
        "airflow_executor_queued_tasks",
    } <= executor
    # The panels group by the pool_name label: the pools of airflow_settings.yaml must reach
    # StatsD under their own names (Airflow normalises names outside [A-Za-z0-9_.-]).
    pools = [p["pool_name"] for p in load_yaml(SETTINGS)["airflow"]["pools"]]
    assert pools
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", pool) for pool in pools), pools


# --- (f) labels the queries use exist -----------------------------------------------------------


def test_dashboard_labels_are_carried_by_their_metrics() -> None:
    known = labels_by_series()
    problems = []
    for q in queries():
        refs = obs.promql_refs(q.expr)
        where = f"{q.dashboard} / {q.title}"
        for metric, labels in refs.selectors:
            if missing := labels - known.get(metric, set()):
                problems.append(f"{where}: {metric} has no label(s) {sorted(missing)}")
        for label in sorted(refs.grouping):
            if lacking := sorted(m for m in refs.metrics if label not in known.get(m, set())):
                problems.append(f"{where}: groups by {label!r}, which {lacking} lack")
        if q.label and any(q.label not in known.get(m, set()) for m in refs.metrics):
            problems.append(f"{where}: lists label {q.label!r}, which {sorted(refs.metrics)} lack")
    assert not problems, "\n".join(problems)


# --- (g) docs/metrics.md ------------------------------------------------------------------------


def test_docs_name_every_catalog_metric() -> None:
    text = obs.METRICS_DOC.read_text()
    missing = []
    for measure, metric in obs.catalog().items():
        kind = "observer" if metric.kind == "timer" else metric.kind
        mapped = obs.map_statsd_name(obs.ACME_PREFIX + measure, kind, rules())
        if mapped is None or f"`{mapped.name}`" not in text:
            missing.append(measure)
    assert not missing, f"docs/metrics.md does not name the Prometheus metric of {missing}"


def test_docs_table_is_up_to_date() -> None:
    block = obs.docs_table_block(obs.METRICS_DOC.read_text())
    assert block is not None, f"docs/metrics.md lacks the markers {obs.DOC_BEGIN!r} ... {obs.DOC_END!r}"
    assert block == obs.render_metrics_table(rules()), (
        "docs/metrics.md's metric table is stale: "
        "PYTHONPATH=plugins:tools .venv/bin/python -m acme_localdev.observability --write-docs"
    )


# --- (h) docker-compose.yaml --------------------------------------------------------------------


@pytest.mark.parametrize(("service", "repository"), sorted(OBSERVABILITY_SERVICES.items()))
def test_observability_service_is_pinned_and_health_checked(service: str, repository: str) -> None:
    definition = compose_services().get(service)
    assert definition, f"docker-compose.yaml has no {service} service"
    image = definition.get("image", "")
    name, _, tag = image.partition(":")
    assert name == repository, f"{service}: image {image!r} is not {repository}"
    assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{service}: image {image!r} needs an exact version tag"
    assert (definition.get("healthcheck") or {}).get("test"), f"{service}: no healthcheck"
    for target, source in bind_mounts(definition).items():
        assert (ROOT / source).exists(), f"{service}: {source} mounted at {target} does not exist"


def test_statsd_exporter_loads_the_mapping() -> None:
    exporter = compose_services()["statsd-exporter"]
    assert mounted_file(exporter, flag(exporter, "statsd.mapping-config")) == obs.MAPPING_FILE
    udp_port = flag(exporter, "statsd.listen-udp").rsplit(":", 1)[1]
    assert udp_port == AIRFLOW_METRICS_ENV["AIRFLOW__METRICS__STATSD_PORT"]


def test_prometheus_loads_its_config() -> None:
    prometheus = compose_services()["prometheus"]
    assert mounted_file(prometheus, flag(prometheus, "config.file")) == PROMETHEUS_CONFIG


def test_airflow_services_send_metrics_and_lineage() -> None:
    # the services running Airflow; the `local` profile's stand-ins use the image but run no Airflow
    airflow = {
        name: s
        for name, s in compose_services().items()
        if str(s.get("image", "")).startswith("acme-airflow") and "local" not in s.get("profiles", [])
    }
    assert airflow, "no Airflow services found"
    problems = []
    for name, service in airflow.items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        problems += [
            f"{name}: {k}={env.get(k)!r}, want {v!r}" for k, v in AIRFLOW_METRICS_ENV.items() if env.get(k) != v
        ]
        transport = json.loads(env.get("AIRFLOW__OPENLINEAGE__TRANSPORT", "{}"))
        if transport != {"type": "http", "url": "http://marquez:5000", "endpoint": "api/v1/lineage"}:
            problems.append(f"{name}: OpenLineage transport {transport}")
    assert not problems, "\n".join(problems)
    assert AIRFLOW_METRICS_ENV["AIRFLOW__METRICS__STATSD_HOST"] in compose_services()


def test_marquez_serves_the_api_on_5000_from_its_own_database() -> None:
    data = load_yaml(COMPOSE)
    marquez = data["services"]["marquez"]
    assert "marquez-db" in (marquez.get("depends_on") or {})
    (config,) = [c for c in marquez.get("configs") or [] if c.get("target") == marquez["environment"]["MARQUEZ_CONFIG"]]
    content = yaml.safe_load(data["configs"][config["source"]]["content"])
    ports = [c["port"] for c in content["server"]["applicationConnectors"]]
    assert ports == [5000], ports
    assert marquez["environment"]["POSTGRES_HOST"] == "marquez-db"
    healthcheck = " ".join(marquez["healthcheck"]["test"])
    assert str(content["server"]["adminConnectors"][0]["port"]) in healthcheck
    text = COMPOSE.read_text()
    assert text.count("${MARQUEZ_DB_PASSWORD:?") >= 2, "marquez and marquez-db share MARQUEZ_DB_PASSWORD"
    assert "${GRAFANA_ADMIN_PASSWORD:?" in text


# --- dashboard_coverage (for tests that capture real datagrams) ---------------------------------


def wire_lines() -> list[str]:
    """One datagram for every StatsD name a dashboard needs, as Airflow would send it."""
    used = obs.dashboard_metrics(dashboards(), rules())
    lines = []
    for rule in rules():
        if rule.name in used:
            for source in obs.rule_sources(rule):
                lines.append(f"{obs.STATSD_PREFIX}.{source}:1|{STATSD_TYPE_CHAR[rule.metric_type or 'counter']}")
    return lines


def test_coverage_of_a_complete_capture() -> None:
    coverage = obs.dashboard_coverage(wire_lines(), rules=rules(), dashboards=dashboards())
    assert coverage.complete, coverage.missing
    assert not coverage.unmapped
    assert coverage.covered["airflow_dagrun_duration_seconds"] == {
        "airflow.dagrun.duration.success",
        "airflow.dagrun.duration.failed",
    }


def test_coverage_reports_what_is_missing_and_unmapped() -> None:
    lines = [line for line in wire_lines() if not line.startswith("airflow.acme.pipeline.rows_in:")]
    datagram = "\n".join(["airflow.ti.finish,dag_id=d,task_id=t,state=failed:1|c", "airflow.no.such.metric:1|c"])
    coverage = obs.dashboard_coverage(
        [*lines, datagram.encode(), "airflow.pool.open_slots,pool_name=cache:2|c"],
        rules=rules(),
        dashboards=dashboards(),
    )
    assert coverage.missing == {"acme_pipeline_rows_in_total"}
    # Unknown, and a gauge sent as a counter: statsd-exporter's match_metric_type lets both through unmapped.
    assert coverage.unmapped == {"airflow.no.such.metric", "airflow.pool.open_slots"}
    assert "airflow.ti.finish" in coverage.covered["airflow_ti_finish_total"]


def test_parse_statsd_lines() -> None:
    assert obs.parse_statsd_line("a.b,x=1,y=2:3|ms|@0.5") == obs.StatsdSample("a.b", {"x": "1", "y": "2"}, "3", "ms")
    assert obs.parse_statsd_line("a.b:1|c|#x:1,y:2") == obs.StatsdSample("a.b", {"x": "1", "y": "2"}, "1", "c")
    assert obs.parse_statsd_line("a.b") == obs.StatsdSample("a.b", {}, None, None)
    assert [s.name for s in obs.parse_datagram(b"a:1|c\nb:2|g\n")] == ["a", "b"]

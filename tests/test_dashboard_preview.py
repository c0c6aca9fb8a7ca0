"""The dashboards' previews: their PromQL answered by a real Prometheus over a capture of a real run.

The capture is ``tests/fixtures/statsd_make_demo.log``, recorded by ``make demo``'s StatsD
listener (``recorder.StatsdCapture``; its header says what was kept). The integration tests
backfill it once per module with ``promtool`` into a TSDB, start ``prometheus`` on it (about a
second) and send every panel's queries as Grafana would; the unit tests check the replay into
statsd_exporter's metrics and the variable substitution without any binary.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from acme_localdev import dashboard_preview as dp
from acme_localdev import observability as obs
from acme_localdev import prometheus as prom

FIXTURE = Path(__file__).parent / "fixtures" / "statsd_make_demo.log"
DASHBOARDS = sorted(obs.DASHBOARDS_DIR.glob("*.json"))

# Panels a capture of `make demo` cannot feed: its runs are dag.test() runs, in one process per
# DAG, without a scheduler, triggerer, DAG processor or executor. Each is listed with the reason;
# the test below fails if one of them gets data (then it belongs in the checked panels).
NEEDS_A_SCHEDULER = {
    "Missed deadlines per DAG, Airflow (per hour)": "deadline_alerts.deadline_missed: the scheduler checks deadlines",
    "Missed deadlines by deadline, acme (7d)": "acme deadline_missed: sent by the deadline callback the scheduler runs",
    "Scheduler heartbeats / min": "scheduler_heartbeat: no scheduler",
    "Triggerer heartbeats / min": "triggerer_heartbeat: no triggerer",
    "DAG processor heartbeats / min": "dag_processor_heartbeat: no DAG processor",
    "Heartbeats per minute": "the three heartbeats: no scheduler, triggerer or DAG processor",
    "Open slots per pool": "pool.open_slots: the scheduler emits the pool gauges",
    "Running slots per pool": "pool.running_slots: the scheduler emits the pool gauges",
    "Queued slots per pool": "pool.queued_slots: the scheduler emits the pool gauges",
    "Pool occupancy": "pool gauges: the scheduler emits them",
    "Starving tasks per pool": "pool.starving_tasks, scheduler.tasks.starving: the scheduler emits them",
    "Deferred and scheduled slots per pool": "pool.deferred_slots, pool.scheduled_slots: the scheduler emits them",
    "Executor slots": "executor.*: an executor's gauges, and dag.test() runs tasks without one",
    "Task instances running and queued per DAG": "ti.running, ti.queued: the scheduler emits them",
    "Schedule delay p95 (1d)": "dagrun.schedule_delay: the scheduler emits it for scheduled runs",
}
# Panels the recorded run did not feed for another reason.
NOT_IN_THIS_RUN = {
    "Task failures per DAG (per hour)": "no task failed in the recorded run (ti_failures)",
    "Task failure ratio per DAG (1d)": 'no task failed in the recorded run (no ti.finish with state="failed")',
    "Failed tasks (1d)": 'no task failed in the recorded run (no ti.finish with state="failed")',
    "Time since last successful run": "dagrun.duration.*: dag.test() sends none (none in the capture)",
    "DAG runs finished by state (per hour)": "dagrun.duration.*: dag.test() sends none (none in the capture)",
    "DAG run duration p50 (successful runs, 1d)": "dagrun.duration.*: dag.test() sends none",
    "DAG run duration p95 (successful runs, 1d)": "dagrun.duration.*: dag.test() sends none",
    "Mean DAG run duration by state (1d)": "dagrun.duration.*: dag.test() sends none",
}
NO_DATA_EXPECTED = NEEDS_A_SCHEDULER | NOT_IN_THIS_RUN


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


# --- unit: the replay into statsd_exporter's metrics, and Grafana's variables ---------------------

T0 = 1_764_241_200.0  # a multiple of 15 s: the scrape grid starts there
LINES = [
    f"{T0 + 1} airflow.acme.pipeline.rows_in,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:5123|c",
    f"{T0 + 2} airflow.acme.pipeline.seconds,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:1234.5|ms",
    f"{T0 + 20} airflow.acme.pipeline.rows_in,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:877|c",
    f"{T0 + 21} airflow.acme.pipeline.rows_in,dag_id=d,task_id=t,table=x:10|c|@0.5",
    f"{T0 + 22} airflow.pool.open_slots,pool_name=warehouse:4|g",
    f"{T0 + 23} airflow.pool.open_slots,pool_name=warehouse:-1|g",
    f"{T0 + 31} airflow.acme.pipeline.seconds,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:700|ms",
    f"{T0 + 32} airflow.ol.emit.attempts:1|c",
    f"{T0 + 33} airflow.acme.pipeline.rows_in,table=x:-5|c",
    "not a line",
]
PAYMENTS = (("dag_id", "daily_etl"), ("table", "core.fact_payments"), ("task_id", "load_payments"))


@pytest.mark.unit
def test_the_replay_is_what_statsd_exporter_exposes_at_each_scrape() -> None:
    capture = prom.read_capture(LINES)
    assert (len(capture.datagrams), capture.malformed) == (8, 2)  # a negative counter, a line without a timestamp
    exposition = prom.exporter_scrapes(capture, interval=15)
    assert exposition.scrapes == [T0, T0 + 15, T0 + 30, T0 + 45]
    assert exposition.unmapped == Counter({"airflow.ol.emit.attempts": 1})
    rows = exposition.samples[("acme_pipeline_rows_in_total", PAYMENTS)]
    # at 0 on the scrape before the first increment (zero_start), then cumulative at every scrape
    assert rows == [(T0, 0.0), (T0 + 15, 5123.0), (T0 + 30, 6000.0), (T0 + 45, 6000.0)]
    sampled = exposition.samples[("acme_pipeline_rows_in_total", (("dag_id", "d"), ("table", "x"), ("task_id", "t")))]
    assert sampled[-1] == (T0 + 45, 20.0)  # 10 at a sample rate of 0.5
    # a gauge is set, then moved by a signed value; it has no zero before it
    assert exposition.samples[("airflow_pool_open_slots", (("pool_name", "warehouse"),))] == [
        (T0 + 30, 3.0),
        (T0 + 45, 3.0),
    ]
    # ms timers observed in seconds into the rule's buckets (mapping.yml: 0.05 ... 600)
    bucket = dict(exposition.samples)
    le = {
        labels[1][1]: points[-1][1]
        for (name, labels), points in bucket.items()
        if name == "acme_pipeline_load_seconds_bucket" and labels[0] == ("dag_id", "daily_etl")
    }
    assert (le["0.5"], le["1"], le["2.5"], le["+Inf"]) == (0.0, 1.0, 2.0, 2.0)
    assert bucket[("acme_pipeline_load_seconds_sum", PAYMENTS)][-1] == (T0 + 45, pytest.approx(1.9345))
    assert bucket[("acme_pipeline_load_seconds_count", PAYMENTS)][0] == (T0, 0.0)

    exact = prom.exporter_scrapes(capture, interval=15, zero_start=False)  # statsd_exporter as it is
    assert exact.samples[("acme_pipeline_rows_in_total", PAYMENTS)][0] == (T0 + 15, 5123.0)
    # a first datagram on the grid itself still gets its zero on the scrape before
    on_grid = prom.exporter_scrapes(prom.read_capture([f"{T0} airflow.ti.finish,dag_id=d:1|c"]), interval=15)
    assert on_grid.samples[("airflow_ti_finish_total", (("dag_id", "d"),))] == [(T0 - 15, 0.0), (T0, 1.0)]


@pytest.mark.unit
def test_openmetrics_text(tmp_path: Path) -> None:
    exposition = prom.exporter_scrapes(prom.read_capture(LINES), interval=15)
    path = tmp_path / "capture.om.txt"
    written = prom.write_openmetrics(exposition, path)
    text = path.read_text()
    assert written == sum(len(points) for points in exposition.samples.values())
    assert text.endswith("# EOF\n")
    assert "# TYPE acme_pipeline_rows_in counter\n" in text  # the family of acme_pipeline_rows_in_total
    assert "# TYPE acme_pipeline_load_seconds histogram\n" in text
    assert "# TYPE airflow_pool_open_slots gauge\n" in text
    assert (
        'acme_pipeline_rows_in_total{dag_id="daily_etl",table="core.fact_payments",task_id="load_payments"} '
        f"5123.0 {T0 + 15:.3f}\n"
    ) in text


@pytest.mark.unit
def test_variables_are_filled_as_grafana_does() -> None:
    board = {
        "templating": {
            "list": [
                {"name": "dag_id", "type": "query", "allValue": ".*", "current": {"value": ["$__all"]}},
                {"name": "table", "type": "query", "current": {"value": ["core.fact_payments", "core.dim_customer"]}},
                {"name": "task", "type": "custom", "current": {"value": "load_payments"}},
                {"name": "window", "type": "interval", "current": {"value": "7d"}},
            ]
        }
    }
    values = dp.variable_values(board, dp.TimeRange(T0, T0 + 600, 15, 15))
    assert values["dag_id"] == ".*"
    assert values["table"] == r"(core\\.fact_payments|core\\.dim_customer)"
    assert values["task"] == "load_payments"
    assert (values["window"], values["__interval"], values["__rate_interval"], values["__range"]) == (
        "7d",
        "15s",
        "1m",
        "600s",
    )
    expr = 'sum(increase(m{dag_id=~"$dag_id",task_id="${task}"}[$window])) / [[window]] $__rate_interval $unknown'
    assert dp.substitute(expr, values) == (
        'sum(increase(m{dag_id=~".*",task_id="load_payments"}[7d])) / 7d 1m $unknown'
    )
    assert prom.parse_duration("1h30m") == 5400
    assert prom.format_duration(90) == "1m30s"


@pytest.mark.unit
def test_format_value() -> None:
    assert dp.format_value(6000, "short") == "6 K"
    assert dp.format_value(0.005, "percentunit") == "0.5%"
    assert dp.format_value(8.5549, "s") == "8.55 s"
    assert dp.format_value(125, "s") == "2.08 min"
    assert dp.format_value(3 * 1024 * 1024, "bytes") == "3 MiB"
    assert dp.format_value(math.nan, "short") == "NaN"


# --- integration: a real Prometheus -----------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded() -> Iterator[prom.Loaded]:
    try:
        prom.binaries()
    except prom.PrometheusMissingError as exc:
        pytest.skip(str(exc))
    with prom.CaptureServer(FIXTURE) as served:
        yield served


@pytest.fixture(scope="module")
def answers(loaded: prom.Loaded) -> dict[str, list[dp.PanelPreview]]:
    """Every panel's answers, by dashboard file name."""
    import json

    return {path.name: dp.query_dashboard(json.loads(path.read_text()), loaded, path.name)[1] for path in DASHBOARDS}


@pytest.mark.integration
def test_every_panel_returns_data(loaded: prom.Loaded, answers: dict[str, list[dp.PanelPreview]]) -> None:
    panels = [(name, panel) for name, listed in answers.items() for panel in listed]
    checked = [(name, p) for name, p in panels if p.title not in NO_DATA_EXPECTED]
    empty = [f"{name}: {p.title}: {[t.query for t in p.targets]}" for name, p in checked if not p.has_data]
    print(f"\n{len(checked) - len(empty)}/{len(checked)} panels with data ({len(panels)} panels in all)")
    assert not empty, "panels Prometheus answered nothing for:\n" + "\n".join(empty)
    assert len(checked) >= 20
    titles = {p.title for _, p in panels}
    assert set(NO_DATA_EXPECTED) <= titles, set(NO_DATA_EXPECTED) - titles
    fed = [p.title for _, p in panels if p.title in NO_DATA_EXPECTED and p.has_data]
    assert not fed, f"these panels now get data: drop them from the no-data lists: {fed}"
    # the variables' own queries (label_values) list values too; $pool needs the scheduler's pool gauges
    values = {
        q.title: loaded.server.label_values(q.label or "", dp.substitute(q.expr, {"dag_id": ".*"}))
        for q in obs.dashboard_queries()
        if q.label
    }
    assert {title for title, found in values.items() if not found} == {"$pool"}, values


def captured_total(name: str, label: str) -> dict[str, float]:
    """The capture's own sum of a counter's increments by one tag: what Prometheus must answer."""
    totals: Counter[str] = Counter()
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("#"):
            continue
        sample = obs.parse_statsd_line(line.partition(" ")[2])
        if sample.name == name and sample.type == "c":
            totals[sample.tags.get(label, "")] += float(sample.value or 0)
    return dict(totals)


@pytest.mark.integration
def test_prometheus_answers_the_captured_totals(answers: dict[str, list[dp.PanelPreview]]) -> None:
    """Every increment the run sent is counted: the last point of a $window increase is the capture's sum."""
    rows = next(p for p in answers["rows_and_rejects.json"] if p.title == "Reject ratio per table (1d)")
    (target,) = rows.targets
    assert target.instant
    assert 'dag_id=~".*"' in target.query
    assert "[1d]" in target.query
    table = next(p for p in answers["rows_and_rejects.json"] if p.title == "Rows per table (1d)")
    rows_in = Counter[str]()
    for labels, value in table.targets[0].values.items():
        rows_in[dict(labels)["table"]] += value
    assert rows_in == pytest.approx(captured_total("airflow.acme.pipeline.rows_in", "table"))
    rejected = captured_total("airflow.acme.pipeline.rows_rejected", "table")
    for labels, ratio in target.values.items():
        name = dict(labels)["table"]
        assert ratio == pytest.approx(rejected.get(name, 0) / rows_in[name]), name

    # a range query: its last point, an increase over the last hour, holds the whole run (minutes long)
    health = {p.title: p for p in answers["pipeline_health.json"]}
    (successes,) = health["Task successes per DAG (per hour)"].targets
    assert not successes.instant
    assert max(len(points) for points in successes.series.values()) > 10  # one point per 15 s step
    per_dag = {dict(labels)["dag_id"]: value for labels, value in successes.values.items()}
    assert per_dag == pytest.approx(captured_total("airflow.ti_successes", "dag_id"))


@pytest.mark.integration
def test_a_png_per_dashboard(loaded: prom.Loaded, tmp_path: Path) -> None:
    for path in DASHBOARDS:
        png = tmp_path / f"{path.stem}.png"
        result = dp.render_loaded(
            path, loaded, png, out_html=tmp_path / f"{path.stem}.html" if path == DASHBOARDS[0] else None
        )
        assert png_size(png) == result.size
        assert result.size[0] == dp.FIG_WIDTH
        assert png.stat().st_size > 20_000, f"{png.name}: an empty canvas?"
    page = (tmp_path / f"{DASHBOARDS[0].stem}.html").read_text()
    assert "data:image/png;base64," in page
    assert f"Prometheus {loaded.server.version}" in page


@pytest.mark.integration
def test_a_query_prometheus_rejects_fails_naming_the_panel(loaded: prom.Loaded) -> None:
    board = {
        "panels": [
            {"type": "stat", "title": "Fine", "targets": [{"refId": "A", "expr": "sum(airflow_ti_finish_total)"}]},
            {"type": "timeseries", "title": "Typo", "targets": [{"refId": "B", "expr": "sum(rat(x_total[5m]))"}]},
        ]
    }
    with pytest.raises(dp.PanelQueryError, match=re.escape("board.json: panel 'Typo', query B")) as error:
        dp.query_dashboard(board, loaded, "board.json")
    assert 'unknown function with name "rat"' in str(error.value)


@pytest.mark.integration
def test_promtool_checks_the_deployed_prometheus_config() -> None:
    try:
        _, promtool = prom.binaries()
    except prom.PrometheusMissingError as exc:
        pytest.skip(str(exc))
    done = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(prom.PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

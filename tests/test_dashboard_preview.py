"""acme_localdev.dashboard_preview: the PNG/HTML preview of the real Grafana dashboards for a StatsD capture.

A synthetic capture (what ``make demo`` sends: rows counters on two tables, load and task
timers, ti.finish with states) is written to a file and rendered against the dashboard JSON
files of deploy/grafana/dashboards; the checks are on the numbers the panels get, which
panels have data, the image's size and the counting of malformed lines.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from acme_localdev import dashboard_preview as dp
from acme_localdev import observability as obs

pytestmark = pytest.mark.unit

DASHBOARDS = obs.DASHBOARDS_DIR
ROWS = DASHBOARDS / "rows_and_rejects.json"
HEALTH = DASHBOARDS / "pipeline_health.json"
POOLS = DASHBOARDS / "pools.json"
DURATIONS = DASHBOARDS / "run_durations.json"

PAYMENTS = "dag_id=daily_etl,task_id=load_payments,table=core.fact_payments"
CUSTOMERS = "dag_id=daily_etl,task_id=load_customers,table=core.dim_customers"
GOOD_LINES = [
    f"airflow.acme.pipeline.rows_in,{PAYMENTS}:5123|c",
    f"airflow.acme.pipeline.rows_in,{PAYMENTS}:877|c",
    f"airflow.acme.pipeline.rows_in,{CUSTOMERS}:2500|c",
    f"airflow.acme.pipeline.rows_loaded,{PAYMENTS}:5970|c",
    f"airflow.acme.pipeline.rows_loaded,{CUSTOMERS}:2450|c",
    f"airflow.acme.pipeline.rows_rejected,{PAYMENTS}:30|c",
    f"airflow.acme.pipeline.rows_rejected,{CUSTOMERS}:50|c",
    f"airflow.acme.pipeline.seconds,{PAYMENTS}:1234.5|ms",
    f"airflow.acme.pipeline.seconds,{PAYMENTS}:2000|ms",
    f"airflow.acme.pipeline.seconds,{CUSTOMERS}:500|ms",
    "airflow.ti.finish,dag_id=daily_etl,task_id=load_payments,state=success:1|c",
    "airflow.ti.finish,dag_id=daily_etl,task_id=load_customers,state=success:1|c",
    "airflow.ti.finish,dag_id=daily_etl,task_id=check_totals,state=failed:1|c",
    "airflow.ti.finish,dag_id=hourly_sync,task_id=sync,state=success:1|c",
    "airflow.task.duration,dag_id=daily_etl,task_id=load_payments:8554.9|ms",
    "airflow.dagrun.duration.success,dag_id=hourly_sync,run_type=manual:65000|ms",
    "airflow.some.unmapped_name:1|c",
]
BAD_LINES = [
    "this is not statsd",
    "airflow.acme.pipeline.rows_in,table=x",  # no value
    "airflow.acme.pipeline.rows_in,table=x:12abc|c",  # not a number
    "airflow.acme.pipeline.rows_in,table=x:12|zz",  # unknown type
    "airflow.acme.pipeline.rows_in,table=x:-5|c",  # negative counter: statsd-exporter rejects it
]


def write_capture(path: Path, lines: list[str], *, timestamps: bool = False, start: float = 1764241234.0) -> Path:
    out = ["# captured by a UDP listener during make demo", ""]
    for index, line in enumerate(lines):
        out.append(f"{start + index * 1.5:.3f} {line}" if timestamps else line)
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture
def capture_file(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "statsd.log", GOOD_LINES[:9] + BAD_LINES + GOOD_LINES[9:])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def table(name: str) -> dp.Labels:
    return (("table", name),)


def test_rows_dashboard_png_and_panels(tmp_path: Path, capture_file: Path) -> None:
    result = dp.render_preview(ROWS, capture_file, tmp_path / "rows.png")

    width, height = png_size(tmp_path / "rows.png")
    assert (width, height) == result.size
    assert width == dp.FIG_WIDTH
    assert dp.MIN_HEIGHT <= height <= 2000
    assert (tmp_path / "rows.png").stat().st_size > 20_000  # drawn panels, not an empty canvas

    assert result.title == "Acme / Rows and rejects"
    assert result.datagrams == len(GOOD_LINES)
    assert result.malformed == len(BAD_LINES)
    assert result.unmapped == {"airflow.some.unmapped_name": 1}
    assert all(p.type != "row" for p in result.panels)
    for title in (
        "Rows in per table (per hour)",
        "Rows loaded per table (per hour)",
        "Rows rejected per table (per hour)",
        "Reject ratio per table ($window)",
        "Rows per table ($window)",
        "Load time p95 per table ($window)",
        "Load throughput per table ($window)",
    ):
        assert result.panel(title).has_data, title
    for title in (
        "Rows duplicate per table (per hour)",
        "Partitions archived ($window)",
        "Bytes read per table (per hour)",
    ):
        panel = result.panel(title)
        assert not panel.has_data, title
        assert panel.note.startswith("no data in this capture"), panel.note
    rows_in = result.panel("Rows in per table (per hour)")
    assert rows_in.metrics == ("acme_pipeline_rows_in_total",)
    assert rows_in.datagrams == {"acme_pipeline_rows_in_total": 3}
    assert rows_in.targets[0].values == {table("core.fact_payments"): 6000.0, table("core.dim_customers"): 2500.0}
    assert rows_in.shown_as == "total during the capture"
    ratio = result.panel("Reject ratio per table ($window)").targets[0].values
    assert ratio == pytest.approx({table("core.fact_payments"): 30 / 6000, table("core.dim_customers"): 50 / 2500})
    throughput = result.panel("Load throughput per table ($window)").targets[0].values
    assert throughput[table("core.fact_payments")] == pytest.approx(6000 / 3.2345)


def test_pool_and_heartbeat_panels_have_no_data(tmp_path: Path, capture_file: Path) -> None:
    pools = dp.render_preview(POOLS, capture_file, tmp_path / "pools.png")
    assert pools.panels
    assert not any(p.has_data for p in pools.panels)
    assert "airflow_pool_open_slots" in pools.panel("Open slots per pool").note

    health = dp.render_preview(HEALTH, capture_file, tmp_path / "health.png")
    for title in ("Scheduler heartbeats / min", "Heartbeats per minute", "DAG import errors"):
        assert not health.panel(title).has_data, title  # import errors: `or vector(0)` does not count as data
    assert health.panel("Task failure ratio per DAG ($window)").has_data
    failure_ratio = health.panel("Task failure ratio per DAG ($window)").targets[0].values
    assert failure_ratio == {(("dag_id", "daily_etl"),): pytest.approx(1 / 3)}  # hourly_sync: no failed series
    failed = health.panel("Failed tasks ($window)").targets[0].values
    assert failed == {(("dag_id", "daily_etl"), ("task_id", "check_totals")): 1.0}
    assert not health.panel("Task successes per DAG (per hour)").has_data  # ti_successes is not in this capture


def test_aggregation_equals_the_captured_values(capture_file: Path) -> None:
    capture = dp.load_capture(capture_file)
    rows_in = dp.aggregate(capture, "acme_pipeline_rows_in_total", by=["table"])
    assert rows_in == {table("core.fact_payments"): 5123 + 877, table("core.dim_customers"): 2500}
    assert dp.aggregate(capture, "acme_pipeline_rows_in_total") == {(): 5123 + 877 + 2500}
    # the panel's PromQL gives the same numbers as the aggregation
    expr = 'sum by (table) (increase(acme_pipeline_rows_in_total{dag_id=~"$dag_id",table=~"$table"}[1h]))'
    assert dp.evaluate(expr, capture) == rows_in

    # timers: ms -> seconds; mean by default, pNN on request; histogram_quantile over the observations
    load = dp.aggregate(capture, "acme_pipeline_load_seconds", by=["table"])
    assert load[table("core.fact_payments")] == pytest.approx((1.2345 + 2.0) / 2)
    p95 = dp.aggregate(capture, "acme_pipeline_load_seconds", by=["table"], how="p95")
    assert p95[table("core.fact_payments")] == pytest.approx(1.2345 + 0.95 * (2.0 - 1.2345))
    quantile = dp.evaluate(
        "histogram_quantile(0.95, sum by (table, le) (increase(acme_pipeline_load_seconds_bucket[$window])))", capture
    )
    assert quantile == pytest.approx(p95)
    mean = dp.evaluate(
        "sum by (table) (increase(acme_pipeline_load_seconds_sum[1d])) "
        "/ sum by (table) (increase(acme_pipeline_load_seconds_count[1d]))",
        capture,
    )
    assert mean == pytest.approx(load)

    # ti.finish by state; matchers with literal values filter, variables are "All"
    states = dp.aggregate(capture, "airflow_ti_finish_total", by=["state"])
    assert states == {(("state", "success"),): 3, (("state", "failed"),): 1}
    assert dp.evaluate('sum(airflow_ti_finish_total{state="failed", dag_id=~"$dag_id"})', capture) == {(): 1.0}
    assert dp.evaluate("sum(airflow_scheduler_heartbeat_total) or vector(0)", capture) == {(): 0.0}
    # the dagrun.duration.<state> rule's state label comes from the name
    runs = dp.aggregate(capture, "airflow_dagrun_duration_seconds", by=["dag_id", "state"])
    assert runs == {(("dag_id", "hourly_sync"), ("state", "success")): 65.0}


def test_timestamped_lines_parse_the_same(tmp_path: Path) -> None:
    plain = dp.load_capture(write_capture(tmp_path / "plain.log", GOOD_LINES + BAD_LINES))
    stamped = dp.load_capture(write_capture(tmp_path / "stamped.log", GOOD_LINES + BAD_LINES, timestamps=True))
    assert (stamped.datagrams, stamped.malformed) == (plain.datagrams, plain.malformed) == (17, 5)
    for metric in ("acme_pipeline_rows_in_total", "acme_pipeline_load_seconds", "airflow_ti_finish_total"):
        assert dp.aggregate(stamped, metric, by=["table", "state"]) == dp.aggregate(
            plain, metric, by=["table", "state"]
        )
    assert plain.start is None
    assert plain.span is None
    assert stamped.start == pytest.approx(1764241234.0)
    assert stamped.end == pytest.approx(1764241234.0 + 16 * 1.5)  # the last good line: bad lines do not count

    ts, sample, rate = dp.parse_capture_line(f"1764241234.123 airflow.ti.finish,{PAYMENTS},state=success:1|c")
    assert ts == pytest.approx(1764241234.123)
    assert rate == 1.0
    assert (sample.name, sample.value, sample.type, sample.tags["state"]) == ("airflow.ti.finish", "1", "c", "success")
    assert dp.parse_capture_line("airflow.acme.pipeline.rows_in,table=t:10|c|@0.5")[2] == 0.5
    assert dp.aggregate(
        dp.load_capture(["airflow.acme.pipeline.rows_in,table=t:10|c|@0.5"]), "acme_pipeline_rows_in_total"
    ) == {(): 20.0}


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    for line in BAD_LINES:
        with pytest.raises(dp.MalformedLineError):
            dp.parse_capture_line(line)
    capture = dp.load_capture(["", "# comment", *BAD_LINES, f"airflow.acme.pipeline.rows_in,{PAYMENTS}:5|c", "   "])
    assert (capture.datagrams, capture.malformed) == (1, len(BAD_LINES))
    assert capture.malformed_examples[0] == "this is not statsd"
    assert dp.aggregate(capture, "acme_pipeline_rows_in_total", by=["table"]) == {table("core.fact_payments"): 5}


def test_time_since_last_run_needs_timestamps(tmp_path: Path) -> None:
    title = "Time since last successful run"
    plain = dp.render_preview(HEALTH, write_capture(tmp_path / "a.log", GOOD_LINES), tmp_path / "a.png")
    assert not plain.panel(title).has_data
    assert "timestamps" in plain.panel(title).note
    stamped = dp.render_preview(
        HEALTH, write_capture(tmp_path / "b.log", GOOD_LINES, timestamps=True), tmp_path / "b.png"
    )
    # the dagrun line is the 16th of 17: 1.5 s before the end of the capture
    assert stamped.panel(title).targets[0].values == {(("dag_id", "hourly_sync"),): pytest.approx(1.5)}


def test_html_page_and_cli(tmp_path: Path, capture_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, page = tmp_path / "out" / "durations.png", tmp_path / "out" / "durations.html"
    assert (
        dp.main(["--dashboard", str(DURATIONS), "--capture", str(capture_file), "--png", str(png), "--html", str(page)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "Acme / Run durations" in printed
    assert f"{len(BAD_LINES)} malformed" in printed
    assert png_size(png)[0] == dp.FIG_WIDTH
    text = page.read_text()
    assert "data:image/png;base64," in text
    assert dp.footer_text("deploy/grafana/dashboards/run_durations.json", len(GOOD_LINES)) in text
    assert "Schedule delay p95 ($window)" in text
    assert "airflow_dagrun_schedule_delay_seconds_bucket" in text  # the PromQL is shown
    assert "airflow_task_duration_seconds</code> (1 datagrams)" in text


def test_format_value() -> None:
    assert dp.format_value(6000, "short") == "6 K"
    assert dp.format_value(0.005, "percentunit") == "0.5%"
    assert dp.format_value(8.5549, "s") == "8.55 s"
    assert dp.format_value(125, "s") == "2.08 min"
    assert dp.format_value(3 * 1024 * 1024, "bytes") == "3 MiB"
    assert dp.format_value(math.nan, "short") == "NaN"

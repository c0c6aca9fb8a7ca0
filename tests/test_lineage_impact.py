"""``python -m acme_lineage``: impact (downstream / upstream), partition collapse, HTML, PNG and SQL over events.

The events are synthetic but in the real format: one RunEvent per line as the
OpenLineage file transport appends them, for 29 days of the project's DAGs (task
START with no datasets, COMPLETE with inputs/outputs and schema facets, DAG-run
events, a quality check that only ever FAILs, and broken lines).
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from acme_lineage.cli import main
from acme_lineage.events import default_events_path, read_events
from acme_lineage.graph import LineageGraph
from acme_lineage.layout import BOLD, ELLIPSIS, PAD_X, text_width
from acme_lineage.names import collapse

pytestmark = pytest.mark.unit

PG = "postgres://127.0.0.1:5432"
APP = "postgres://127.0.0.1:5433"
FX = "https://fx.example.test"
COLD = "s3://acme-cold"
DAYS = 29
FIRST_DAY = date(2026, 10, 25)
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.7.0"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


@dataclass
class Written:
    path: Path
    root: Path
    complete_inputs: int = 0
    complete_outputs: int = 0
    events: int = 0
    malformed: int = 0


def _dataset(namespace: str, name: str, columns: tuple[str, ...] = ()) -> dict:
    facets = {}
    if columns:
        facets["schema"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json",
            "fields": [{"name": c.split()[0], "type": c.split()[1], "fields": []} for c in columns],
        }
    return {"namespace": namespace, "name": name, "facets": facets}


def _event(kind: str, when: datetime, job: str, run_id: str, inputs: list, outputs: list) -> dict:
    return {
        "eventTime": when.isoformat(),
        "eventType": kind,
        "inputs": inputs,
        "job": {"facets": {}, "name": job, "namespace": "default"},
        "outputs": outputs,
        "producer": PRODUCER,
        "run": {"facets": {"airflow": {"dag": {"dag_id": job.split(".")[0]}}}, "runId": run_id},
        "schemaURL": SCHEMA_URL,
    }


def write_events(path: Path, db: str = "warehouse", days: int = DAYS, broken: bool = True) -> Written:
    """29 days of the project's DAGs; returns how many dataset edges the COMPLETE events name."""
    root = path.parent / "data"
    out = Written(path, root)
    lines: list[str] = []

    def table(name: str, *columns: str) -> dict:
        return _dataset(PG, f"{db}.{name}", columns)

    def file(relative: str) -> dict:
        return _dataset("file", str(root / relative))

    def task(day: datetime, job: str, inputs: list, outputs: list, kind: str = "COMPLETE") -> None:
        run_id = str(uuid.uuid4())
        lines.append(json.dumps(_event("START", day, job, run_id, [], [])))
        lines.append(json.dumps(_event(kind, day + timedelta(minutes=3), job, run_id, inputs, outputs)))
        out.events += 2
        if kind == "COMPLETE":
            out.complete_inputs += len(inputs)
            out.complete_outputs += len(outputs)

    for offset in range(days):
        d = FIRST_DAY + timedelta(days=offset)
        t = datetime(d.year, d.month, d.day, 1, tzinfo=UTC) + timedelta(days=1)
        dag_run = str(uuid.uuid4())
        lines.append(json.dumps(_event("START", t, "daily_etl", dag_run, [], [])))
        out.events += 1
        for hour in (0, 12):
            task(
                t + timedelta(hours=hour),
                "hourly_incremental_sync.sync_orders",
                [_dataset(APP, "app.public.orders")],
                [table("core.fact_orders", "order_id bigint", "customer_id bigint", "amount numeric")],
            )
        task(t, "daily_etl.fetch_fx_rates", [_dataset(FX, "/rates")], [table("core.fx_rates", "currency text")])
        task(
            t,
            "daily_etl.load_payments",
            [file(f"landing/payments/dt={d}/part-000.csv"), table("core.fx_rates")],
            [table("core.fact_payments", "payment_id bigint", "amount numeric", "currency text")],
        )
        task(
            t,
            "daily_etl.load_events",
            [file(f"landing/events/dt={d}/events-{d:%Y%m%d}.jsonl")],
            [table("core.fact_events", "event_id bigint", "kind text")],
        )
        task(
            t,
            "daily_etl.build_daily_revenue",
            [table("core.fact_payments"), table("core.fact_orders"), table("core.fx_rates")],
            [table("marts.daily_revenue", "dt date", "revenue_usd numeric")],
        )
        task(
            t,
            "feature_engineering.build_customer_features",
            [table("core.fact_orders"), table("core.fact_payments"), table("core.fact_events")],
            [table("features.customer_features", "customer_id bigint", "orders_30d int")],
        )
        task(
            t,
            "ml_training.train_churn_model",
            [table("features.customer_features"), table("core.fact_orders")],
            [table("ml.model_registry", "version text"), file(f"artifacts/models/churn/churn-{d:%Y%m%d}/model.joblib")],
        )
        task(
            t,
            "daily_reports.build_report",
            [table("marts.daily_revenue"), table("core.fact_orders")],
            [file(f"artifacts/reports/dt={d}/{name}") for name in ("report.html", "revenue_14d.png", "report.csv")],
        )
        if d.weekday() == 0:
            task(
                t, "weekly_aggregation.build_weekly_kpis", [table("marts.daily_revenue")], [table("marts.weekly_kpis")]
            )
        task(
            t,
            "data_archival.archive_partitions",
            [table("core.fact_events")],
            [
                _dataset(COLD, f"fact_events/dt={d - timedelta(days=90)}/part-000.parquet"),
                table("ops.archive_manifest"),
            ],
        )
        task(t, "anomaly_detection.detect_anomalies", [table("core.fact_events")], [table("ops.anomalies")])
        task(
            t,
            "data_quality_check.run_checks",
            [table("core.fact_orders")],
            [table("ops.quality_results")],
            kind="FAIL",
        )
        lines.append(json.dumps(_event("COMPLETE", t + timedelta(hours=1), "daily_etl", dag_run, [], [])))
        out.events += 1
        if broken and offset in (3, 17):
            lines.append('{"eventTime": "2026-11-0')  # truncated mid-write
            lines.append("not json")
            out.malformed += 2
    text = "\n".join(lines) + "\n"
    if broken:
        text += '{"eventType": "COMPLETE", "job": {"name": "daily_etl.lo'  # a crash left half a line at the end
        out.malformed += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return out


@pytest.fixture
def events(tmp_path: Path) -> Written:
    return write_events(tmp_path / "openlineage" / "events.jsonl")


@pytest.fixture
def graph(events: Written) -> LineageGraph:
    return LineageGraph.from_log(read_events([events.path]))


def names_of(graph: LineageGraph, ids) -> set[str]:
    return {graph.datasets[i].name for i in ids}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- walking the graph ------------------------------------------------------------------


def test_downstream_of_fact_payments_reaches_marts_features_models_and_reports(graph: LineageGraph) -> None:
    match = graph.match("core.fact_payments")
    assert [d.name for d in match.datasets] == ["warehouse.core.fact_payments"]
    reach = graph.reach(match.datasets, "downstream")
    found = names_of(graph, reach.hops)
    assert {
        "warehouse.marts.daily_revenue",
        "warehouse.features.customer_features",
        "warehouse.ml.model_registry",
        "warehouse.marts.weekly_kpis",
    } <= found
    assert any(n.endswith("/artifacts/models/churn/churn-*/model.joblib") for n in found)
    reports = {n.rsplit("/", 1)[1] for n in found if "/artifacts/reports/dt=*/" in n}
    assert reports == {"report.html", "revenue_14d.png", "report.csv"}
    # upstream, sibling and exclusive-to-fact_events things are not downstream of fact_payments
    for name in (
        "warehouse.core.fx_rates",
        "warehouse.core.fact_orders",
        "warehouse.core.fact_events",
        "warehouse.ops.archive_manifest",
        "warehouse.ops.anomalies",
        "app.public.orders",
        "/rates",
    ):
        assert name not in found
    assert not any("landing" in n or n.endswith(".parquet") for n in found)
    assert reach.hops[graph.match("marts.daily_revenue").datasets[0].id] == 1
    assert reach.hops[graph.match("marts.weekly_kpis").datasets[0].id] == 2
    assert {graph.jobs[j].name for j in reach.jobs} == {
        "daily_etl.build_daily_revenue",
        "feature_engineering.build_customer_features",
        "ml_training.train_churn_model",
        "daily_reports.build_report",
        "weekly_aggregation.build_weekly_kpis",
    }


def test_fact_events_exclusive_downstream_is_not_in_fact_payments_downstream(graph: LineageGraph) -> None:
    events_down = names_of(graph, graph.reach(graph.match("core.fact_events").datasets, "downstream").hops)
    payments_down = names_of(graph, graph.reach(graph.match("core.fact_payments").datasets, "downstream").hops)
    exclusive = events_down - payments_down
    assert {"warehouse.ops.archive_manifest", "warehouse.ops.anomalies"} <= exclusive
    assert any(n.endswith("fact_events/dt=*/part-*.parquet") for n in exclusive)
    assert "warehouse.features.customer_features" in events_down & payments_down


def test_upstream_of_daily_revenue_reaches_landing_files_and_the_fx_api(graph: LineageGraph) -> None:
    reach = graph.reach(graph.match("marts.daily_revenue").datasets, "upstream")
    found = {(graph.datasets[i].namespace, graph.datasets[i].name) for i in reach.hops}
    assert (FX, "/rates") in found
    assert (APP, "app.public.orders") in found
    landing = [n for ns, n in found if ns == "file" and "/landing/payments/" in n]
    assert len(landing) == 1
    assert landing[0].endswith("/landing/payments/dt=*/part-*.csv")
    names = {n for _, n in found}
    assert "warehouse.core.fact_events" not in names  # feeds features, not revenue
    assert "warehouse.marts.weekly_kpis" not in names  # downstream, not upstream
    assert not any("landing/events" in n for n in names)


def test_cli_prints_hops_jobs_and_exits_0(events: Written, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["impact", "core.fact_payments", "--events", str(events.path)], capsys)
    assert code == 0
    assert "hop 1" in out
    assert "hop 2" in out
    line = next(x for x in out.splitlines() if "warehouse.marts.daily_revenue" in x)
    assert "daily_etl.build_daily_revenue" in line
    assert "(29 files)" in out  # report files, one node per file name across 29 days
    assert "skipped 5 malformed line(s)" in err

    code, out, _ = run(["impact", "marts.daily_revenue", "--upstream", "--events", str(events.path)], capsys)
    assert code == 0
    assert "(source)" in out
    assert "landing/payments/dt=*/part-*.csv (29 files)" in out


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "collapsed"),
    [
        ("/d/landing/payments/dt=2026-11-01/part-000.csv", "/d/landing/payments/dt=*/part-*.csv"),
        ("/d/artifacts/models/churn/churn-20261122/model.joblib", "/d/artifacts/models/churn/churn-*/model.joblib"),
        ("/d/artifacts/reports/dt=2026-11-22/revenue_14d.png", "/d/artifacts/reports/dt=*/revenue_14d.png"),
        ("/d/landing/events/dt=2026-11-01/events-20261101.jsonl", "/d/landing/events/dt=*/events-*.jsonl"),
        ("/d/region=eu/hour=03/x.csv", "/d/region=eu/hour=*/x.csv"),
    ],
)
def test_partition_shaped_paths_collapse(name: str, collapsed: str) -> None:
    assert collapse("file", name) == collapsed
    assert collapse(PG, "warehouse.core.fact_payments") == "warehouse.core.fact_payments"


def test_29_daily_files_are_one_node_with_a_count(graph: LineageGraph) -> None:
    landing = [d for d in graph.datasets.values() if "/landing/payments/" in d.name]
    assert len(landing) == 1
    assert len(landing[0].members) == DAYS
    assert landing[0].count_label == "29 files"
    models = [d for d in graph.datasets.values() if d.name.endswith("model.joblib")]
    assert len(models) == 1
    assert len(models[0].members) == DAYS
    cold = [d for d in graph.datasets.values() if d.namespace == COLD]
    assert len(cold) == 1
    assert cold[0].count_label == "29 objects"


def test_schema_columns_and_fail_events(graph: LineageGraph) -> None:
    payments = graph.match("core.fact_payments").datasets[0]
    assert payments.fields == (("payment_id", "bigint"), ("amount", "numeric"), ("currency", "text"))
    # the quality check only FAILs: its datasets are not lineage
    assert not graph.match("ops.quality_results").datasets
    assert "default/data_quality_check.run_checks" not in graph.jobs
    assert "default/daily_etl" not in graph.jobs  # DAG-run events name no datasets


# -- input problems ------------------------------------------------------------------------


def test_malformed_lines_are_skipped_and_counted(events: Written, tmp_path: Path) -> None:
    log = read_events([events.path])
    assert log.malformed == events.malformed == 5
    assert log.events == events.events
    clean = write_events(tmp_path / "clean.jsonl", broken=False)
    assert read_events([clean.path]).malformed == 0
    assert len(log.runs) == len(read_events([clean.path]).runs)
    assert any("malformed" in w for w in log.warnings())


def test_no_match_exits_2_with_close_names(events: Written, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["impact", "core.fact_paymnts", "--events", str(events.path)], capsys)
    assert code == 2
    assert out == ""
    assert "no dataset in the events matches 'core.fact_paymnts'" in err
    assert "warehouse.core.fact_payments" in err.split("Close names:")[1]


def test_missing_events_file_exits_1_and_says_make_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert default_events_path() == tmp_path / "home" / "openlineage" / "events.jsonl"
    code, _, err = run(["impact", "core.fact_payments"], capsys)
    assert code == 1
    assert "make demo" in err
    assert "--events" in err
    (tmp_path / "junk.jsonl").write_text("garbage\n{}\n")
    code, _, err = run(["impact", "x", "--events", str(tmp_path / "junk.jsonl")], capsys)
    assert code == 1
    assert "no COMPLETE events with datasets" in err


def test_a_table_in_two_databases_matches_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_events(tmp_path / "a" / "events.jsonl", days=3)
    second = write_events(tmp_path / "b" / "events.jsonl", db="acme_test_1a2b", days=2)
    argv = ["impact", "core.fact_payments", "--events", str(first.path), "--events", str(second.path)]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "matches 2 datasets in different databases (acme_test_1a2b, warehouse)" in out
    assert "acme_test_1a2b.marts.daily_revenue" in out
    assert "warehouse.marts.daily_revenue" in out
    line = next(x for x in out.splitlines() if "acme_test_1a2b.marts.daily_revenue" in x)
    assert line.endswith("[from 1]")  # [1] is acme_test_1a2b: the walk does not cross databases
    # one job name serves both databases; a walk follows what each run read into what it wrote
    graph = LineageGraph.from_log(read_events([first.path, second.path]))
    exact = graph.match(f"{PG}/warehouse.core.fact_payments")
    assert [d.name for d in exact.datasets] == ["warehouse.core.fact_payments"]
    found = names_of(graph, graph.reach(exact.datasets, "downstream").hops)
    assert "warehouse.marts.daily_revenue" in found
    assert not any(n.startswith("acme_test_1a2b.") for n in found)


def test_a_database_named_like_a_date_is_matched_as_written(tmp_path: Path) -> None:
    """Table names are not partitions: a database ``test_20261122_x`` is not folded to ``test_*_x``."""
    written = write_events(tmp_path / "events.jsonl", db="test_20261122_scratch", days=2)
    graph = LineageGraph.from_log(read_events([written.path]))
    for target in ("test_20261122_scratch.core.fact_payments", f"{PG}/test_20261122_scratch.core.fact_payments"):
        assert [d.name for d in graph.match(target).datasets] == ["test_20261122_scratch.core.fact_payments"]


def test_targets_by_path(graph: LineageGraph) -> None:
    one_file = graph.match("landing/payments/dt=2026-11-01/part-000.csv").datasets
    assert [d.name.rsplit("/", 3)[-3:] for d in one_file] == [["payments", "dt=*", "part-*.csv"]]
    folder = graph.match("landing/payments").datasets
    assert folder == one_file


# -- pictures ----------------------------------------------------------------------------------


def test_layout_has_no_overlaps_and_labels_fit(graph: LineageGraph) -> None:
    from acme_lineage.diagram import build

    diagram = build(graph, graph.reach(graph.match("core.fact_payments").datasets, "downstream"))
    boxes = list(diagram.layout.boxes.values())
    assert len(boxes) == len(graph.datasets) + len(graph.jobs) >= 28
    for i, a in enumerate(boxes):
        for _, line, size, is_title in a.text_lines():
            factor = BOLD if is_title and a.bold else 1.0
            assert text_width(line, size) * factor <= a.w - 2 * PAD_X + 0.5, (a.id, line)
        if not any(ELLIPSIS in line for line in a.title_lines):
            assert "".join(a.title_lines) == a.title  # wrapped, not lost
        for b in boxes[i + 1 :]:
            apart_x = abs(a.x - b.x) >= (a.w + b.w) / 2
            apart_y = abs(a.y - b.y) >= (a.h + b.h) / 2
            assert apart_x or apart_y, (a.id, b.id)
    assert sum(ELLIPSIS in "".join(b.title_lines) for b in boxes) <= 3  # names stay readable
    assert diagram.layout.width <= 1600


def test_html_page_is_self_contained_with_an_svg_of_the_nodes(
    events: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "impact.html"
    code, stdout, _ = run(["impact", "core.fact_payments", "--events", str(events.path), "--html", str(out)], capsys)
    assert code == 0
    assert f"wrote {out}" in stdout
    page = out.read_text()
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('<g class="node') == 30
    groups = re.findall(r'<g class="node (\w+) (\w+)"[^>]*><title>([^<]*)</title>(.*?)</g>', svg, re.S)
    assert len(groups) == 30
    tooltips = {
        tooltip: (kind, state, "".join(re.findall(r">([^<]*)</text>", body))) for kind, state, tooltip, body in groups
    }
    kind, state, text = tooltips[f"{PG}/warehouse.core.fact_payments"]
    assert (kind, state) == ("table", "target")
    assert text.startswith("core.fact_payments")
    assert tooltips[f"{PG}/warehouse.marts.daily_revenue"][1] == "reached"
    assert tooltips[f"{PG}/warehouse.ops.anomalies"][1] == "other"
    assert tooltips[f"{FX}//rates"][2].startswith("fx.example.test/rates")
    job = next(v for k, v in tooltips.items() if k.startswith("job daily_etl.build_daily_revenue "))
    assert job[:2] == ("job", "reached")
    assert job[2].startswith("build_daily_revenue")
    assert "<title>" in svg
    for tag in ("<script", "<link", "<img", "<iframe", "@import", "src=", "href="):
        assert tag not in page
    namespaces = {PG, APP, FX, COLD}
    for url in re.findall(r"[a-z0-9]+://[^\s\"'<>)\],]*", page):
        assert url in namespaces or any(url.startswith(ns + "/") for ns in namespaces), url
    assert "<table>" in page
    assert "payment_id" in page  # schema columns


def test_png_is_a_1600x1000_image(events: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "impact.png"
    argv = ["impact", "marts.daily_revenue", "--upstream", "--events", str(events.path), "--png", str(out)]
    code, _, _ = run(argv, capsys)
    assert code == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1600, 1000)
    assert len(data) > 20_000  # not blank


# -- SQL -------------------------------------------------------------------------------------


def sql_value(out: str) -> str:
    return out.splitlines()[2].strip()


def test_sql_views_count_edges_in_place(events: Written, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--events", str(events.path)]
    code, out, err = run(["sql", "SELECT count(*) AS n FROM lineage_edges WHERE direction = 'output'", *base], capsys)
    assert code == 0
    assert int(sql_value(out)) == events.complete_outputs
    assert "(1 row)" in out
    assert "skipped 5 malformed line(s)" in err
    _, out, _ = run(["sql", "SELECT count(*) FROM lineage_edges WHERE direction = 'input'", *base], capsys)
    assert int(sql_value(out)) == events.complete_inputs
    _, out, _ = run(["sql", "SELECT count(*) FROM events", *base], capsys)
    assert int(sql_value(out)) == events.events
    query = (
        "SELECT job_name, count(*) AS runs FROM events WHERE event_type = 'COMPLETE' AND job_name LIKE 'hourly%' "
        "GROUP BY job_name"
    )
    _, out, _ = run(["sql", query, *base], capsys)
    assert out.splitlines()[0].split() == ["job_name", "runs"]
    assert out.splitlines()[2].split() == ["hourly_incremental_sync.sync_orders", str(2 * DAYS)]


def test_sql_errors_and_list(events: Written, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["sql", "SELECT nope FROM lineage_edges", "--events", str(events.path)], capsys)
    assert code == 1
    assert "SQL error" in err
    code, out, _ = run(["sql", "--list", "--events", str(events.path)], capsys)
    assert code == 0
    assert "lineage_edges" in out
    assert "dataset_name" in out
    assert "examples:" in out


def test_cycles_and_jobs_without_inputs_still_walk_and_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cycle.jsonl"
    when = datetime(2026, 11, 2, 1, tzinfo=UTC)
    a, b, c = (_dataset(PG, f"warehouse.ops.{n}") for n in ("a", "b", "c"))
    lines = [
        _event("COMPLETE", when, "x.seed", str(uuid.uuid4()), [], [a]),
        _event("COMPLETE", when, "x.forward", str(uuid.uuid4()), [a], [b]),
        _event("COMPLETE", when, "x.back", str(uuid.uuid4()), [b], [a, c]),  # a -> b -> a
        _event("COMPLETE", when, "x.self", str(uuid.uuid4()), [c], [c]),
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    graph = LineageGraph.from_log(read_events([path]))
    reach = graph.reach(graph.match("ops.a").datasets, "downstream")
    assert names_of(graph, reach.hops) == {"warehouse.ops.b", "warehouse.ops.c"}
    out = tmp_path / "cycle.html"
    code, _, _ = run(["impact", "ops.b", "--upstream", "--events", str(path), "--html", str(out)], capsys)
    assert code == 0
    assert out.read_text().count('<g class="node') == 7


def test_a_sql_query_event_counts_as_its_task(tmp_path: Path) -> None:
    """The hook-lineage collector reports each SQL query as a child job ``<dag>.<task>.query.<n>``
    with a parent facet; its datasets belong to the task (one node, one run), not to a job of its own."""
    when = datetime(2026, 11, 2, 3, tzinfo=UTC)
    wh = "postgres://127.0.0.1:5432"
    gate, results = _dataset(wh, "warehouse.ops.quality_gate"), _dataset(wh, "warehouse.ops.quality_results")
    task = _event("COMPLETE", when, "data_quality_check.publish_gate", "run-1", [], [gate])
    query = _event("COMPLETE", when, "data_quality_check.publish_gate.query.3", "run-q3", [results], [])
    query["run"]["facets"]["parent"] = {
        "job": {"namespace": "default", "name": "data_quality_check.publish_gate"},
        "run": {"runId": "run-1"},
    }  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in (task, query)) + "\n")
    graph = LineageGraph.from_log(read_events([path]))
    assert set(graph.jobs) == {"default/data_quality_check.publish_gate"}
    reach = graph.reach(graph.match("ops.quality_results").datasets, "downstream")
    assert names_of(graph, reach.hops) == {"warehouse.ops.quality_gate"}

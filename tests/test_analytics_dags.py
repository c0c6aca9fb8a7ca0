"""The five DAGs after the ETL, end to end through dag.test() on generated data in the real PostgreSQL.

One module-wide warehouse: the app DB and landing zone are generated once (8 days,
2026-11-01..08, so the ISO week 2026-11-02..08 is complete), synced and loaded, and
each day passes data_quality_check and feature_engineering. The tests then check
the DAGs' results against values computed here independently (pandas on the same
rows), the model registry's promotion rules, the report against the mart and the
Slack post received by the local server, and that a day failing quality stops
features, training and the report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from acme_localdev.recorder import HttpRecorder
from acme_localdev.warehouse_compare import postgres_connection as pg_conn_json
from acme_pipelines.migrations import upgrade
from acme_pipelines.warehouse import WarehouseHook
from acme_sample_data.build import build
from acme_sample_data.fx import FxServer
from acme_sample_data.generator import GeneratorConfig
from conftest import query, run_dag, scratch_databases

pytestmark = pytest.mark.integration

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=8, scale=0.3, bad_share=0.004, seed=11)
DAYS = CONFIG.day_list()
LAST = DAYS[-1]
WEEK = date(2026, 11, 2)
CENT = Decimal(
    "0.01"
)  # PostgreSQL's round() on numeric rounds halves away from zero  # a Monday; the week 11-02..11-08 is complete


run = run_dag


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def world(dagbag, airflow_db, tmp_path_factory):
    """Generated data, every connection pointing at test services, ETL + quality + features for 8 days."""
    root = tmp_path_factory.mktemp("analytics")
    with scratch_databases() as make, HttpRecorder() as slack, FxServer(DAYS) as fx, pytest.MonkeyPatch.context() as mp:
        app, warehouse = make(), make()
        build(CONFIG, root / "landing", app)
        upgrade(WarehouseHook(dsn=warehouse))  # the setup step: tasks only check the schema's version
        slack_conn = {"conn_type": "slackwebhook", "host": f"{slack.url}/services"}
        mp.setenv("AIRFLOW_CONN_APP_DB", pg_conn_json(app))
        mp.setenv("AIRFLOW_CONN_WAREHOUSE", pg_conn_json(warehouse))
        mp.setenv("AIRFLOW_CONN_FX_API", json.dumps({"conn_type": "http", "host": fx.url}))
        mp.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({**slack_conn, "password": "T/ALERTS/X"}))
        mp.setenv("AIRFLOW_CONN_SLACK_REPORTS", json.dumps({**slack_conn, "password": "T/REPORTS/X"}))
        mp.setenv(
            "AIRFLOW_CONN_PAGERDUTY_EVENTS",
            json.dumps({"conn_type": "pagerduty_events", "password": "disabled-in-tests"}),
        )
        mp.setenv("AIRFLOW_VAR_LANDING_ROOT", f"file://{root / 'landing'}")
        mp.setenv("AIRFLOW_VAR_ARTIFACTS_ROOT", f"file://{root / 'artifacts'}")
        mp.setenv("AIRFLOW_VAR_MAX_REJECT_RATIO", "0.05")
        mp.setenv("AIRFLOW_VAR_CHURN_HORIZON_DAYS", "3")
        run(dagbag, "hourly_incremental_sync", partition="2025-01-01T00:00", partition_end="2026-11-11T00:00")
        for day in DAYS:
            run(dagbag, "daily_etl", partition=day.isoformat())
            run(dagbag, "data_quality_check", partition=day.isoformat())
            run(dagbag, "feature_engineering", partition=day.isoformat())
        yield {"app": app, "warehouse": warehouse, "slack": slack, "artifacts": root / "artifacts"}


def frame(dsn: str, statement: str, params: tuple | dict = ()) -> pd.DataFrame:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(statement, params)
            return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    finally:
        conn.close()


# -- data_quality_check -------------------------------------------------------------------


def test_every_day_passed_and_every_check_is_recorded(world):
    gates = dict(query(world["warehouse"], "SELECT dt, status FROM ops.quality_gate"))
    assert gates == dict.fromkeys(DAYS, "passed")
    rows = query(
        world["warehouse"],
        "SELECT check_name, bool_and(passed), count(DISTINCT dt) FROM ops.quality_results GROUP BY check_name",
    )
    names = {name for name, _, _ in rows}
    assert all(ok and days == len(DAYS) for _, ok, days in rows), rows
    for expected in (
        "core.fact_payments:payment_id.unique_check",
        "core.fact_payments:has_rows",
        "core.fact_payments:interval_count(*)",
        "freshness:core.fact_orders",
        "accounting:core.fact_payments",
        "accounting:core.fact_events",
        "integrity:fact_payments.order_id",
        "integrity:fact_events.customer_id",
        "reconciliation:marts.daily_revenue",
        "core.fact_pos_sales:sale_id.unique_check",
        "core.fact_pos_sales:quantity.min",
        "core.fact_pos_sales:has_rows",
        "core.fact_pos_sales:sold_around_the_day",
        "core.fact_pos_sales:interval_count(*)",
        "accounting:core.fact_pos_sales",
        "integrity:fact_pos_sales.product_id",
        "unique_across_days:core.fact_pos_sales",
    ):
        assert expected in names, f"{expected} missing from {sorted(names)}"


# -- feature_engineering ------------------------------------------------------------------


def expected_features(dsn: str, as_of: date) -> pd.DataFrame:
    """features.customer_features recomputed with pandas from the published facts."""
    cutoff = pd.Timestamp(as_of + timedelta(days=1), tz="UTC")
    customers = frame(dsn, "SELECT customer_id, created_at FROM core.dim_customer")
    orders = frame(dsn, "SELECT order_id, customer_id, created_at FROM core.fact_orders")
    payments = frame(dsn, "SELECT order_id, status, amount_usd, dt FROM core.fact_payments")
    events = frame(dsn, "SELECT customer_id, dt FROM core.fact_events WHERE customer_id IS NOT NULL")

    customers = customers[customers.created_at < cutoff].set_index("customer_id")
    past = orders[orders.created_at < cutoff]
    out = pd.DataFrame(index=customers.index)
    out["days_since_signup"] = [(as_of - c.date()).days for c in customers.created_at]
    by_customer = past.groupby("customer_id").created_at
    last = by_customer.max()
    seconds = (cutoff - last.dt.floor("s")).dt.total_seconds()  # from the last order's second
    out["recency_days"] = np.floor((seconds * 100 + 43200) / 86400) / 100  # cents of a day, half away from zero
    for name, days in (("orders_7d", 7), ("orders_30d", 30)):
        out[name] = past[past.created_at >= cutoff - pd.Timedelta(days=days)].groupby("customer_id").size()
    out["orders_lifetime"] = by_customer.size()
    window = payments[(payments.dt > as_of - timedelta(days=30)) & (payments.dt <= as_of)]
    window = window.merge(orders[["order_id", "customer_id"]], on="order_id")
    captured = window[window.status == "captured"].groupby("customer_id")
    out["monetary_30d_usd"] = captured.amount_usd.sum()
    paid_orders = captured.order_id.nunique()
    out["avg_order_value_30d_usd"] = [
        None if pd.isna(m) or pd.isna(n) or n == 0 else (Decimal(m) / Decimal(int(n))).quantize(CENT, ROUND_HALF_UP)
        for m, n in zip(out["monetary_30d_usd"], paid_orders.reindex(out.index), strict=True)
    ]
    refunded = window[window.status == "refunded"].groupby("customer_id")
    out["refunds_30d_usd"] = refunded.amount_usd.sum()
    out["refund_count_30d"] = refunded.size()
    out["failed_payments_30d"] = window[window.status == "failed"].groupby("customer_id").size()
    ev = events[(events.dt > as_of - timedelta(days=30)) & (events.dt <= as_of)]
    out["events_7d"] = ev[ev.dt > as_of - timedelta(days=7)].groupby("customer_id").size()
    out["events_30d"] = ev.groupby("customer_id").size()
    counts = ["orders_7d", "orders_30d", "orders_lifetime", "refund_count_30d", "failed_payments_30d"]
    counts += ["events_7d", "events_30d"]
    out[counts] = out[counts].fillna(0).astype(int)
    for money in ("monetary_30d_usd", "refunds_30d_usd"):
        out[money] = out[money].fillna(Decimal("0"))
    return out.sort_index()


@pytest.mark.parametrize("as_of", [DAYS[0], DAYS[4], LAST])
def test_features_equal_an_independent_computation(world, as_of):
    expected = expected_features(world["warehouse"], as_of)
    got = frame(world["warehouse"], "SELECT * FROM features.customer_features WHERE as_of_date = %s", (as_of,))
    got = got.set_index("customer_id").sort_index()
    assert list(got.index) == list(expected.index)
    assert len(got) > 100
    for column in expected.columns:
        want = [None if pd.isna(v) else float(v) for v in expected[column]]
        have = [None if pd.isna(v) else float(v) for v in got[column]]
        assert have == pytest.approx(want, abs=0.006), column
    assert got["orders_lifetime"].sum() > 0
    assert got["events_30d"].sum() > 0


def test_rerunning_features_replaces_the_day(dagbag, world):
    before = query(world["warehouse"], "SELECT count(*), sum(orders_lifetime) FROM features.customer_features")
    run(dagbag, "feature_engineering", partition=DAYS[3].isoformat())
    assert query(world["warehouse"], "SELECT count(*), sum(orders_lifetime) FROM features.customer_features") == before


# -- weekly_aggregation -------------------------------------------------------------------


def test_weekly_kpis_equal_an_independent_computation(dagbag, world):
    run(dagbag, "weekly_aggregation", partition=WEEK.isoformat())
    run(dagbag, "weekly_aggregation", partition=WEEK.isoformat())  # a rerun replaces the row
    got = frame(world["warehouse"], "SELECT * FROM marts.weekly_kpis")
    assert len(got) == 1
    row = got.iloc[0]
    end = WEEK + timedelta(days=7)
    orders = frame(world["warehouse"], "SELECT customer_id, created_at FROM core.fact_orders")
    in_week = orders[
        (orders.created_at >= pd.Timestamp(WEEK, tz="UTC")) & (orders.created_at < pd.Timestamp(end, tz="UTC"))
    ]
    payments = frame(
        world["warehouse"], "SELECT order_id, status, amount_usd FROM core.fact_payments WHERE dt >= %s AND dt < %s",
        (WEEK, end),
    )  # fmt: skip
    captured = payments[payments.status == "captured"]
    assert (row.week_start, row.iso_week) == (WEEK, "2026-W45")
    assert row.orders == len(in_week)
    assert row.active_customers == in_week.customer_id.nunique()
    assert row.revenue_usd == captured.amount_usd.sum()
    assert row.refunds_usd == payments[payments.status == "refunded"].amount_usd.sum()
    aov = (captured.amount_usd.sum() / captured.order_id.nunique()).quantize(CENT, ROUND_HALF_UP)
    assert row.avg_order_value_usd == aov
    assert pd.isna(row.revenue_wow_pct), "the week before (10-26..11-01) is incomplete: no change to report"


def test_weekly_kpis_refuse_an_incomplete_week(dagbag, world):
    dag_run = run(dagbag, "weekly_aggregation", expect="failed", partition="2026-11-09")
    assert task_states(dag_run) == {"build_weekly_kpis": "failed"}
    assert query(world["warehouse"], "SELECT count(*) FROM marts.weekly_kpis WHERE week_start = '2026-11-09'") == [(0,)]


# -- ml_training ----------------------------------------------------------------------------


def registry(dsn: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT model_version, is_champion, metric_value, compared_with, compared_metric_value, artifact_sha256, "
        "train_dates, test_dates FROM ml.model_registry ORDER BY model_version",
    )


def test_training_skips_without_labelled_history(dagbag, world):
    dag_run = run(dagbag, "ml_training", partition=DAYS[3].isoformat())  # as-of days <= 11-01: one date
    assert task_states(dag_run)["train_churn_model"] == "skipped"
    assert registry(world["warehouse"]) == []


def test_training_registers_promotes_and_reruns_without_duplicates(dagbag, world):
    run(dagbag, "ml_training", partition=LAST.isoformat())
    [(version, champion, auc, compared, _, sha, train_dates, test_dates)] = registry(world["warehouse"])
    assert (version, champion, compared) == ("churn-20261108", True, None)
    assert (train_dates, test_dates) == ("2026-11-01,2026-11-02,2026-11-03,2026-11-04", "2026-11-05")
    assert 0.5 < auc <= 1.0
    artifact = world["artifacts"] / "models" / "churn" / version / "model.joblib"
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == sha

    run(dagbag, "ml_training", partition=LAST.isoformat())
    assert registry(world["warehouse"]) == [(version, True, auc, None, None, sha, train_dates, test_dates)]


def test_a_worse_model_is_not_promoted(dagbag, world):
    """A champion that saw the test rows (so it scores better on them) stays champion."""
    import joblib
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from acme_pipelines import churn_model as cm
    from acme_pipelines.warehouse import WarehouseHook

    hook = WarehouseHook(dsn=world["warehouse"])
    with hook.scoped_connection() as conn:
        data = cm.load_labelled(hook, conn, LAST, horizon_days=3, history_days=90, max_rows=10**6)
    split = cm.time_split(data)
    cheat = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    cheat.fit(split.test.x, split.test.y)
    blob = io.BytesIO()
    joblib.dump({"model": cheat, "features": cm.FEATURES, "algorithm": "cheat"}, blob)
    path = world["artifacts"] / "models" / "churn" / "cheat" / "model.joblib"
    path.parent.mkdir(parents=True)
    path.write_bytes(blob.getvalue())
    sha = hashlib.sha256(blob.getvalue()).hexdigest()
    query(
        world["warehouse"],
        "UPDATE ml.model_registry SET is_champion = false; "
        "INSERT INTO ml.model_registry (model_version, trained_for_dt, run_id, algorithm, params, train_rows, "
        "test_rows, train_dates, test_dates, metric_name, metric_value, artifact_path, artifact_sha256, is_champion) "
        "VALUES ('cheat', '2026-11-07', 'test', 'cheat', '{}', 0, 0, '', '', 'roc_auc', 0.99, %s, %s, true)",
        (f"file://{path}", sha),
    )
    run(dagbag, "ml_training", partition=LAST.isoformat())
    rows = {r[0]: r for r in registry(world["warehouse"])}
    _, champion, auc, compared, compared_auc, *_ = rows["churn-20261108"]
    assert (champion, compared) == (False, "cheat")
    assert compared_auc > auc, "the champion was scored on the same test rows and did better"
    assert rows["cheat"][1] is True


# -- daily_reports --------------------------------------------------------------------------


def test_report_equals_the_mart_and_reaches_slack(dagbag, world):
    slack = world["slack"]
    seen = len(slack.requests)
    run(dagbag, "daily_reports", partition=LAST.isoformat())
    folder = world["artifacts"] / "reports" / f"dt={LAST}"
    assert sorted(p.name for p in folder.iterdir()) == ["report.csv", "report.html", "revenue_14d.png"]
    assert (folder / "revenue_14d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (folder / "report.html").read_text()
    assert 'src="revenue_14d.png"' in html
    assert "Top products" in html

    [(revenue, orders, aov, refunds)] = query(
        world["warehouse"],
        "SELECT revenue_usd, orders, avg_order_value_usd, refunds_usd FROM marts.daily_revenue WHERE dt = %s",
        (LAST,),
    )
    [(prev_revenue,)] = query(
        world["warehouse"], "SELECT revenue_usd FROM marts.daily_revenue WHERE dt = %s", (LAST - timedelta(days=1),)
    )
    [(week_revenue,)] = query(
        world["warehouse"], "SELECT revenue_usd FROM marts.daily_revenue WHERE dt = %s", (LAST - timedelta(days=7),)
    )
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO((folder / "report.csv").read_text()))}
    assert Decimal(rows["Revenue (USD)"]["value"]) == revenue
    assert int(rows["Orders"]["value"]) == orders
    assert Decimal(rows["Average order value (USD)"]["value"]) == aov
    assert Decimal(rows["Refunds (USD)"]["value"]) == refunds
    dod = round(float((revenue - prev_revenue) / prev_revenue * 100), 2)
    wow = round(float((revenue - week_revenue) / week_revenue * 100), 2)
    assert float(rows["Revenue (USD)"]["day_over_day_pct"]) == dod
    assert float(rows["Revenue (USD)"]["week_over_week_pct"]) == wow

    posts = [r for r in slack.requests[seen:] if r.method == "POST"]
    assert [p.path for p in posts] == ["/services/T/REPORTS/X"]
    text = posts[0].json()["text"]
    assert f"Daily report {LAST}: revenue ${revenue:,.2f} ({dod:+.1f}% d/d, {wow:+.1f}% w/w)" in text
    assert f"{orders:,} orders" in text
    assert str(folder / "report.html") in text


# -- a day that fails quality ------------------------------------------------------------------


def asset_events(name: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count(AssetEvent.id))
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name)
        )


def test_a_day_failing_quality_stops_features_training_and_the_report(dagbag, world):
    bad_day = DAYS[6]
    wh = world["warehouse"]
    passed_events = asset_events("quality.daily_passed")
    features_before = query(wh, "SELECT count(*) FROM features.customer_features WHERE as_of_date = %s", (bad_day,))
    query(
        wh,
        "INSERT INTO core.fact_payments SELECT payment_id + 900000000, 999999999, amount, currency, method, status, "
        "paid_at, amount_usd, dt, 'injected', now() FROM core.fact_payments WHERE dt = %s LIMIT 3",
        (bad_day,),
    )
    query(  # and one payment of the day again in the day before: no index stops it, the check must
        wh,
        "INSERT INTO core.fact_payments SELECT payment_id, order_id, amount, currency, method, status, paid_at, "
        "amount_usd, dt - 1, 'injected', now() FROM core.fact_payments WHERE dt = %s AND _run_id <> 'injected' "
        "LIMIT 1",
        (bad_day,),
    )
    query(  # two store sales of a product the shop does not know, and one sale again in the day before
        wh,
        "INSERT INTO core.fact_pos_sales SELECT sale_id + 900000000, store_id, 999999999, quantity, amount, currency, "
        "sold_at, amount_usd, dt, 'injected', now() FROM core.fact_pos_sales WHERE dt = %s LIMIT 2; "
        "INSERT INTO core.fact_pos_sales SELECT sale_id, store_id, product_id, quantity, amount, currency, sold_at, "
        "amount_usd, dt - 1, 'injected', now() FROM core.fact_pos_sales WHERE dt = %s AND _run_id <> 'injected' "
        "LIMIT 1",
        (bad_day, bad_day),
    )
    try:
        dag_run = run(dagbag, "data_quality_check", expect="failed", partition=bad_day.isoformat())
        states = task_states(dag_run)
        assert (states["check_assertions"], states["publish_gate"]) == ("failed", "failed")
        assert states["check_payments_columns"] == "success"
        assert asset_events("quality.daily_passed") == passed_events, "no 'quality passed' event for a failed day"
        [(status, failed)] = query(wh, "SELECT status, failed FROM ops.quality_gate WHERE dt = %s", (bad_day,))
        assert status == "failed"

        def observed(check: str) -> str:
            [(text,)] = query(
                wh,
                "SELECT observed FROM ops.quality_results WHERE dt = %s AND run_id = %s AND check_name = %s",
                (bad_day, dag_run.run_id, check),
            )
            return text

        assert "integrity:fact_payments.order_id" in failed
        assert observed("integrity:fact_payments.order_id") == "3 orphan payments"
        assert "unique_across_days:core.fact_payments" in failed
        assert observed("unique_across_days:core.fact_payments") == "1 payment ids of the day also in other days"
        assert "unique_across_days:core.fact_events" not in failed
        assert observed("integrity:fact_pos_sales.product_id") == "2 sales of unknown products"
        assert observed("unique_across_days:core.fact_pos_sales") == "1 sale ids of the day also in other days"
        assert {"accounting:core.fact_pos_sales", "integrity:fact_pos_sales.product_id"} <= set(failed)
        assert states["check_pos_sales_columns"] == "success"
        # accounting catches it too: the fact table holds 3 rows no load accounted for
        assert "accounting:core.fact_payments" in failed

        slack_before = len(world["slack"].requests)
        for dag_id, blocked in (
            ("feature_engineering", "build_customer_features"),
            ("ml_training", "train_churn_model"),
            ("daily_reports", "render_report"),
        ):
            states = task_states(run(dagbag, dag_id, expect="failed", partition=bad_day.isoformat()))
            assert states.pop("wait_for_quality") == "failed", dag_id
            assert states[blocked] == "upstream_failed", dag_id
            assert set(states.values()) == {"upstream_failed"}, dag_id  # nothing triggered downstream either
        assert not (world["artifacts"] / "reports" / f"dt={bad_day}").exists()
        report_posts = [r for r in world["slack"].requests[slack_before:] if "REPORTS" in r.path]
        assert report_posts == []
        assert query(wh, "SELECT count(*) FROM features.customer_features WHERE as_of_date = %s", (bad_day,)) == (
            features_before
        )
        version = f"churn-{bad_day:%Y%m%d}"
        assert query(wh, "SELECT count(*) FROM ml.model_registry WHERE model_version = %s", (version,)) == [(0,)]
    finally:
        query(wh, "DELETE FROM core.fact_payments WHERE _run_id = 'injected'")
        query(wh, "DELETE FROM core.fact_pos_sales WHERE _run_id = 'injected'")
    # recovery: fix the data, rerun the check, the day is published again
    run(dagbag, "data_quality_check", partition=bad_day.isoformat())
    assert query(wh, "SELECT status FROM ops.quality_gate WHERE dt = %s", (bad_day,)) == [("passed",)]
    assert asset_events("quality.daily_passed") == passed_events + 1


# -- lineage ------------------------------------------------------------------------------------


def test_openlineage_events_name_inputs_and_outputs(world):
    """Every task of the five DAGs reported what it read and wrote (events of this module's runs)."""
    from conftest import OPENLINEAGE_EVENTS

    db = world["warehouse"].rsplit("/", 1)[1]
    complete: dict[str, dict] = {}
    with OPENLINEAGE_EVENTS.open() as log:
        for line in log:
            event = json.loads(line)
            name = event["job"]["name"]
            if event["eventType"] == "COMPLETE" and name.count(".") == 1:
                complete[name] = event  # the latest run of each task

    def names(job: str, side: str) -> set[str]:
        return {d["name"] for d in complete[job][side]}

    assert f"{db}.ops.quality_results" in names("data_quality_check.check_assertions", "outputs")
    assert f"{db}.core.fact_payments" in names("data_quality_check.check_assertions", "inputs")
    assert f"{db}.ops.quality_results" in names("data_quality_check.check_payments_columns", "outputs")
    assert any(n.endswith("fact_payments") for n in names("data_quality_check.check_payments_columns", "inputs"))
    assert names("data_quality_check.publish_gate", "outputs") == {f"{db}.ops.quality_gate"}
    assert names("feature_engineering.build_customer_features", "outputs") == {f"{db}.features.customer_features"}
    assert f"{db}.core.fact_events" in names("feature_engineering.build_customer_features", "inputs")
    assert names("feature_engineering.wait_for_quality", "inputs") == {f"{db}.ops.quality_gate"}


def test_impact_of_fact_payments_reaches_marts_features_model_and_report(dagbag, world, capsys, tmp_path):
    """``python -m acme_lineage impact`` on the events these runs recorded: what a bad payments load affects."""
    from acme_lineage.cli import main
    from conftest import OPENLINEAGE_EVENTS

    db = world["warehouse"].rsplit("/", 1)[1]
    run(dagbag, "ml_training", partition=LAST.isoformat())  # reruns: the same registry row and report files
    run(dagbag, "daily_reports", partition=LAST.isoformat())
    html, png = tmp_path / "lineage.html", tmp_path / "lineage.png"
    events = ["--events", str(OPENLINEAGE_EVENTS)]
    code = main(["impact", f"{db}.core.fact_payments", *events, "--html", str(html), "--png", str(png)])
    out = capsys.readouterr().out
    assert code == 0, out
    for downstream in ("marts.daily_revenue", "features.customer_features", "ml.model_registry"):
        assert f"{db}.{downstream}" in out, f"{downstream} is downstream of core.fact_payments"
    assert "/models/churn/churn-*/model.joblib" in out, "the model artifact, collapsed over its dated versions"
    assert "/reports/dt=*/report.html" in out
    assert "daily_reports.render_report" in out
    assert f"{db}.core.fact_orders" not in out, "a table that only feeds the same jobs is not downstream"
    assert html.read_text().count("<svg") == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # upstream of the report: back to the landing files and the FX API
    assert main(["impact", f"{db}.marts.daily_revenue", "--upstream", *events]) == 0
    up = capsys.readouterr().out
    assert "/payments/dt=*/part-*.csv" in up
    assert "core.fx_rates" in up

"""Anomaly detection: robust scoring on generated series, and the DAG on a warehouse with injected incidents."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import pytest

from acme_localdev.warehouse_compare import postgres_connection as pg_conn_json
from acme_pipelines import anomalies
from conftest import add_day_partitions, query, run_dag

DAY = "2026-11-22"  # a Sunday; its four previous Sundays are the history


# -- scoring ------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_normal_series_raises_nothing():
    rng = random.Random(7)
    flagged = []
    for window in range(500):
        rate = rng.choice([20, 45, 90])
        draws = [sum(rng.random() < rate / 200 for _ in range(200)) for _ in range(5)]  # binomial, like counts
        *baseline, observed = draws
        severity = anomalies.score(observed, baseline, anomalies.count_floor)[3]
        if severity:
            flagged.append((window, draws))
    assert flagged == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("observed", "severity", "direction"),
    [(160, "critical", "spike"), (70, "warning", "spike"), (5, "warning", "drop"), (44, None, None)],
)
def test_spikes_and_drops_are_scored(observed, severity, direction):
    baseline = [40, 42, 39, 41]
    median, spread, z, found = anomalies.score(observed, baseline, anomalies.count_floor)
    assert (median, found) == (40.5, severity)
    assert spread == pytest.approx(40.5**0.5)  # the noise floor: four agreeing weeks are not certainty
    if direction:
        assert (z > 0) == (direction == "spike")


@pytest.mark.unit
def test_too_little_history_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        anomalies.score(10, [1, 2], anomalies.count_floor)


# -- the DAG on injected incidents --------------------------------------------------------------

FACTS = f"""
-- 40 orders an hour (one every 90 s) for 29 days up to {DAY}; one captured payment of 100 USD each
INSERT INTO core.fact_orders (order_id, customer_id, status, currency, order_total, created_at, updated_at,
                              _run_id, _loaded_at)
SELECT row_number() OVER (ORDER BY ts), 1, 'paid', 'USD', 100, ts, ts, 'test', now()
FROM generate_series('{DAY}'::timestamptz - interval '28 days', '{DAY}'::timestamptz + interval '1 day'
                     - interval '1 second', interval '90 seconds') AS ts
-- the drop: 10:00-11:00 of the day keeps only 5 orders
WHERE NOT (ts >= '{DAY} 10:00+00' AND ts < '{DAY} 10:59+00' AND extract(minute FROM ts) >= 7);

-- the spike: 120 more orders 14:00-15:00
INSERT INTO core.fact_orders (order_id, customer_id, status, currency, order_total, created_at, updated_at,
                              _run_id, _loaded_at)
SELECT 10000000 + n, 2, 'paid', 'USD', 100, '{DAY} 14:00+00'::timestamptz + n * interval '29 seconds',
       '{DAY} 14:00+00'::timestamptz, 'test', now()
FROM generate_series(1, 120) AS n;

INSERT INTO core.fact_payments (payment_id, order_id, amount, currency, method, status, paid_at, amount_usd, dt,
                                _run_id, _loaded_at)
SELECT order_id, order_id, 100, 'USD', 'card', 'captured', created_at + interval '1 minute', 100,
       (created_at + interval '1 minute')::date, 'test', now()
FROM core.fact_orders;

-- the failure burst: 19:00-20:00 every payment failed once first
INSERT INTO core.fact_payments (payment_id, order_id, amount, currency, method, status, paid_at, amount_usd, dt,
                                _run_id, _loaded_at)
SELECT 50000000 + payment_id, order_id, 100, 'USD', 'card', 'failed', paid_at - interval '30 seconds', 100, dt,
       'test', now()
FROM core.fact_payments
WHERE paid_at >= '{DAY} 19:00+00' AND paid_at < '{DAY} 20:00+00';

-- what the loads would have recorded: syncs covering the whole period, every day's payments loaded
INSERT INTO ops.load_audit (dag_id, task_id, run_id, source, target, partition, rows_in, rows_loaded,
                            rows_rejected, rows_duplicate, started_at, finished_at, status)
VALUES ('test', 'sync', 'test', 'app_db:orders', 'core.fact_orders', '2026-10-01T00:00/2026-12-01T00:00',
        0, 0, 0, 0, now(), now(), 'success');
INSERT INTO ops.load_audit (dag_id, task_id, run_id, source, target, partition, rows_in, rows_loaded,
                            rows_rejected, rows_duplicate, started_at, finished_at, status)
SELECT 'test', 'load', 'test', 'landing:payments', 'core.fact_payments', d::date::text, 0, 0, 0, 0, now(), now(),
       'success'
FROM generate_series('{DAY}'::date - 28, '{DAY}'::date, interval '1 day') AS d;
"""


@pytest.fixture
def incident_env(monkeypatch, warehouse, http_recorder, airflow_db):
    day = date.fromisoformat(DAY)
    add_day_partitions(warehouse.dsn, day - timedelta(days=28), day + timedelta(days=1))
    query(warehouse.dsn, FACTS)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_conn_json(warehouse.dsn))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": f"{http_recorder.url}/services", "password": "T/A/X"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_PAGERDUTY_EVENTS", json.dumps({"conn_type": "pagerduty_events", "password": "disabled-tests"})
    )
    return {"warehouse": warehouse.dsn, "slack": http_recorder}


def findings(dsn: str) -> set[tuple]:
    return set(
        query(
            dsn,
            "SELECT metric, to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI'), severity, direction, "
            "alerted_via, suppressed_by IS NOT NULL FROM ops.anomalies",
        )
    )


@pytest.mark.integration
def test_incidents_are_found_scored_and_alerted_once(dagbag, incident_env):
    wh, slack = incident_env["warehouse"], incident_env["slack"]
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T08:30")  # window 08:00-09:00: normal
    assert findings(wh) == set()
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T14:30")  # 14:00-15:00: the spike
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T15:00")  # 14:30-15:30: the same spike, half of it
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T14:30")  # a rerun of the window
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T10:30")  # 10:00-11:00: the drop
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T19:30")  # 19:00-20:00: the failure burst
    assert findings(wh) == {
        ("orders", "14:00", "critical", "spike", "slack,pagerduty-disabled", False),
        ("revenue_usd", "14:00", "critical", "spike", "slack,pagerduty-disabled", False),
        ("orders", "14:30", "critical", "spike", None, True),
        ("revenue_usd", "14:30", "warning", "spike", None, True),  # same anomaly, weaker in this window
        ("orders", "10:00", "warning", "drop", "slack", False),  # 5 vs 40: score -5.5
        ("revenue_usd", "10:00", "warning", "drop", "slack", False),
        ("payment_failure_rate", "19:00", "critical", "spike", "slack,pagerduty-disabled", False),
    }
    [(observed, expected, baseline)] = query(
        wh,
        "SELECT observed, expected, baseline FROM ops.anomalies WHERE metric = 'orders' AND window_start = %s",
        (f"{DAY} 14:00+00",),
    )
    assert (observed, expected, baseline) == (160, 40, [40, 40, 40, 40])
    posts = [r.json()["text"] for r in slack.requests if r.method == "POST"]
    assert len(posts) == 5, posts  # one per alerted finding; the continuation and the rerun post nothing
    assert any("orders spike 160 vs 40 expected" in p for p in posts)


@pytest.mark.integration
def test_critical_anomalies_page_pagerduty_once(dagbag, incident_env, pagerduty_server):
    """Each critical anomaly sends one event to the PagerDuty Events API (a local HTTPS server here),
    its continuation and a rerun none."""
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T19:30")  # the failure burst: critical
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T20:00")  # 19:30-20:30: its continuation
    run_dag(dagbag, "anomaly_detection", partition=f"{DAY}T19:30")  # a rerun
    sent = [r.json() for r in pagerduty_server.requests if r.path == "/v2/enqueue"]
    assert [(e["payload"]["severity"], e["dedup_key"]) for e in sent] == [
        ("critical", "anomaly/payment_failure_rate/2026-11-22T19:00")
    ]
    assert "payment_failure_rate spike" in sent[0]["payload"]["summary"]
    assert sent[0]["payload"]["custom_details"]["runbook"].endswith("docs/runbook.md#alert-anomaly")
    assert query(incident_env["warehouse"], "SELECT alerted_via FROM ops.anomalies WHERE alerted_at IS NOT NULL") == [
        ("slack,pagerduty",)
    ]

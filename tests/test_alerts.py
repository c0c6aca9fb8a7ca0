"""Alerts end to end: Slack once per failed task, PagerDuty once per failed critical run, email where set,
and a missed deadline's callback.

Every alert goes over real HTTP(S) / SMTP to local servers: Slack to an HTTP
recorder, PagerDuty's Events API v2 to an HTTPS recorder (its client accepts
only https://), email to a local SMTP server.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acme_localdev.recorder import SmtpRecorder
from conftest import free_port, run_dag

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()


def _closed_pg() -> str:
    return json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": free_port(), "login": "postgres"})


@pytest.fixture
def alert_env(monkeypatch, airflow_db, http_recorder):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": f"{http_recorder.url}/services", "password": "T/ALERT/X"}),
    )
    # Nothing listens on these ports: every task that touches a database fails (and would be retried).
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", _closed_pg())
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", _closed_pg())
    return http_recorder


@pytest.fixture
def one_fast_retry(dagbag, monkeypatch):
    """Every task of the DAG gets one retry without delay (the deployment's is 3 with backoff)."""

    def apply(dag_id: str) -> None:
        for task in dagbag.dags[dag_id].tasks:
            monkeypatch.setattr(task, "retries", 1)
            monkeypatch.setattr(task, "retry_delay", timedelta(0))

    return apply


@pytest.fixture
def smtp_alerts(monkeypatch):
    """A local SMTP server and a working smtp_alerts connection to it; read the mail from ``.messages``."""
    with SmtpRecorder() as smtp:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_ALERTS",
            json.dumps(
                {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                 "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"}}
            ),
        )  # fmt: skip
        yield smtp


def _slack_texts(recorder) -> list[str]:
    return [r.json()["text"] for r in recorder.requests if r.method == "POST" and r.path.startswith("/services/")]


@pytest.mark.integration
def test_a_task_failing_after_its_retry_alerts_once_with_what_on_call_needs(
    dagbag, alert_env, one_fast_retry, smtp_alerts, monkeypatch
):
    smtp = smtp_alerts
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS", "oncall@example.com, data@example.com")
    one_fast_retry("cache_refresh")
    run = run_dag(dagbag, "cache_refresh", expect="failed", partition="2026-11-01T00:15")
    texts = _slack_texts(alert_env)
    assert len(texts) == 1, f"one alert for a task that failed twice (try 1 and its retry): {texts}"
    text = texts[0]
    assert "Task failed: cache_refresh.refresh_cache" in text
    assert f"run {run.run_id}" in text
    assert "partition 2026-11-01T00:15" in text
    assert "try 2" in text, "the alert is sent after the last try, not the first"
    assert re.search(r"log http\S+dag_id=cache_refresh|log http\S+/cache_refresh/", text), text
    assert "error: " in text
    assert "see the log" not in text, "the exception is quoted"
    assert "docs/runbook.md#cache_refresh" in text
    assert "docs/runbook.md#alert-task-failed" in text
    (mail,) = smtp.messages
    assert sorted(mail.recipients) == ["data@example.com", "oncall@example.com"]
    assert "Task failed: cache_refresh.refresh_cache" in mail.text()
    assert f"run {run.run_id}" in mail.text()


@pytest.mark.integration
def test_without_alert_emails_no_mail_is_attempted(dagbag, alert_env, one_fast_retry, smtp_alerts, monkeypatch):
    # a working SMTP connection (smtp_alerts): only the missing variable keeps mail away
    one_fast_retry("cache_refresh")
    monkeypatch.delenv("AIRFLOW_VAR_ALERT_EMAILS", raising=False)
    run_dag(dagbag, "cache_refresh", expect="failed", partition="2026-11-01T00:30")
    assert len(_slack_texts(alert_env)) == 1
    assert smtp_alerts.messages == []


@pytest.mark.integration
def test_a_critical_run_pages_pagerduty_once_however_many_tasks_fail(
    dagbag, alert_env, pagerduty_server, one_fast_retry
):
    one_fast_retry("hourly_incremental_sync")
    run = run_dag(dagbag, "hourly_incremental_sync", expect="failed", partition="2026-11-01T05:00")
    failed = [ti.task_id for ti in run.get_task_instances() if ti.state == "failed"]
    assert len(failed) >= 2, f"several sync tasks fail against a closed app_db: {failed}"
    assert len(_slack_texts(alert_env)) == len(failed), "Slack: one post per failed task"
    events = [r.json() for r in pagerduty_server.requests if r.path == "/v2/enqueue"]
    assert len(events) == 1, f"PagerDuty: one event per failed run, not per task or try: {events}"
    (event,) = events
    assert event["routing_key"] == "R0UTINGKEY"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == f"hourly_incremental_sync/{run.run_id}"
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"].startswith("Airflow DAG run failed: hourly_incremental_sync (hourly_incremental_sync.")
    assert "partition 2026-11-01T05:00" in payload["custom_details"]["details"]
    assert payload["custom_details"]["runbook"].endswith("docs/runbook.md#hourly_incremental_sync")


@pytest.mark.integration
def test_a_non_critical_run_never_pages(dagbag, alert_env, pagerduty_server, one_fast_retry):
    one_fast_retry("cache_refresh")
    run_dag(dagbag, "cache_refresh", expect="failed", partition="2026-11-01T00:45")
    assert [r for r in pagerduty_server.requests if r.path == "/v2/enqueue"] == []


@pytest.mark.unit
def test_every_alert_links_to_an_entry_of_the_runbook(dagbag):
    from acme_pipelines.alert_config import ALERT_ANCHORS

    anchors = set(re.findall(r'<a id="([^"]+)"></a>', RUNBOOK))
    missing = ({*ALERT_ANCHORS.values(), *dagbag.dags} - anchors) or None
    assert missing is None, f"docs/runbook.md lacks entries for {missing}"


# -- deadlines ------------------------------------------------------------------------


def _serialize(dag_id: str) -> None:
    """Parse the DAG file into the metadata DB, as the dag-processor does (this writes its deadline alerts)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    folder = ROOT / "dags"
    DagBundlesManager().sync_bundles_to_db()
    bag = BundleDagBag(dag_folder=folder / f"{dag_id}.py", bundle_path=folder, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)


def _missed_deadlines_fire() -> list[object]:
    """What the scheduler does for expired deadlines, then what the triggerer does with their callbacks."""
    import asyncio

    from airflow.models.callback import TriggererCallback
    from airflow.models.deadline import Deadline
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:  # scheduler_job_runner: expired, not yet missed -> handle_miss
        expired = select(Deadline).where(Deadline.deadline_time < datetime.now(UTC)).where(~Deadline.missed)
        for deadline in session.scalars(expired):
            deadline.handle_miss(session)
    outcomes = []
    with create_session() as session:  # the triggerer runs each queued callback's trigger
        for callback in session.scalars(select(TriggererCallback).where(TriggererCallback.state == "queued")):
            trigger = CallbackTrigger(**callback.trigger.kwargs)

            async def drain(trigger: CallbackTrigger = trigger) -> list:
                return [event async for event in trigger.run()]

            for event in asyncio.run(drain()):
                callback.handle_event(event, session)
            outcomes.append((callback.state, callback.output))
    return outcomes


@pytest.mark.integration
def test_a_missed_deadline_fires_its_callback_once(alert_env, pagerduty_server):
    """daily_etl's run for 2026-11-01 was due by 2026-11-02 04:00; it is still running: Slack and PagerDuty hear."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    _serialize("daily_etl")
    start = datetime(2026, 11, 1, 2, tzinfo=UTC)  # the window 2026-11-01 02:00 .. 2026-11-02 02:00
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag("daily_etl", session=session)
        run = dag.create_dagrun(
            run_id="scheduled__deadline_probe",
            logical_date=start,
            data_interval=(start, start + timedelta(days=1)),
            run_after=start + timedelta(days=1),
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            session=session,
        )
        session.flush()
        from airflow.models.deadline import Deadline

        (deadline,) = [d for d in session.query(Deadline).filter(Deadline.dagrun_id == run.id)]
        assert deadline.deadline_time == datetime(2026, 11, 2, 4, tzinfo=UTC), "04:00 the day after the window"

    outcomes = _missed_deadlines_fire()
    assert outcomes == [("success", "sent: slack,pagerduty")]
    (text,) = _slack_texts(alert_env)
    assert text.startswith(":alarm_clock: Deadline missed: daily_etl done by 04:00 UTC")
    assert "run scheduled__deadline_probe" in text
    assert "due 2026-11-02 04:00:00+00:00" in text
    assert "docs/runbook.md#alert-deadline-missed" in text
    (event,) = [r.json() for r in pagerduty_server.requests if r.path == "/v2/enqueue"]
    assert event["dedup_key"] == "daily_etl/scheduled__deadline_probe/deadline"
    assert _missed_deadlines_fire() == [], "a deadline fires once"

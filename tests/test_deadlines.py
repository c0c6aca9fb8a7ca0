"""A missed deadline alerts only for the runs it is meant for: scheduled runs, not backfills or manual runs.

The decision (``deadlines.skip_reason``) is tested on the ``context["dag_run"]`` the scheduler
builds (Airflow 3.3: the REST API's DAGRunResponse). End to end, a scheduled run, a backfill of
three old days (``airflow backfill create``'s own code) and a manual run of a past day of
daily_etl all miss their deadlines; the scheduler's and the triggerer's steps run as in
tests/test_alerts.py, the callback posts to a local Slack stand-in: once, for the scheduled run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from acme_pipelines import deadlines
from acme_pipelines.deadlines import skip_reason

SCHEDULED = {
    "dag_run_id": "scheduled__2026-11-01T02:00:00+00:00",
    "dag_id": "daily_etl",
    "run_type": "scheduled",
    "triggered_by": "timetable",
    "state": "running",
    "conf": {},
}


# -- the decision ---------------------------------------------------------------------------


@pytest.mark.unit
def test_a_scheduled_run_alerts():
    assert skip_reason(SCHEDULED) is None
    assert skip_reason({**SCHEDULED, "clear_number": 0}) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (
            {"dag_run_id": "backfill__2026-10-01T02:00:00+00:00", "run_type": "backfill", "triggered_by": "backfill"},
            "backfill run backfill__2026-10-01T02:00:00+00:00, not a scheduled one",
        ),
        (  # a backfill that re-ran a day which had a scheduled run: Airflow keeps the run id, changes the type
            {**SCHEDULED, "run_type": "backfill", "triggered_by": "backfill"},
            "backfill run scheduled__2026-11-01T02:00:00+00:00, not a scheduled one",
        ),
        (
            {"dag_run_id": "manual__2026-11-20T09:12:03+00:00", "run_type": "manual", "triggered_by": "ui"},
            "manual run manual__2026-11-20T09:12:03+00:00, not a scheduled one",
        ),
        (
            {"dag_run_id": "partition__2026-11-01", "run_type": "operator_triggered", "triggered_by": "operator"},
            "operator_triggered run partition__2026-11-01, not a scheduled one",
        ),
        (  # where the context says the scheduled run was cleared (Airflow 3.3 does not send clear_number)
            {**SCHEDULED, "clear_number": 2},
            "scheduled run scheduled__2026-11-01T02:00:00+00:00 was re-run (cleared 2x)",
        ),
    ],
    ids=["backfill", "backfill-of-a-scheduled-day", "manual", "triggered", "cleared"],
)
def test_other_runs_do_not_alert(run, reason):
    assert skip_reason(run) == reason


@pytest.mark.unit
@pytest.mark.parametrize(
    ("run_id", "alerts"),
    [("scheduled__2026-11-01T02:00:00+00:00", True), ("backfill__2026-11-01T02:00:00+00:00", False),
     ("manual__2026-11-01T02:00:00+00:00", False), ("my-own-run-id", False)],
)  # fmt: skip
def test_without_run_type_the_run_id_decides(run_id, alerts):
    assert (skip_reason({"dag_run_id": run_id}) is None) == alerts


@pytest.mark.unit
def test_a_skipped_miss_logs_one_line_and_returns_why(monkeypatch):
    """No Slack connection is defined here: a skip must not reach for one."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("acme_pipelines.deadlines")  # its own handler: Airflow's logging setup varies
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(handler)
    try:
        run = {"dag_run_id": "backfill__2026-10-01T02:00:00+00:00", "run_type": "backfill"}
        outcome = asyncio.run(
            deadlines.deadline_missed("daily_etl", "done by 04:00 UTC", True, context={"dag_run": run})
        )
    finally:
        logger.removeHandler(handler)
    assert outcome == "skipped: backfill run backfill__2026-10-01T02:00:00+00:00, not a scheduled one"
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (
            logging.INFO,
            "daily_etl missed its deadline (done by 04:00 UTC), no alert: "
            "backfill run backfill__2026-10-01T02:00:00+00:00, not a scheduled one",
        )
    ]


@pytest.mark.integration
def test_without_alert_connections_a_scheduled_miss_is_logged_not_raised(monkeypatch, airflow_db):
    """A laptop or CI: no slack_alerts, no pagerduty_events. Both channels are off; nothing raises."""
    from acme_pipelines import alert_config

    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_PAGERDUTY_EVENTS", raising=False)
    assert alert_config.paging_off_reason() == "no connection pagerduty_events"
    assert alert_config.slack_enabled() is False
    outcome = asyncio.run(
        deadlines.deadline_missed("daily_etl", "done by 04:00 UTC", True, context={"dag_run": SCHEDULED})
    )
    assert outcome == "sent: nothing (no alert channel here)"
    monkeypatch.setenv(
        "AIRFLOW_CONN_PAGERDUTY_EVENTS", json.dumps({"conn_type": "pagerduty_events", "password": "disabled-x"})
    )
    assert alert_config.paging_off_reason() == "the routing key of pagerduty_events starts with 'disabled'"


# -- end to end: scheduler, triggerer, callback, Slack --------------------------------------


def _fire_missed_deadlines(run_ids: set[str]) -> dict[str, tuple[str, str]]:
    """What the scheduler does with the expired deadlines of these runs, then the triggerer with their
    callbacks (as tests/test_alerts.py); {run_id: (callback state, callback output)}."""
    from airflow.models import DagRun
    from airflow.models.callback import TriggererCallback
    from airflow.models.deadline import Deadline
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        expired = (
            select(Deadline)
            .join(DagRun, DagRun.id == Deadline.dagrun_id)
            .where(DagRun.run_id.in_(run_ids), Deadline.deadline_time < datetime.now(UTC), ~Deadline.missed)
        )
        queued = []
        for deadline in session.scalars(expired):
            deadline.handle_miss(session)
            queued.append((deadline.dagrun.run_id, deadline.callback.id))
    outcomes = {}
    with create_session() as session:
        for run_id, callback_id in queued:
            callback = session.get(TriggererCallback, callback_id)
            trigger = CallbackTrigger(**callback.trigger.kwargs)

            async def drain(trigger: CallbackTrigger = trigger) -> list:
                return [event async for event in trigger.run()]

            for event in asyncio.run(drain()):
                callback.handle_event(event, session)
            outcomes[run_id] = (callback.state, callback.output)
    return outcomes


@pytest.fixture
def slack_only(monkeypatch, airflow_db, http_recorder):
    """Slack at a local recorder; no PagerDuty connection (paging off, as on a laptop)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": f"{http_recorder.url}/services", "password": "T/DL/X"}),
    )
    monkeypatch.delenv("AIRFLOW_CONN_PAGERDUTY_EVENTS", raising=False)
    return http_recorder


@pytest.mark.integration
def test_only_the_scheduled_run_posts_its_missed_deadline(slack_only):
    from airflow.models import DagRun
    from airflow.models.backfill import Backfill, _create_backfill
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    from test_alerts import _serialize

    _serialize("daily_etl")
    day = timedelta(days=1)

    def window(start: datetime) -> dict:
        return {"logical_date": start, "data_interval": (start, start + day), "run_after": start + day}

    scheduled_at, manual_at = datetime(2026, 9, 1, 2, tzinfo=UTC), datetime(2026, 9, 9, 2, tzinfo=UTC)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag("daily_etl", session=session)
        dag.create_dagrun(
            run_id="scheduled__2026-09-01T02:00:00+00:00", run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE, state=DagRunState.RUNNING, session=session,
            **window(scheduled_at),
        )  # fmt: skip
        dag.create_dagrun(  # someone reruns a past day by hand (the UI's Trigger with a logical date)
            run_id="manual__2026-09-09T02:00:00+00:00", run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.UI, state=DagRunState.QUEUED, session=session,
            conf={"partition": "2026-09-09"}, **window(manual_at),
        )  # fmt: skip
    backfill = _create_backfill(  # what `airflow backfill create --from-date ... --to-date ...` does
        dag_id="daily_etl",
        from_date=datetime(2026, 9, 3, tzinfo=UTC),
        to_date=datetime(2026, 9, 5, 2, tzinfo=UTC),
        max_active_runs=3,
        reverse=False,
        dag_run_conf=None,
        triggering_user_name="test",
    )
    with create_session() as session:
        backfilled = set(session.scalars(select(DagRun.run_id).where(DagRun.backfill_id == backfill.id)))
        session.get(Backfill, backfill.id).completed_at = datetime.now(UTC)  # one backfill per DAG at a time
    assert len(backfilled) == 3, backfilled
    runs = {"scheduled__2026-09-01T02:00:00+00:00", "manual__2026-09-09T02:00:00+00:00", *backfilled}

    outcomes = _fire_missed_deadlines(runs)
    assert set(outcomes) == runs, "every run missed its deadline (all of them long past)"
    assert outcomes.pop("scheduled__2026-09-01T02:00:00+00:00") == ("success", "sent: slack")
    for run_id, (state, output) in outcomes.items():
        kind = "manual" if run_id.startswith("manual__") else "backfill"
        assert (state, output) == ("success", f"skipped: {kind} run {run_id}, not a scheduled one")
    posts = [r.json()["text"] for r in slack_only.requests if r.method == "POST"]
    assert len(posts) == 1, posts
    assert posts[0].startswith(":alarm_clock: Deadline missed: daily_etl done by 04:00 UTC\n")
    assert "run scheduled__2026-09-01T02:00:00+00:00 |" in posts[0]
    assert _fire_missed_deadlines(runs) == {}, "each fires once"

"""Deadline Alerts (Airflow 3's replacement for SLAs): when a run must be done, and the alert if it is not.

Each deadline is "N minutes after the run's data window ends": ``daily_etl``
(window ends 02:00) by 04:00, ``daily_reports`` (06:00) by 07:00,
``hourly_incremental_sync`` 30 minutes after its hour. The thresholds live in
``DEADLINES`` and can be changed per environment without touching a DAG:
``ACME_DEADLINE_MINUTES_<DAG_ID>`` (e.g. ``ACME_DEADLINE_MINUTES_DAILY_ETL=150``).

For a data-interval timetable a run's logical date is its window's start, so
the deadline is ``logical date + window length + threshold``. When the time
passes and the run has not succeeded, the scheduler hands ``deadline_missed``
to the triggerer: one Slack post (and a PagerDuty page for critical DAGs,
deduplicated per run), and the ``acme.pipeline.deadline_missed`` metric.

Only the runs a deadline is meant for alert: scheduled runs, as the schedule
made them (``skip_reason``). Airflow gives every run with a logical date a
deadline, so a backfill of 14 old days, or a manual run of a past day, would
otherwise post 14 (or one) alerts at once for deadlines that passed long
before the run existed. Such a miss logs one info line and returns
``"skipped: <reason>"``; it is still counted in ``acme.pipeline.deadline_missed``
(the scheduler counts it too), not in ``alerts_sent``.

What the callback knows of the run is what the scheduler put in
``context["dag_run"]`` (Airflow 3.3: the REST API's ``DAGRunResponse``:
``dag_run_id``, ``run_type``, ``triggered_by``, ``state``, ``conf``, the dates;
no ``clear_number``, and the triggerer serves no ``GetDagRun`` to ask for it).
``run_type`` decides: a backfill that re-runs a day which had a scheduled run
sets the run's type to ``backfill`` while its run id stays ``scheduled__...``,
so the run id prefix is only a fallback for a context without ``run_type``. A
cleared scheduled run skips when the context says so (``clear_number`` > 0, a
field 3.3 does not send). Without it, Airflow's own bookkeeping keeps a re-run
of a past day quiet: a clear neither recreates nor moves a logical-date
deadline, a successful run's deadline is deleted, and a missed one fires once.
What remains is a run cleared before its own deadline and still not done when
it passes: that alerts, and the data is late.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadlineSetting:
    after_window_end: timedelta
    description: str  # what the on-call engineer reads in the alert


DEADLINES: dict[str, DeadlineSetting] = {
    "daily_etl": DeadlineSetting(timedelta(hours=2), "done by 04:00 UTC"),
    "daily_reports": DeadlineSetting(timedelta(hours=1), "done by 07:00 UTC"),
    "hourly_incremental_sync": DeadlineSetting(timedelta(minutes=30), "done within 30 minutes of its window"),
}


def threshold(dag_id: str) -> DeadlineSetting | None:
    """The DAG's deadline setting, with the environment's override applied."""
    setting = DEADLINES.get(dag_id)
    override = os.environ.get(f"ACME_DEADLINE_MINUTES_{dag_id.upper()}")
    if setting is None or not override:
        return setting
    minutes = int(override)
    return DeadlineSetting(timedelta(minutes=minutes), f"done within {minutes} minutes of its window")


def window_length(cron: str) -> timedelta:
    """The length of one data window of a cron schedule (the gap between two consecutive ticks)."""
    from croniter import croniter

    ticks = croniter(cron, datetime(2026, 1, 5, tzinfo=UTC))  # a Monday at midnight: any fixed start
    first = ticks.get_next(datetime)
    return ticks.get_next(datetime) - first


def deadline_alert(dag_id: str, cron: str, *, critical: bool) -> Any:
    """The ``DeadlineAlert`` of ``dag_id`` (None if it has no deadline)."""
    setting = threshold(dag_id)
    if setting is None:
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=window_length(cron) + setting.after_window_end,
        callback=AsyncCallback(
            deadline_missed,
            kwargs={"dag_id": dag_id, "deadline": setting.description, "critical": critical},
        ),
        name=f"{dag_id} {setting.description}",
    )


SCHEDULED = "scheduled"


def run_id_of(run: dict) -> str:
    return run.get("dag_run_id") or run.get("run_id") or "?"


def skip_reason(run: dict) -> str | None:
    """Why a missed deadline of ``run`` (the callback's ``context["dag_run"]``) must not alert; None if it must.

    It alerts for a scheduled run that was not re-run; not for a backfill, a
    manual run (of a past day or not), a run triggered by an operator or an
    asset, or a scheduled run that was cleared (where the context says so).
    """
    run_id = run_id_of(run)
    if not (run_type := run.get("run_type")):  # a context without run_type: Airflow's rule for the run id's prefix
        from airflow.utils.types import DagRunType

        run_type = DagRunType.from_run_id(run_id).value
    if run_type != SCHEDULED:
        return f"{run_type} run {run_id}, not a scheduled one"
    if clears := run.get("clear_number"):
        return f"scheduled run {run_id} was re-run (cleared {clears}x)"
    return None


async def deadline_missed(dag_id: str, deadline: str, critical: bool, context: dict | None = None) -> str:
    """The callback the triggerer runs when a run misses its deadline (Airflow passes ``context``).

    Returns what it did: ``"sent: slack,pagerduty"`` or ``"skipped: <reason>"`` (the callback's output).
    """
    run = dict((context or {}).get("dag_run") or {})
    due = (context or {}).get("deadline", {}).get("deadline_time")
    if reason := skip_reason(run):
        await asyncio.to_thread(count_deadline_missed, dag_id, deadline)
        log.info("%s missed its deadline (%s), no alert: %s", dag_id, deadline, reason)
        return f"skipped: {reason}"
    sent = await asyncio.to_thread(notify_deadline_missed, dag_id, deadline, critical, run, due)
    return "sent: " + (",".join(sent) or "nothing (no alert channel here)")


def count_deadline_missed(dag_id: str, deadline: str) -> None:
    from acme_pipelines.metrics import emit_count

    emit_count("deadline_missed", 1, dag_id=dag_id, deadline=deadline)


def notify_deadline_missed(dag_id: str, deadline: str, critical: bool, run: dict, due: Any) -> list[str]:
    """Post the missed deadline to Slack (and PagerDuty if critical); returns the channels used."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    from acme_pipelines.alert_channels import page
    from acme_pipelines.alert_config import ALERT_ANCHORS, SLACK_CONN_ID, runbook_url, slack_enabled
    from acme_pipelines.metrics import emit_count

    run_id = run_id_of(run)
    runbook = runbook_url()
    text = (
        f":alarm_clock: Deadline missed: {dag_id} {deadline}\n"
        f"run {run_id} | window {run.get('data_interval_start')} to {run.get('data_interval_end')} "
        f"| due {due} | state {run.get('state')} | partition {(run.get('conf') or {}).get('partition') or '-'}\n"
        f"runbook: {runbook}#{dag_id} (then {runbook}#{ALERT_ANCHORS['deadline_missed']})"
    )
    sent = []
    if slack_enabled(SLACK_CONN_ID):
        SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send(text=text)
        sent.append("slack")
    if critical and page(
        summary=f"Deadline missed: {dag_id} {deadline} (run {run_id})",
        dedup_key=f"{dag_id}/{run_id}/deadline",
        details={"text": text, "runbook": f"{runbook}#{ALERT_ANCHORS['deadline_missed']}"},
    ):
        sent.append("pagerduty")
    count_deadline_missed(dag_id, deadline)
    for channel in sent:
        emit_count("alerts_sent", 1, dag_id=dag_id, channel=channel, alert="deadline_missed")
    log.warning("%s run %s missed its deadline (%s); alerted via %s", dag_id, run_id, deadline, sent)
    return sent

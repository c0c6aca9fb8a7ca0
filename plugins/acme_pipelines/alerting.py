"""Alerts: Slack for every failed task, PagerDuty for critical DAGs, email where configured.

Slack and email are every task's ``on_failure_callback`` (through
``dag_defaults``), so they fire once per task that fails for good, not on
each retry (retries go through ``on_retry_callback``, which is not wired).
PagerDuty is the critical DAGs' run-level ``on_failure_callback``: one event
per failed run, however many of its tasks fail, deduplicated on
``<dag_id>/<run_id>``. Every alert names DAG, task, run, partition,
try number, the log, and its runbook entry (``docs/runbook.md``).
Connection ids are fixed names; what they point at is per environment.
Where a channel's connection is not defined (a laptop, CI), that channel is
off: one info line says so ("PagerDuty off: no connection pagerduty_events")
and nothing raises, so a failing run's callbacks never fail themselves.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from acme_pipelines.alert_config import ALERT_ANCHORS, PAGERDUTY_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID, runbook_link

# Rendered with the task context by the notifier (its fields are templated).
_WHAT = "{{ dag.dag_id }}.{{ ti.task_id }}"
_WHERE = (
    "run {{ run_id }} | partition {{ params.partition or data_interval_start }} "
    "| try {{ ti.try_number }} | log {{ ti.log_url }}"
)
_ERROR = "{{ (exception | string)[:300] if exception else 'see the log' }}"
FAILURE_TEXT = (
    f":red_circle: Task failed: {_WHAT}\n{_WHERE}\nerror: {_ERROR}\n"
    f"runbook: {runbook_link('{{ dag.dag_id }}')} (then {runbook_link(ALERT_ANCHORS['task_failed'])})"
)


class ChannelNotifier(BaseNotifier):
    """An alert channel's notifier (``alert_channels``), imported and built when an alert goes out.

    A DAG file declares its failure callbacks when it is parsed: by the dag-processor every
    refresh, and by every task's process before it runs. Importing the Slack, PagerDuty and
    SMTP providers there cost about 0.9 s per parse of any DAG file (``python -X importtime``);
    this class names the notifier instead, and a fresh one renders each alert.
    """

    template_fields = ()

    def __init__(self, notifier: str, **kwargs: Any) -> None:
        super().__init__()
        self.notifier, self.kwargs = notifier, kwargs

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render here: the channel's notifier renders its own fields."""

    def notifier_class(self) -> type[BaseNotifier]:
        from acme_pipelines import alert_channels

        return getattr(alert_channels, self.notifier)

    def notify(self, context: Any) -> None:
        self.notifier_class()(**self.kwargs)(context)


def failure_notifiers() -> list[BaseNotifier]:
    """Every task's failure callbacks: Slack, and email where configured."""
    return [
        ChannelNotifier("CountedSlackNotifier", slack_webhook_conn_id=SLACK_CONN_ID, text=FAILURE_TEXT),
        ChannelNotifier(
            "ConfiguredEmailNotifier",
            from_email=None,
            to="",  # set from the alert_emails variable at send time
            smtp_conn_id=SMTP_CONN_ID,
            subject=f"[airflow] Task failed: {_WHAT}",
            html_content=FAILURE_TEXT.replace("\n", "<br>\n"),
        ),
    ]


def run_failure_notifiers(*, critical: bool) -> list[BaseNotifier]:
    """A DAG's run-level failure callbacks: a critical DAG pages PagerDuty once per failed run.

    Run level, not task level: three failed tasks of one run are one page
    (``ti`` is the task that failed last), and retries never page.
    """
    if not critical:
        return []
    return [
        ChannelNotifier(
            "EnvironmentPagerdutyNotifier",
            pagerduty_events_conn_id=PAGERDUTY_CONN_ID,
            summary=f"Airflow DAG run failed: {{{{ dag.dag_id }}}} ({_WHAT} failed)",
            severity="critical",
            source="airflow",
            # One incident per DAG run, whatever else sends for it.
            dedup_key="{{ dag.dag_id }}/{{ run_id }}",
            custom_details={"details": _WHERE, "runbook": runbook_link("{{ dag.dag_id }}")},
        )
    ]

"""Failure notifiers: Slack for every DAG, PagerDuty for the critical ones.

Notifiers are attached as ``on_failure_callback`` on every task (through
``dag_defaults``), so they fire once per task that fails for good, not on
each retry (retries go through ``on_retry_callback``, which is not wired).
Connection ids are fixed names; what they point at is per environment.
"""

from __future__ import annotations

from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import BaseHook, BaseNotifier

SLACK_CONN_ID = "slack_alerts"
PAGERDUTY_CONN_ID = "pagerduty_events"

# Rendered with the task context by the notifier (its fields are templated).
_WHAT = "{{ dag.dag_id }}.{{ ti.task_id }}"
_WHERE = (
    "run {{ run_id }} | partition {{ params.partition or data_interval_start }} "
    "| try {{ ti.try_number }} | log {{ ti.log_url }}"
)
FAILURE_TEXT = f":red_circle: Task failed: {_WHAT}\n{_WHERE}"


DISABLED_PREFIX = "disabled"


class EnvironmentPagerdutyNotifier(PagerdutyNotifier):
    """PagerDuty, unless this environment's routing key starts with ``disabled``.

    Local development and CI have no PagerDuty to reach (the events client's
    address is fixed), so their ``pagerduty_events`` connection says so
    instead of every failure spending its retries on an unreachable API.
    """

    def notify(self, context: dict) -> None:
        if not pagerduty_enabled(self.pagerduty_events_conn_id):
            self.log.info("PagerDuty disabled here (routing key starts with %r): not paging", DISABLED_PREFIX)
            return
        super().notify(context)


def pagerduty_enabled(conn_id: str = PAGERDUTY_CONN_ID) -> bool:
    """False where the connection's routing key says ``disabled...`` (local development, CI)."""
    key = BaseHook.get_connection(conn_id).password or ""
    return not key.startswith(DISABLED_PREFIX)


def failure_notifiers(*, critical: bool) -> list[BaseNotifier]:
    """The failure callbacks for a DAG; ``critical`` adds a PagerDuty page."""
    notifiers: list[BaseNotifier] = [
        SlackWebhookNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=FAILURE_TEXT),
    ]
    if critical:
        notifiers.append(
            EnvironmentPagerdutyNotifier(
                pagerduty_events_conn_id=PAGERDUTY_CONN_ID,
                summary=f"Airflow task failed: {_WHAT}",
                severity="critical",
                source="airflow",
                # One incident per DAG run, however many tasks of it fail.
                dedup_key="{{ dag.dag_id }}/{{ run_id }}",
                custom_details={"details": _WHERE},
            )
        )
    return notifiers

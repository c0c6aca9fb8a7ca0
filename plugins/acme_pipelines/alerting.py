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

import logging
from typing import Any

from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data
from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

log = logging.getLogger(__name__)

SLACK_CONN_ID = "slack_alerts"
PAGERDUTY_CONN_ID = "pagerduty_events"
SMTP_CONN_ID = "smtp_alerts"
# Variable: comma-separated addresses; empty or unset = no email.
ALERT_EMAILS_VARIABLE = "alert_emails"
# Variable: where docs/runbook.md is served (the repository's web view in production).
RUNBOOK_VARIABLE = "runbook_url"
DEFAULT_RUNBOOK_URL = "docs/runbook.md"

# Runbook anchors: one per DAG (``#<dag_id>``) and one per kind of alert.
ALERT_ANCHORS = {
    "task_failed": "alert-task-failed",
    "deadline_missed": "alert-deadline-missed",
    "anomaly": "alert-anomaly",
}


def runbook_url() -> str:
    """The runbook's address here (outside a task's templates: callbacks, tools)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(RUNBOOK_VARIABLE, default=DEFAULT_RUNBOOK_URL) or DEFAULT_RUNBOOK_URL
    except Exception:  # no metadata DB / API reachable: the alert still goes out
        return DEFAULT_RUNBOOK_URL


def runbook_link(anchor: str) -> str:
    """A templated link to a runbook entry (rendered by the notifier with the task context)."""
    return f"{{{{ var.value.get('{RUNBOOK_VARIABLE}', '{DEFAULT_RUNBOOK_URL}') }}}}#{anchor}"


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


DISABLED_PREFIX = "disabled"


class EventsApiHook(PagerdutyEventsHook):
    """PagerDuty Events API v2, at the connection's host if it has one.

    The provider's hook always posts to events.pagerduty.com; accounts in the
    EU service region need events.eu.pagerduty.com, and tests a local server.
    The client library takes a base URL; this passes the connection's host.
    """

    def __init__(self, pagerduty_events_conn_id: str = PAGERDUTY_CONN_ID, **kwargs: Any) -> None:
        super().__init__(pagerduty_events_conn_id=pagerduty_events_conn_id, **kwargs)
        host = self.get_connection(pagerduty_events_conn_id).host if pagerduty_events_conn_id else None
        self.base_url = host.rstrip("/") if host else None

    def send_event(self, **event: Any) -> str:  # type: ignore[override]
        import pagerduty

        client = pagerduty.EventsApiV2Client(self.integration_key, base_url=self.base_url)
        return client.send_event(**prepare_event_data(**event))


class _RendersEachCall:
    """Render a notifier's templates afresh on every call, with a fresh hook.

    BaseNotifier renders its templated fields in place, irreversibly, and
    caches its hook; one notifier object serves every run of its DAG in a
    long-lived process (``dag.test``, a test session), so the second alert
    would repeat the first one's text. Under ``dag.test`` a run-level callback
    also gets the serialized DAG, which has no Jinja environment of its own.
    """

    template_fields: Any

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        import copy

        if "_templates" not in self.__dict__:
            self._templates = {name: copy.deepcopy(getattr(self, name)) for name in self.template_fields}
        for name, template in self._templates.items():
            setattr(self, name, copy.deepcopy(template))
        self.__dict__.pop("hook", None)  # a cached_property: the connection may have changed
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]

    def get_template_env(self, dag: Any = None) -> Any:
        if dag is not None and not hasattr(dag, "get_template_env"):  # dag.test(): the serialized DAG
            dag = None
        return super().get_template_env(dag=dag)  # type: ignore[misc]


def _count_alert(context: dict, channel: str) -> None:
    from acme_pipelines.metrics import emit_count

    dag = context.get("dag")
    emit_count("alerts_sent", 1, dag_id=getattr(dag, "dag_id", "?"), channel=channel, alert="task_failed")


class CountedSlackNotifier(_RendersEachCall, SlackWebhookNotifier):
    """The provider's Slack webhook notifier, counted in ``acme.pipeline.alerts_sent``; off without its connection."""

    def notify(self, context: dict) -> None:
        if not slack_enabled(self.slack_webhook_conn_id, self.log):
            return
        super().notify(context)
        _count_alert(context, "slack")


class EnvironmentPagerdutyNotifier(_RendersEachCall, PagerdutyNotifier):
    """PagerDuty through ``EventsApiHook``, unless paging is off here (``paging_off_reason``).

    Local development and CI have no PagerDuty to reach, so their
    ``pagerduty_events`` connection says so (or is not defined) instead of
    every failure spending its retries on an unreachable API.
    """

    @property
    def hook(self) -> EventsApiHook:  # type: ignore[override]
        return EventsApiHook(pagerduty_events_conn_id=self.pagerduty_events_conn_id)

    def notify(self, context: dict) -> None:
        if not pagerduty_enabled(self.pagerduty_events_conn_id, self.log):
            return
        super().notify(context)
        _count_alert(context, "pagerduty")


class ConfiguredEmailNotifier(_RendersEachCall, SmtpNotifier):
    """Email through the ``smtp_alerts`` connection to the ``alert_emails`` variable's addresses, if set.

    Where the variable is empty or missing, nothing is sent and nothing fails:
    email is opt-in per environment.
    """

    def notify(self, context: dict) -> None:
        from airflow.sdk import Variable

        to = [a.strip() for a in (Variable.get(ALERT_EMAILS_VARIABLE, default="") or "").split(",") if a.strip()]
        if not to:
            self.log.info("no %s variable here: not emailing", ALERT_EMAILS_VARIABLE)
            return
        self.to = to
        super().notify(context)
        _count_alert(context, "email")


def connection_defined(conn_id: str) -> bool:
    """True if ``conn_id`` is defined here (environment, secrets backend or metadata DB)."""
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def paging_off_reason(conn_id: str = PAGERDUTY_CONN_ID) -> str | None:
    """Why PagerDuty is off here (no connection; a routing key ``disabled...``), or None where it pages."""
    try:
        key = BaseHook.get_connection(conn_id).password or ""
    except AirflowNotFoundException:
        return f"no connection {conn_id}"
    if key.startswith(DISABLED_PREFIX):
        return f"the routing key of {conn_id} starts with {DISABLED_PREFIX!r}"
    return None


def pagerduty_enabled(conn_id: str = PAGERDUTY_CONN_ID, logger: Any = None) -> bool:
    """False where paging is off here (local development, CI); then logs one info line saying why."""
    reason = paging_off_reason(conn_id)
    if reason:
        (logger or log).info("PagerDuty off: %s", reason)
    return reason is None


def slack_enabled(conn_id: str = SLACK_CONN_ID, logger: Any = None) -> bool:
    """False where the Slack connection ``conn_id`` is not defined here; then logs one info line."""
    if connection_defined(conn_id):
        return True
    (logger or log).info("Slack off: no connection %s", conn_id)
    return False


def page(*, summary: str, dedup_key: str, details: dict[str, Any], severity: str = "critical") -> bool:
    """Trigger one PagerDuty event (deduplicated on ``dedup_key``); False where paging is off."""
    if not pagerduty_enabled(PAGERDUTY_CONN_ID):
        return False
    EventsApiHook(pagerduty_events_conn_id=PAGERDUTY_CONN_ID).send_event(
        summary=summary, severity=severity, source="airflow", dedup_key=dedup_key, custom_details=details
    )
    return True


def failure_notifiers() -> list[BaseNotifier]:
    """Every task's failure callbacks: Slack, and email where configured."""
    return [
        CountedSlackNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=FAILURE_TEXT),
        ConfiguredEmailNotifier(
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
        EnvironmentPagerdutyNotifier(
            pagerduty_events_conn_id=PAGERDUTY_CONN_ID,
            summary=f"Airflow DAG run failed: {{{{ dag.dag_id }}}} ({_WHAT} failed)",
            severity="critical",
            source="airflow",
            # One incident per DAG run, whatever else sends for it.
            dedup_key="{{ dag.dag_id }}/{{ run_id }}",
            custom_details={"details": _WHERE, "runbook": runbook_link("{{ dag.dag_id }}")},
        )
    ]

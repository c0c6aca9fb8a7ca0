"""The alert channels' notifiers and the PagerDuty client: the providers' classes, adapted.

Imported when an alert goes out, not when a DAG file is parsed (``alerting.ChannelNotifier``).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data
from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from acme_pipelines.alert_config import (
    ALERT_EMAILS_VARIABLE,
    PAGERDUTY_CONN_ID,
    pagerduty_enabled,
    slack_enabled,
)


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


class _TemplatesOfAnyDag:
    """Render with the DAG's Jinja environment, or the default one where the DAG has none: under
    ``dag.test`` a run-level callback gets the serialized DAG. (Each alert builds its notifier afresh,
    ``alerting.ChannelNotifier``: the provider's in-place rendering and cached hook serve one alert.)"""

    def get_template_env(self, dag: Any = None) -> Any:
        if dag is not None and not hasattr(dag, "get_template_env"):
            dag = None
        return super().get_template_env(dag=dag)  # type: ignore[misc]


def _count_alert(context: dict, channel: str) -> None:
    from acme_pipelines.metrics import emit_count

    dag = context.get("dag")
    emit_count("alerts_sent", 1, dag_id=getattr(dag, "dag_id", "?"), channel=channel, alert="task_failed")


class CountedSlackNotifier(_TemplatesOfAnyDag, SlackWebhookNotifier):
    """The provider's Slack webhook notifier, counted in ``acme.pipeline.alerts_sent``; off without its connection."""

    def notify(self, context: dict) -> None:
        if not slack_enabled(self.slack_webhook_conn_id, self.log):
            return
        super().notify(context)
        _count_alert(context, "slack")


class EnvironmentPagerdutyNotifier(_TemplatesOfAnyDag, PagerdutyNotifier):
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


class ConfiguredEmailNotifier(_TemplatesOfAnyDag, SmtpNotifier):
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


def page(*, summary: str, dedup_key: str, details: dict[str, Any], severity: str = "critical") -> bool:
    """Trigger one PagerDuty event (deduplicated on ``dedup_key``); False where paging is off."""
    if not pagerduty_enabled(PAGERDUTY_CONN_ID):
        return False
    EventsApiHook(pagerduty_events_conn_id=PAGERDUTY_CONN_ID).send_event(
        summary=summary, severity=severity, source="airflow", dedup_key=dedup_key, custom_details=details
    )
    return True

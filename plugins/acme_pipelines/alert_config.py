"""Where alerts go here: the channels' connection ids and whether each is on, the runbook's links.

Connection ids are fixed names; what they point at is per environment. Where a channel's
connection is not defined (a laptop, CI), that channel is off: one info line says so
("PagerDuty off: no connection pagerduty_events") and nothing raises.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseHook
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


DISABLED_PREFIX = "disabled"


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

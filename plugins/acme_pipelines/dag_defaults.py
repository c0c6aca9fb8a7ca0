"""The one way a DAG of this project is declared.

``pipeline_dag`` fixes what every DAG must have (owner, tags, docs, retries
with exponential backoff, a timeout, failure alerts, the ``partition`` param)
so that no DAG file can forget one; the governance tests check the result.
Deadline Alerts come from ``deadlines.DEADLINES`` by DAG id.
Cron schedules become data-interval timetables in UTC, which is what
``partitions.resolve_partition`` expects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from acme_pipelines.alerting import failure_notifiers, run_failure_notifiers
from acme_pipelines.deadlines import deadline_alert
from acme_pipelines.partitions import END_PARAM_NAME, PARAM_NAME
from acme_pipelines.resources import Priority

OWNER = "data-platform"
# The first data interval any DAG may run for; catchup is off, so this only
# bounds backfills.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

# How often a task is retried is Airflow's [core] default_task_retries: compose, Helm and `make up` set 3,
# tools that should fail fast (make demo, the tests) 0. No task sets its own.
# Whether a new DAG starts paused is Airflow's [core] dags_are_paused_at_creation (default true), which
# compose, Helm and `make up` set to true: nothing runs until someone unpauses or triggers it.
# The first retry's delay is Airflow's [core] default_task_retry_delay (seconds; Airflow's default 300):
# compose, Helm and the local environment set 60, tests that wait for a retry set a few seconds.
RETRY_BACKOFF = 2.0  # then 2x, 4x ... that delay
MAX_RETRY_DELAY = timedelta(minutes=30)


def default_args(
    *,
    priority: Priority,
    execution_timeout: timedelta,
) -> dict[str, Any]:
    """Task defaults shared by every DAG."""
    return {
        "owner": OWNER,
        "retry_exponential_backoff": RETRY_BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": execution_timeout,
        "on_failure_callback": failure_notifiers(),
        "priority_weight": int(priority),
        # absolute: the weight is the task's own, not summed over downstream tasks
        "weight_rule": "absolute",
    }


def pipeline_dag(
    dag_id: str,
    *,
    schedule: str | Collection[Asset] | None,
    doc_md: str | None,
    tags: Sequence[str],
    critical: bool = False,
    priority: Priority = Priority.NORMAL,
    execution_timeout: timedelta = timedelta(hours=1),
    **dag_kwargs: Any,
) -> DAG:
    """A DAG with the project's defaults.

    :param schedule: a cron expression (run as a UTC data-interval timetable),
        the assets the DAG is scheduled on, or None for a DAG that its producer
        triggers once per partition (``downstream``).
    :param critical: page PagerDuty on failure, not only Slack.
    """
    if not doc_md or not doc_md.strip():
        raise ValueError(f"{dag_id}: every DAG needs doc_md (what it does, owner's runbook link)")
    if not tags:
        raise ValueError(f"{dag_id}: every DAG needs tags")
    timetable: Any = (
        CronDataIntervalTimetable(schedule, timezone="UTC")
        if isinstance(schedule, str)
        else None
        if schedule is None
        else list(schedule)
    )
    all_tags = [*tags, f"priority:{priority.name.lower()}"]
    if critical:
        all_tags.append("critical")
    dag_kwargs.setdefault("max_active_runs", 1)  # partitions publish in order: newer wins
    if critical:
        dag_kwargs.setdefault("on_failure_callback", run_failure_notifiers(critical=True))
    if isinstance(schedule, str) and (deadline := deadline_alert(dag_id, schedule, critical=critical)):
        dag_kwargs.setdefault("deadline", deadline)  # acme_pipelines.deadlines.DEADLINES
    return DAG(
        dag_id,
        schedule=timetable,
        start_date=START_DATE,
        catchup=False,
        doc_md=doc_md,
        tags=all_tags,
        default_args=default_args(priority=priority, execution_timeout=execution_timeout),
        params={
            PARAM_NAME: Param(
                None,
                type=["null", "string"],
                title="Partition",
                description="Day (2026-11-01) or hour (2026-11-01T05:00) to process; "
                "empty: the run's data interval decides.",
            ),
            END_PARAM_NAME: Param(
                None,
                type=["null", "string"],
                title="Partition end (exclusive)",
                description="Only for DAGs that load windows (hourly_incremental_sync): "
                "process [partition, partition_end) in one run, e.g. a catch-up.",
            ),
        },
        **dag_kwargs,
    )

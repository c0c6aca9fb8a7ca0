"""Governance as tests: every DAG carries what on-call needs, from one session-wide DagBag."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from airflow.configuration import conf
from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

from acme_pipelines.resources import Pool, Priority
from conftest import ROOT

pytestmark = pytest.mark.unit

CRON = {
    "hourly_incremental_sync": "0 * * * *",
    "daily_etl": "0 2 * * *",
    "daily_reports": "0 6 * * *",
    "data_archival": "0 4 * * 0",  # Sundays
    "anomaly_detection": "*/30 * * * *",
    "cache_refresh": "*/15 * * * *",
}
# Triggered once per partition by the DAG before them (acme_pipelines.downstream): producer -> consumers.
TRIGGERED_BY = {
    "daily_etl": {"data_quality_check"},
    "data_quality_check": {"feature_engineering", "weekly_aggregation"},
    "feature_engineering": {"ml_training"},
}
TRIGGERED = set().union(*TRIGGERED_BY.values())
ALL_DAG_IDS = set(CRON) | TRIGGERED


def test_ten_dags_and_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == ALL_DAG_IDS
    assert len(ALL_DAG_IDS) == 10


@pytest.mark.parametrize("dag_id", sorted(CRON))
def test_cron_schedules_are_utc_data_intervals(dagbag, dag_id):
    timetable = dagbag.dags[dag_id].timetable
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    assert timetable.expression == CRON[dag_id]
    assert str(timetable.timezone) in ("UTC", "Timezone('UTC')")


def test_triggered_dags_have_no_schedule_and_one_producer_each(dagbag):
    from acme_pipelines.downstream import TriggerForPartitionOperator

    found: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if isinstance(task, TriggerForPartitionOperator):
                assert task.reset_dag_run, f"{dag.dag_id}.{task.task_id}: a re-run must reset the consumer's run"
                found.setdefault(dag.dag_id, set()).add(task.trigger_dag_id)
    assert found == TRIGGERED_BY
    for dag_id in TRIGGERED:
        assert type(dagbag.dags[dag_id].timetable).__name__ == "NullTimetable", dag_id


def notifies_through(callback, provider_notifier: type) -> bool:
    """Whether a failure callback sends through ``provider_notifier`` (the provider's class, or ours over it)."""
    from acme_pipelines.alerting import ChannelNotifier

    if isinstance(callback, ChannelNotifier):
        return issubclass(callback.notifier_class(), provider_notifier)
    return isinstance(callback, provider_notifier)


@pytest.mark.parametrize("dag_id", sorted(ALL_DAG_IDS))
def test_dag_has_what_on_call_needs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.owner == "data-platform"
    assert dag.tags, "tags"
    assert len((dag.doc_md or "").strip()) > 40, "doc_md says what the DAG does"
    assert dag.catchup is False
    assert dag.max_active_runs == 1, "partitions publish in order"
    assert "partition" in dag.params
    for task in dag.tasks:
        # retries are Airflow's [core] default_task_retries (3 where deployed: tests/test_deploy_files.py)
        assert task.retries == conf.getint("core", "default_task_retries"), task.task_id
        assert task.retry_exponential_backoff >= 2, "exponential backoff"
        assert task.max_retry_delay is not None
        assert task.max_retry_delay <= timedelta(hours=1)
        assert task.execution_timeout is not None
        callbacks = task.on_failure_callback or []
        assert any(notifies_through(cb, SlackWebhookNotifier) for cb in callbacks), "Slack on failure"


@pytest.mark.parametrize("dag_id", sorted(ALL_DAG_IDS))
def test_pagerduty_only_for_critical_dags_once_per_run(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    critical = "critical" in dag.tags
    run_level = dag.on_failure_callback or []
    assert any(notifies_through(cb, PagerdutyNotifier) for cb in run_level) == critical, "PagerDuty iff critical"
    for task in dag.tasks:
        pages = any(notifies_through(cb, PagerdutyNotifier) for cb in task.on_failure_callback or [])
        assert not pages, f"{dag_id}.{task.task_id}: a task does not page; its run does, once"


@pytest.mark.parametrize("dag_id", sorted(ALL_DAG_IDS))
def test_deadlines_are_the_settings(dagbag, dag_id):
    """daily_etl by 04:00, daily_reports by 07:00, the hourly sync 30 minutes after its window; no others."""
    from acme_pipelines.deadlines import DEADLINES, deadline_missed

    dag = dagbag.dags[dag_id]
    alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline] if dag.deadline else []
    if dag_id not in DEADLINES:
        assert not alerts
        return
    (alert,) = alerts
    window = {"daily_etl": timedelta(days=1), "daily_reports": timedelta(days=1)}.get(dag_id, timedelta(hours=1))
    assert alert.interval == window + DEADLINES[dag_id].after_window_end
    assert alert.callback.path == f"{deadline_missed.__module__}.{deadline_missed.__qualname__}"
    expected_by = {"daily_etl": "04:00", "daily_reports": "07:00", "hourly_incremental_sync": "30 minutes"}[dag_id]
    assert expected_by in alert.callback.kwargs["deadline"]


def test_ingestion_is_critical(dagbag):
    for dag_id in ("hourly_incremental_sync", "daily_etl", "data_quality_check"):
        assert "critical" in dagbag.dags[dag_id].tags


def test_pools_used_exist_in_settings_and_priorities_follow_the_scheme(dagbag):
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    defined = {p["pool_name"] for p in settings["airflow"]["pools"]}
    assert set(Pool.ALL) <= defined, "every named pool is defined in airflow_settings.yaml"
    weights = {int(p) for p in Priority}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.pool in defined, f"{dag.dag_id}.{task.task_id} uses undefined pool {task.pool}"
            assert task.priority_weight in weights
            assert task.weight_rule == "absolute"

"""The quality gate under the scheduler's runs: runs without a logical date, and check tasks that die silently.

A day's quality run is triggered by ``daily_etl`` (``downstream.TriggerForPartitionOperator``): the scheduler
creates it with no logical date, so ``{{ ds }}`` does not exist. The interval checks once filtered on it and
failed to render before checking, and the gate, deciding from the results recorded, passed the day anyway.
"""

from __future__ import annotations

from datetime import date

import pytest

from acme_pipelines.quality import FAILED, PASSED, CheckOutcome, decide_gate, record_results
from acme_pipelines.quality_operators import DayIntervalCheckOperator

DAY = date(2026, 11, 2)


@pytest.mark.unit
def test_the_interval_check_renders_in_a_run_without_a_logical_date():
    from airflow.sdk import DAG

    with DAG("render_probe", schedule=None):
        check = DayIntervalCheckOperator(task_id="check", table="core.fact_payments", days_back=1,
                                         metrics_thresholds={"count(*)": 3})  # fmt: skip
    # the template context of a triggered run: no ds, no logical_date (task_runner sets them only with a date)
    check.render_template_fields({"params": {"partition": DAY.isoformat()}, "run_id": "partition__2026-11-02"})
    assert "{{" not in check.sql1 + check.sql2


@pytest.mark.integration
def test_a_check_task_that_recorded_nothing_fails_the_gate(warehouse):
    passed = [CheckOutcome("payments:has_rows", "table", True, "core.fact_payments")]
    record_results(warehouse, DAY, "run-a", "check_payments_table", passed)
    assert decide_gate(warehouse, DAY, "run-a", checks=["check_payments_table"]) == (PASSED, [])
    status, failed = decide_gate(
        warehouse, DAY, "run-a", checks=["check_payments_table", "check_payments_vs_day_before"]
    )
    assert status == FAILED
    assert failed == ["check_payments_vs_day_before: no result (the task failed before checking; see its log)"]


@pytest.mark.unit
def test_the_gate_waits_for_every_check_the_point_of_sale_ones_included(dagbag):
    dag = dagbag.dags["data_quality_check"]
    checks = {t.task_id for t in dag.tasks if t.task_id.startswith("check_")}
    assert {"check_pos_sales_columns", "check_pos_sales_table", "check_pos_sales_vs_week_before"} <= checks
    assert dag.get_task("publish_gate").upstream_task_ids == checks, "the gate decides after every check"

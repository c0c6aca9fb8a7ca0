"""Quality operators: common-sql checks scoped to the run's day and recorded, the project's own
assertions, the write-audit-publish gate, and the sensor consumers wait on.

The common-sql operators (``SQLColumnCheckOperator``, ``SQLTableCheckOperator``,
``SQLIntervalCheckOperator``) do the checking; ``_RecordedChecks`` adds what
they lack here: the partition resolved the project's way (param > asset event >
data interval) and every outcome written to ``ops.quality_results``, failed
or not, before the task fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.sql.operators.sql import (
    SQLColumnCheckOperator,
    SQLIntervalCheckOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from acme_pipelines.operators import SQL_ROOT, WarehouseOperator, Work
from acme_pipelines.partitions import DAY, Partition, resolve_partition

RESULTS_TABLE = "ops.quality_results"


def _day_clause(column: str, partition: Partition) -> str:
    # partition.key is a parsed, validated date (YYYY-MM-DD), never free text
    return f"{column} = '{partition.dt.isoformat()}'"


def _record(operator: BaseOperator, conn_id: str, context: Any, partition: Partition, outcomes: list) -> None:
    from acme_pipelines.quality import record_results
    from acme_pipelines.warehouse_hooks import warehouse_hook

    record_results(warehouse_hook(conn_id), partition.dt, context["run_id"], operator.task_id, outcomes)
    failed = [o.name for o in outcomes if not o.passed]
    operator.log.info("%d checks recorded in %s, %d failed %s", len(outcomes), RESULTS_TABLE, len(failed), failed)


class _RecordedChecks:
    """Mixin for the common-sql check operators (see the module docstring)."""

    date_column: str
    table: str
    conn_id: str
    check_results: list

    def _scope(self, partition: Partition) -> None:
        raise NotImplementedError

    def get_db_hook(self) -> Any:
        """The warehouse connection's common-sql hook, chosen by its type (``warehouse_hooks.sql_hook``)."""
        from acme_pipelines.warehouse_hooks import sql_hook

        return sql_hook(self.conn_id)

    def execute(self, context: Any) -> None:
        from acme_pipelines.lineage import warehouse_lineage
        from acme_pipelines.quality import CheckOutcome, outcomes_from_sql_checks
        from acme_pipelines.warehouse_hooks import warehouse_hook

        partition = resolve_partition(context, DAY)
        self._scope(partition)
        self.check_results = []
        hook = warehouse_hook(self.conn_id)  # lineage is built here, not in the listener's fork (operators.py)
        self._results_lineage = warehouse_lineage(hook, [], [hook.dataset(RESULTS_TABLE)])
        try:
            super().execute(context)  # type: ignore[misc]
        except Exception as exc:
            outcomes = outcomes_from_sql_checks(self.check_results, self.table)
            if not outcomes:  # the query itself failed: record that, not nothing
                outcomes = [CheckOutcome(f"{self.table}:{self.task_id}", "error", False, self.table, observed=str(exc))]  # type: ignore[attr-defined]
            _record(self, self.conn_id, context, partition, outcomes)  # type: ignore[arg-type]
            raise
        _record(self, self.conn_id, context, partition, outcomes_from_sql_checks(self.check_results, self.table))  # type: ignore[arg-type]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """common-sql's lineage (the checked table, with data-quality facets) plus the results table."""
        from acme_pipelines.lineage import operator_lineage

        lineage = super().get_openlineage_facets_on_complete(task_instance)  # type: ignore[misc]
        extra = getattr(self, "_results_lineage", None) or operator_lineage([], [])
        if lineage is None:
            return extra
        lineage.outputs = [*lineage.outputs, *extra.outputs]
        return lineage


class DayColumnCheckOperator(_RecordedChecks, SQLColumnCheckOperator):
    """``SQLColumnCheckOperator`` over the run's day of ``table`` (``date_column`` = the day)."""

    def __init__(self, *, date_column: str = "dt", conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.date_column = date_column

    def _scope(self, partition: Partition) -> None:
        self.partition_clause = _day_clause(self.date_column, partition)
        checks_sql = "UNION ALL".join(
            self._generate_sql_query(column, checks) for column, checks in self.column_mapping.items()
        )
        self.sql = f"SELECT col_name, check_type, check_result FROM ({checks_sql}) AS check_columns"


class DayTableCheckOperator(_RecordedChecks, SQLTableCheckOperator):
    """``SQLTableCheckOperator`` over the run's day of ``table``."""

    def __init__(self, *, date_column: str = "dt", conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.date_column = date_column

    def _scope(self, partition: Partition) -> None:
        self.partition_clause = _day_clause(self.date_column, partition)
        self.sql = f"SELECT check_name, check_result FROM ({self._generate_sql_query()}) AS check_table"


class DayIntervalCheckOperator(_RecordedChecks, SQLIntervalCheckOperator):
    """``SQLIntervalCheckOperator``: the run's day against ``days_back`` days before.

    Metrics should be aggregates (``count(*)``, ``sum(x)``) so that a day
    without rows reads as 0, which ``ignore_zero`` accepts (the first days of
    history have nothing to compare with).
    """

    def __init__(self, *, date_column: str = "dt", conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, date_filter_column=date_column, **kwargs)
        self.date_column = date_column
        # common-sql's queries filter on '{{ ds }}', which a run without a logical date (every run the
        # scheduler creates for a triggered day) cannot render; _scope writes the run's queries instead.
        self.sql1 = self.sql2 = "-- the run's day, set in execute"

    def _scope(self, partition: Partition) -> None:
        metrics = ", ".join(self.metrics_sorted)
        before = Partition(partition.start + timedelta(days=self.days_back), DAY)
        self.sql1 = f"SELECT {metrics} FROM {self.table} WHERE {_day_clause(self.date_column, partition)}"
        self.sql2 = f"SELECT {metrics} FROM {self.table} WHERE {_day_clause(self.date_column, before)}"


class SqlAssertionsOperator(WarehouseOperator):
    """Run a SQL file of checks for the run's day and record them; fail if any failed.

    The file gets ``%(dt)s`` and returns rows of (check_name, check_type,
    table_name, passed, observed, expected, content): the checks the
    common-sql operators cannot express (freshness, row accounting, integrity).
    """

    template_fields: Sequence[str] = ("sql_file",)

    def __init__(self, *, sql_file: str, inputs: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql_file = sql_file
        self.inputs = list(inputs)

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from acme_pipelines.quality import CheckOutcome

        with hook.scoped_connection() as conn, conn.cursor() as cur:  # record_results (below) ensures the schema
            rows = hook.query_rows(cur, (SQL_ROOT / self.sql_file).read_text(), {"dt": partition.dt})
        outcomes = [
            CheckOutcome(r["check_name"], r["check_type"], bool(r["passed"]), r["table_name"], None, r["observed"],
                         r["expected"], r["content"])
            for r in rows
        ]  # fmt: skip
        _record(self, self.warehouse_conn_id, context, partition, outcomes)
        failed = [f"{o.name} (observed {o.observed}; expected {o.expected})" for o in outcomes if not o.passed]
        return Work(
            {"partition": partition.key, "checks": len(outcomes)},
            inputs=[hook.dataset(t) for t in self.inputs],
            outputs=[hook.dataset(RESULTS_TABLE)],
            failure=f"{len(failed)} of {len(outcomes)} checks failed for {partition.key}: {failed}" if failed else None,
        )


class QualityGateOperator(WarehouseOperator):
    """Publish step of write-audit-publish: decide the day's gate from this run's results.

    Runs whatever its upstream checks did (``trigger_rule="all_done"``). All
    passed: the gate says ``passed`` and the outlets (the "quality passed"
    asset) get an event for the day. Otherwise the gate says ``failed``, the
    task fails (and alerts), and no asset event is emitted, so nothing
    downstream runs on that day.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from acme_pipelines.quality import PASSED, decide_gate

        status, failed = decide_gate(hook, partition.dt, context["run_id"], checks=self.upstream_task_ids)
        failure = None
        if status != PASSED:
            failure = (
                f"quality gate of {partition.key}: FAILED ({', '.join(failed)}); "
                f"nothing downstream runs for this day. Details: SELECT * FROM {RESULTS_TABLE} "
                f"WHERE dt = '{partition.key}' AND run_id = '{context['run_id']}' AND NOT passed"
            )
        else:
            self.log.info("quality gate of %s: passed", partition.key)
        return Work(
            {"partition": partition.key, "status": status},
            inputs=[hook.dataset(RESULTS_TABLE)],
            outputs=[hook.dataset("ops.quality_gate")],
            failure=failure,
        )


class QualityGateSensor(BaseSensorOperator):
    """Wait until the run's day passed the quality gate; fail at once if it failed.

    Use in reschedule mode (the default here): a waiting sensor holds no
    worker slot between pokes.
    """

    def __init__(self, *, warehouse_conn_id: str = "warehouse", **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 300)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def poke(self, context: Any) -> bool:
        from acme_pipelines.quality import FAILED, gate_status
        from acme_pipelines.warehouse_hooks import warehouse_hook

        partition = resolve_partition(context, DAY)
        status, failed = gate_status(warehouse_hook(self.warehouse_conn_id), partition.dt)
        if status == FAILED:
            raise AirflowFailException(
                f"{partition.key} failed its quality checks ({', '.join(failed)}): not processing it. "
                f"Fix the data, rerun data_quality_check for the day, then rerun this DAG."
            )
        self.log.info("quality gate of %s: %s", partition.key, status or "not decided yet, waiting")
        if status is not None:  # the last poke: lineage is built here, not in the listener's fork
            from acme_pipelines.lineage import warehouse_lineage

            hook = warehouse_hook(self.warehouse_conn_id)
            self._lineage = warehouse_lineage(hook, [hook.dataset("ops.quality_gate")], [])
        return status is not None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from acme_pipelines.lineage import operator_lineage

        return getattr(self, "_lineage", None) or operator_lineage([], [])

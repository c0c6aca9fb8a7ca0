"""One downstream run per partition: how a DAG hands a finished day (or week) to the next DAG.

A producer's last task triggers the consumer for exactly the partition it
published, with a run id that names it (``partition__2026-11-10``) and
``conf={"partition": "2026-11-10"}``. Why not asset scheduling
(docs/architecture.md, "Downstream runs"): Airflow 3.3 queues an asset event
only for consumers that are unpaused at that moment (``AssetManager.register_asset_change``
filters ``is_paused``, for plain and partitioned assets alike), and a plain-asset
consumer's next run takes every event since its last run. A paused, busy or
stopped consumer therefore either never sees a day or sees many at once.
A triggered run does neither:

- a paused consumer keeps its queued runs and runs them, one per day, when it
  is unpaused; ``max_active_runs`` makes them wait, never merge;
- a re-run of the producer for a day (clear, backfill, manual run) resets the
  consumer's run of that day (``reset_dag_run``), so the day gets a fresh
  verdict instead of a second run;
- the UI's run list shows the day in each run id.

The assets stay the producers' outlets (lineage, the UI's asset graph).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowSkipException

from acme_pipelines.partitions import DAY, PARAM_NAME, WEEK, Grain, Partition, resolve_partition
from acme_pipelines.resources import Pool

RUN_ID_PREFIX = "partition__"


def run_id_for(partition: Partition) -> str:
    """The consumer's run id for a partition: ``partition__2026-11-10`` (a week: its Monday)."""
    return f"{RUN_ID_PREFIX}{partition.key}"


class TriggerForPartitionOperator(TriggerDagRunOperator):
    """Trigger ``trigger_dag_id`` for this run's partition (one run per partition, reset on a re-run).

    :param grain: the grain of this run's partition (``DAY``); the consumer
        gets the same key, or the week it belongs to with ``to_week``.
    """

    def __init__(self, *, trigger_dag_id: str, grain: Grain = DAY, to_week: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", f"trigger_{trigger_dag_id}")
        kwargs.setdefault("pool", Pool.ORCHESTRATION)
        kwargs.setdefault("openlineage_inject_parent_info", False)  # conf stays {"partition": ...}
        super().__init__(trigger_dag_id=trigger_dag_id, logical_date=None, reset_dag_run=True, **kwargs)
        self.grain = grain
        self.to_week = to_week

    def target_partition(self, context: Any) -> Partition:
        partition = resolve_partition(context, self.grain)
        return Partition(WEEK.floor(partition.start), WEEK, partition.source) if self.to_week else partition

    def execute(self, context: Any) -> Any:
        partition = self.target_partition(context)
        self.trigger_run_id = run_id_for(partition)
        self.conf = {PARAM_NAME: partition.key}
        self.note = f"{partition.key}, from {context['ti'].dag_id} run {context['run_id']}"
        self.log.info("%s: triggering %s run %s", partition.key, self.trigger_dag_id, self.trigger_run_id)
        return super().execute(context)


class TriggerCompleteWeekOperator(TriggerForPartitionOperator):
    """Trigger the week of this run's day once all 7 of its days passed the quality gate; skip otherwise.

    A day that passes later (a late or repaired day) triggers the week again,
    which re-runs it (``reset_dag_run``).
    """

    def __init__(self, *, trigger_dag_id: str, warehouse_conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(trigger_dag_id=trigger_dag_id, grain=DAY, to_week=True, **kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> Any:
        from acme_pipelines.quality import days_passed
        from acme_pipelines.warehouse_hooks import warehouse_hook

        week = self.target_partition(context)
        passed = days_passed(warehouse_hook(self.warehouse_conn_id), week.days())
        if len(passed) < len(week.days()):
            missing = ", ".join(str(d) for d in week.days() if d not in passed)
            raise AirflowSkipException(f"week of {week.key}: {len(passed)} of 7 days passed quality (not: {missing})")
        return super().execute(context)

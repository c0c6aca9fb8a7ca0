"""Custom pipeline metrics, one naming scheme: ``acme.pipeline.<measure>`` tagged by dag, task, table.

Sent through Airflow's metrics backend (StatsD when ``[metrics] statsd_on``),
so they land next to Airflow's own metrics in the same Grafana.
"""

from __future__ import annotations

from datetime import timedelta

from acme_pipelines.warehouse import LoadCounts

PREFIX = "acme.pipeline"


def emit_load_metrics(
    counts: LoadCounts, *, bytes_read: int, seconds: float, dag_id: str, task_id: str, table: str
) -> None:
    from airflow.sdk.observability import stats

    where = {"dag_id": dag_id, "task_id": task_id, "table": table}
    for measure in ("rows_in", "rows_loaded", "rows_rejected", "rows_duplicate"):
        emit_count(measure, getattr(counts, measure), **where)
    emit_count("bytes", bytes_read, **where)
    stats.timing(f"{PREFIX}.seconds", timedelta(seconds=seconds), tags=where)


def emit_count(measure: str, value: int, *, dag_id: str, task_id: str, table: str) -> None:
    """One more ``acme.pipeline.<measure>`` counter (cache keys, anomalies found, partitions archived)."""
    from airflow.sdk.observability import stats

    stats.incr(f"{PREFIX}.{measure}", value, tags={"dag_id": dag_id, "task_id": task_id, "table": table})

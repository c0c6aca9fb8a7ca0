"""Custom pipeline metrics, one naming scheme: ``acme.pipeline.<measure>`` tagged by dag, task, table.

Sent through Airflow's metrics backend (StatsD when ``[metrics] statsd_on``),
so they land next to Airflow's own metrics in the same Grafana. With
``statsd_influxdb_enabled`` the tags travel InfluxDB-style
(``airflow.acme.pipeline.rows_in,dag_id=daily_etl,task_id=load_payments,table=core.fact_payments:5|c``),
which statsd-exporter turns into Prometheus labels (``deploy/statsd/mapping.yml``).

``CATALOG`` is the one list of what may be emitted: ``docs/metrics.md`` documents
it, the dashboards query only names derived from it (a test cross-checks),
and emitting a name that is not in it is a programming error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from acme_pipelines.accounting import LoadCounts

PREFIX = "acme.pipeline"
# StatsD names allow [A-Za-z0-9_.-/]; with InfluxDB tags a value outside that set drops the whole metric.
_TAG_SAFE = str.maketrans({c: "_" for c in " :,=|#@\"'"})


@dataclass(frozen=True)
class Metric:
    name: str  # the measure; on the wire: <statsd_prefix>.acme.pipeline.<name>
    kind: Literal["counter", "timer"]
    tags: tuple[str, ...]
    description: str


_WHERE = ("dag_id", "task_id", "table")
CATALOG: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("rows_in", "counter", _WHERE, "rows read from the source: loaded + rejected + exact duplicates"),
        Metric("rows_loaded", "counter", _WHERE, "rows published into the table"),
        Metric("rows_rejected", "counter", _WHERE, "rows rejected with a reason (ops.rejected_rows)"),
        Metric("rows_duplicate", "counter", _WHERE, "byte-identical repeats dropped (contract section 2)"),
        Metric("bytes", "counter", _WHERE, "bytes read from the source files"),
        Metric("seconds", "timer", _WHERE, "wall-clock time of one load, read to publish"),
        Metric("cache_keys", "counter", _WHERE, "Redis keys published by one cache refresh (table = key prefix)"),
        Metric("anomalies_found", "counter", _WHERE, "anomalies recorded in ops.anomalies by one detection run"),
        Metric("partitions_archived", "counter", _WHERE, "day partitions moved to cold storage"),
        Metric(
            "alerts_sent",
            "counter",
            ("dag_id", "channel", "alert"),
            "alerts sent; channel slack|pagerduty|email, alert task_failed|deadline_missed|anomaly",
        ),
        Metric("deadline_missed", "counter", ("dag_id", "deadline"), "a DAG run missed its deadline alert"),
    )
}


def statsd_name(measure: str) -> str:
    """The name passed to Airflow's stats client (it adds ``[metrics] statsd_prefix``)."""
    if measure not in CATALOG:
        raise ValueError(f"metric {measure!r} is not in acme_pipelines.metrics.CATALOG; add and document it first")
    return f"{PREFIX}.{measure}"


def _tags(**tags: str) -> dict[str, str]:
    return {name: str(value).translate(_TAG_SAFE) for name, value in tags.items()}


def emit_load_metrics(
    counts: LoadCounts, *, bytes_read: int, seconds: float, dag_id: str, task_id: str, table: str
) -> None:
    from airflow.sdk.observability import stats

    where = {"dag_id": dag_id, "task_id": task_id, "table": table}
    for measure in ("rows_in", "rows_loaded", "rows_rejected", "rows_duplicate"):
        emit_count(measure, getattr(counts, measure), **where)
    emit_count("bytes", bytes_read, **where)
    stats.timing(statsd_name("seconds"), timedelta(seconds=seconds), tags=_tags(**where))


def emit_count(measure: str, value: int, **tags: str) -> None:
    """One more ``acme.pipeline.<measure>`` counter, tagged as the catalog says."""
    from airflow.sdk.observability import stats

    name = statsd_name(measure)  # refuses a measure that is not in the catalog
    if set(tags) != set(CATALOG[measure].tags):
        raise ValueError(f"metric {measure!r} takes tags {CATALOG[measure].tags}, got {tuple(tags)}")
    stats.incr(name, value, tags=_tags(**tags))

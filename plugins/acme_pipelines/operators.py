"""The operators the DAGs are built from. Small: the work is in the modules they call.

Every warehouse operator runs one template (``WarehouseOperator.execute``): resolve
the run's partition (``partitions``), pick the warehouse hook by connection type,
run the operator's ``run`` (the work: a call into a job module) and time it, then
emit its ``acme.pipeline.*`` metrics, record its OpenLineage inputs and outputs,
fail the task if the work says so, and mark the outlets' asset events with the
partition. ``run`` returns a ``Work`` saying what happened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from acme_pipelines.partitions import DAY, HOUR, WEEK, Grain, Partition, resolve_partition

SQL_ROOT = Path(__file__).resolve().parents[2] / "include" / "sql"
# The contract's setting (§2), from the Airflow variable; 0.01 when it is not set.
MAX_REJECT_RATIO = "{{ var.value.get('max_reject_ratio', '0.01') }}"
GRAINS = {"day": DAY, "week": WEEK}


def _audit(context: Any, source: str, target: str, partition: Partition) -> Any:
    from acme_pipelines.accounting import AuditEntry

    ti = context["ti"]
    return AuditEntry(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=context["run_id"],
        source=source,
        target=target,
        partition=partition.key,
        started_at=datetime.now(UTC),
    )


def mark_outlets(context: Any, outlets: Sequence[Any], partition: Partition) -> None:
    """Tell asset consumers which partition was published (see ``partitions``)."""
    for asset in outlets:
        context["outlet_events"][asset].extra = {"partition": partition.key}


@dataclass
class Work:
    """What one run's work did, for ``WarehouseOperator.execute`` to report.

    :param result: the task's return value (XCom).
    :param inputs: OpenLineage datasets read, ``(namespace, name)`` (``hook.dataset(table)`` for a table).
    :param outputs: datasets written.
    :param counts: row accounting of a load (``LoadCounts``): the load metrics, tagged with ``table``.
    :param bytes_read: bytes the load read, for its metrics.
    :param counters: other ``acme.pipeline.*`` counters, ``(measure, value, table)``.
    :param failure: a reason to fail the task after the metrics and lineage (a failed check, a failed gate).
    """

    result: dict[str, Any]
    inputs: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    counts: Any = None
    table: str = ""
    bytes_read: int = 0
    counters: list[tuple[str, int, str]] = field(default_factory=list)
    failure: str | None = None


class WarehouseOperator(BaseOperator):
    """The template of the warehouse operators: partition, warehouse hook, timed ``run``, then metrics, lineage
    and outlets (the module's docstring). A subclass sets ``partition_grain`` and implements ``run``."""

    partition_grain: Grain = DAY
    allow_range = False  # a run may name a window longer than one grain (params.partition_end)

    def __init__(self, *, warehouse_conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id
        self._lineage: Any = None

    @property
    def warehouse(self) -> Any:
        """PostgreSQL or Snowflake, by the type of the connection (``warehouse_hooks.warehouse_hook``)."""
        from acme_pipelines.warehouse_hooks import warehouse_hook

        return warehouse_hook(self.warehouse_conn_id)

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        """The work for ``partition``, on the warehouse ``hook``."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from acme_pipelines.metrics import emit_count, emit_load_metrics

        partition = resolve_partition(context, self.partition_grain, allow_range=self.allow_range)
        hook = self.warehouse
        started = time.monotonic()
        work = self.run(context, partition, hook)
        seconds = time.monotonic() - started
        tags = {"dag_id": self.dag_id, "task_id": self.task_id}
        if work.counts is not None:
            emit_load_metrics(work.counts, bytes_read=work.bytes_read, seconds=seconds, table=work.table, **tags)
        for measure, value, table in work.counters:
            emit_count(measure, value, table=table, **tags)
        self._set_lineage(hook, work.inputs, work.outputs)
        if work.failure:
            raise AirflowFailException(work.failure)
        mark_outlets(context, self.outlets, partition)
        return work.result

    def _set_lineage(self, hook: Any, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> None:
        """Record what this run read and wrote, with the tables' columns, for OpenLineage.

        Built here, in ``execute``, where the task reaches its connections: the
        listener calls ``get_openlineage_facets_on_complete`` in a forked process
        with a 10 s budget, where connection lookups and queries can hang.
        """
        from acme_pipelines.lineage import warehouse_lineage

        self._lineage = warehouse_lineage(hook, inputs, outputs)  # the hook execute used: no second lookup

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from acme_pipelines.lineage import operator_lineage

        return self._lineage if self._lineage is not None else operator_lineage([], [])


class LandingLoadOperator(WarehouseOperator):
    """Load one day of a landing source (``payments``, ``events`` or ``pos``) into its fact table.

    :param source: a source of ``contract.SOURCES``.
    :param landing_root: ``file://...`` or ``s3://[conn_id@]bucket/prefix`` (templated).
    :param max_reject_ratio: the share of rejected rows that fails the load (templated).
    """

    template_fields: Sequence[str] = ("landing_root", "max_reject_ratio", "batch_rows")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        source: str,
        landing_root: str = "{{ var.value.landing_root }}",
        max_reject_ratio: str | float = MAX_REJECT_RATIO,
        batch_rows: int | str = 50_000,
        fail_after_staging: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.landing_root = landing_root
        self.max_reject_ratio = max_reject_ratio
        self.batch_rows = batch_rows
        self.fail_after_staging = fail_after_staging

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from airflow.sdk import ObjectStoragePath

        from acme_pipelines.backends import load_partition
        from acme_pipelines.contract import SOURCES
        from acme_pipelines.landing_batches import HAS_AMOUNT_USD
        from acme_pipelines.lineage import storage_dataset

        spec = SOURCES[self.source]
        root = ObjectStoragePath(self.landing_root)
        self.log.info("loading %s for %s from %s", spec.name, partition, root)
        audit = _audit(context, f"landing:{spec.name}", spec.target, partition)
        result = load_partition(
            hook, spec, root, partition.dt, audit, max_reject_ratio=float(self.max_reject_ratio),
            batch_rows=int(self.batch_rows), fail_after_staging=self.fail_after_staging,
        )  # fmt: skip
        c = result.counts
        self.log.info(
            "%s %s: %d in = %d loaded + %d rejected + %d duplicate (%s) in %.1fs",
            spec.name, partition.key, c.rows_in, c.rows_loaded, c.rows_rejected, c.rows_duplicate,
            c.rejected_by_reason, result.seconds,
        )  # fmt: skip
        folder = f"{self.landing_root.rstrip('/')}/{spec.name}/dt={partition.key}"
        rates = [hook.dataset("core.fx_rates")] if spec.name in HAS_AMOUNT_USD else []  # rates: amount_usd
        return Work(
            {"partition": partition.key, "files": result.files, **c.__dict__},
            inputs=[storage_dataset(f"{folder}/{name}") for name in result.files] + rates,
            outputs=[hook.dataset(spec.target)],
            counts=c, table=spec.target, bytes_read=result.bytes_read,
        )  # fmt: skip


class FxRatesOperator(WarehouseOperator):
    """Fetch the day's FX rates (``GET {base}/rates?date=``) into ``core.fx_rates``.

    :param http_conn_id: the API's ``http`` connection
    :param hook_params: extra ``JsonApiHook`` arguments (attempts, backoff_seconds, ...)
    """

    template_fields: Sequence[str] = ("http_conn_id",)

    def __init__(
        self, *, http_conn_id: str = "fx_api", hook_params: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.http_conn_id = http_conn_id
        self.hook_params = hook_params or {}

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from acme_pipelines.fx_rates import parse_rates, publish_rates
        from acme_pipelines.http_api import JsonApiHook

        api = JsonApiHook(http_conn_id=self.http_conn_id, **self.hook_params)
        body = api.get_json("rates", {"date": partition.key})  # "rates": joined with or without a trailing /
        rates, rejects, rows_in = parse_rates(body, partition.dt)
        audit = _audit(context, "fx_api:rates", "core.fx_rates", partition)
        counts = publish_rates(hook, partition.dt, rates, rejects, rows_in, audit)
        self.log.info("FX %s: %s", partition.key, rates)
        return Work(
            {"partition": partition.key, "rates": rates, "rejected": len(rejects)},
            inputs=[(api.base_url, "/rates")], outputs=[hook.dataset("core.fx_rates")],
            counts=counts, table="core.fx_rates",
        )  # fmt: skip


class WarehouseSqlOperator(WarehouseOperator):
    """Run a SQL file from ``include/sql`` for the run's partition, in one transaction.

    The file gets ``%(dt)s`` (the day, or the Monday of a ``grain="week"``
    partition) and ``%(run_id)s``; it replaces the partition's rows of
    ``target`` (delete + insert), so reruns give the same state. An optional
    ``precondition`` file returns one row (ok, message): not ok fails the task
    with the message and changes nothing.
    """

    template_fields: Sequence[str] = ("sql_file",)
    template_ext: Sequence[str] = ()

    def __init__(
        self,
        *,
        sql_file: str,
        target: str,
        inputs: Sequence[str] = (),
        partition_column: str = "dt",
        grain: str = "day",
        precondition: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if grain not in GRAINS:
            raise ValueError(f"grain must be one of {sorted(GRAINS)}, not {grain!r}")
        self.sql_file = sql_file
        self.target = target
        self.inputs = list(inputs)
        self.partition_column = partition_column
        self.grain = grain
        self.partition_grain = GRAINS[grain]
        self.precondition = precondition

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from acme_pipelines.backends import rebuild_partition

        precondition = (SQL_ROOT / self.precondition).read_text() if self.precondition else None
        params = {"dt": partition.dt, "run_id": context["run_id"]}
        sql_text = (SQL_ROOT / self.sql_file).read_text()
        rows = rebuild_partition(hook, sql_text, params, self.target, self.partition_column, precondition)
        self.log.info("%s %s: %d rows", self.target, partition.key, rows)
        return Work(
            {"partition": partition.key, "rows": rows},
            inputs=[hook.dataset(t) for t in self.inputs],
            outputs=[hook.dataset(self.target)],
        )


class IncrementalSyncOperator(WarehouseOperator):
    """Upsert the rows of one app-database table changed in the run's hour window.

    A run may name a longer window with ``params.partition`` and
    ``params.partition_end`` (a catch-up); windows may overlap or repeat.
    """

    template_fields: Sequence[str] = ("max_reject_ratio",)
    ui_color = "#d9ead3"
    partition_grain = HOUR
    allow_range = True

    def __init__(
        self,
        *,
        table: str,
        app_conn_id: str = "app_db",
        max_reject_ratio: str | float = MAX_REJECT_RATIO,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.app_conn_id = app_conn_id
        self.max_reject_ratio = max_reject_ratio

    def run(self, context: Any, window: Partition, hook: Any) -> Work:
        from airflow.sdk import BaseHook

        from acme_pipelines.backends import sync_table
        from acme_pipelines.contract import SYNC_BY_SOURCE
        from acme_pipelines.warehouse import pg_connect

        table = SYNC_BY_SOURCE[self.table]
        audit = _audit(context, f"app_db:{table.source}", table.target, window)
        started = time.monotonic()
        counts, moved = sync_table(
            lambda: pg_connect(self.app_conn_id), hook, table, window.start, window.end, audit,
            max_reject_ratio=float(self.max_reject_ratio),
        )  # fmt: skip
        seconds = time.monotonic() - started
        self.log.info(
            "%s %s: %d in, %d loaded, %d rejected in %.1fs (%.0f rows/s)",
            table.source, window, counts.rows_in, counts.rows_loaded, counts.rows_rejected, seconds,
            counts.rows_in / seconds if seconds else 0,
        )  # fmt: skip
        app = BaseHook.get_connection(self.app_conn_id)
        return Work(
            {"window": str(window), **counts.__dict__},
            inputs=[(f"postgres://{app.host}:{app.port or 5432}", f"{app.schema}.public.{table.source}")],
            outputs=[hook.dataset(table.target)],
            counts=counts, table=table.target, bytes_read=moved,
        )  # fmt: skip

"""The operators the DAGs are built from. Small: the work is in the modules they call.

Each one resolves its partition with ``partitions``, writes through
``WarehouseHook`` with row accounting, emits ``acme.pipeline.*`` metrics, and
reports its OpenLineage inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from acme_pipelines.partitions import DAY, HOUR, WEEK, Partition, resolve_partition

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


class WarehouseOperator(BaseOperator):
    """Shared plumbing: the warehouse hook and lineage bookkeeping."""

    def __init__(self, *, warehouse_conn_id: str = "warehouse", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id
        self._lineage: Any = None

    @property
    def warehouse(self) -> Any:
        """PostgreSQL or Snowflake, by the type of the connection (``warehouse_hooks.warehouse_hook``)."""
        from acme_pipelines.warehouse_hooks import warehouse_hook

        return warehouse_hook(self.warehouse_conn_id)

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

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk import ObjectStoragePath

        from acme_pipelines.backends import load_partition
        from acme_pipelines.contract import SOURCES
        from acme_pipelines.landing_batches import HAS_AMOUNT_USD
        from acme_pipelines.lineage import storage_dataset
        from acme_pipelines.metrics import emit_load_metrics

        spec = SOURCES[self.source]
        partition = resolve_partition(context, DAY)
        hook = self.warehouse
        root = ObjectStoragePath(self.landing_root)
        self.log.info("loading %s for %s from %s", spec.name, partition, root)
        result = load_partition(
            hook,
            spec,
            root,
            partition.dt,
            _audit(context, f"landing:{spec.name}", spec.target, partition),
            max_reject_ratio=float(self.max_reject_ratio),
            batch_rows=int(self.batch_rows),
            fail_after_staging=self.fail_after_staging,
        )
        c = result.counts
        self.log.info(
            "%s %s: %d in = %d loaded + %d rejected + %d duplicate (%s) in %.1fs",
            spec.name, partition.key, c.rows_in, c.rows_loaded, c.rows_rejected, c.rows_duplicate,
            c.rejected_by_reason, result.seconds,
        )  # fmt: skip
        emit_load_metrics(
            c,
            bytes_read=result.bytes_read,
            seconds=result.seconds,
            dag_id=self.dag_id,
            task_id=self.task_id,
            table=spec.target,
        )
        folder = f"{self.landing_root.rstrip('/')}/{spec.name}/dt={partition.key}"
        rates = [hook.dataset("core.fx_rates")] if spec.name in HAS_AMOUNT_USD else []
        self._set_lineage(
            hook,
            [storage_dataset(f"{folder}/{name}") for name in result.files] + rates,  # rates: amount_usd
            [hook.dataset(spec.target)],
        )
        mark_outlets(context, self.outlets, partition)
        return {"partition": partition.key, "files": result.files, **c.__dict__}


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

    def execute(self, context: Any) -> dict[str, Any]:
        from acme_pipelines.fx_rates import parse_rates, publish_rates
        from acme_pipelines.http_api import JsonApiHook
        from acme_pipelines.metrics import emit_load_metrics

        partition = resolve_partition(context, DAY)
        started = datetime.now(UTC)
        api = JsonApiHook(http_conn_id=self.http_conn_id, **self.hook_params)
        body = api.get_json("rates", {"date": partition.key})  # "rates": joined with or without a trailing /
        rates, rejects, rows_in = parse_rates(body, partition.dt)
        hook = self.warehouse
        counts = publish_rates(
            hook,
            partition.dt,
            rates,
            rejects,
            rows_in,
            _audit(context, "fx_api:rates", "core.fx_rates", partition),
        )
        emit_load_metrics(
            counts,
            bytes_read=0,
            seconds=(datetime.now(UTC) - started).total_seconds(),
            dag_id=self.dag_id,
            task_id=self.task_id,
            table="core.fx_rates",
        )
        self._set_lineage(hook, [(api.base_url, "/rates")], [hook.dataset("core.fx_rates")])
        self.log.info("FX %s: %s", partition.key, rates)
        return {"partition": partition.key, "rates": rates, "rejected": len(rejects)}


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
        self.precondition = precondition

    def execute(self, context: Any) -> dict[str, Any]:
        from acme_pipelines.backends import rebuild_partition

        partition = resolve_partition(context, GRAINS[self.grain])
        hook = self.warehouse
        rows = rebuild_partition(
            hook,
            (SQL_ROOT / self.sql_file).read_text(),
            {"dt": partition.dt, "run_id": context["run_id"]},
            self.target,
            self.partition_column,
            (SQL_ROOT / self.precondition).read_text() if self.precondition else None,
        )
        self._set_lineage(
            hook,
            [hook.dataset(t) for t in self.inputs],
            [hook.dataset(self.target)],
        )
        mark_outlets(context, self.outlets, partition)
        self.log.info("%s %s: %d rows", self.target, partition.key, rows)
        return {"partition": partition.key, "rows": rows}


class IncrementalSyncOperator(WarehouseOperator):
    """Upsert the rows of one app-database table changed in the run's hour window.

    A run may name a longer window with ``params.partition`` and
    ``params.partition_end`` (a catch-up); windows may overlap or repeat.
    """

    template_fields: Sequence[str] = ("max_reject_ratio",)
    ui_color = "#d9ead3"

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

    def execute(self, context: Any) -> dict[str, Any]:

        from airflow.sdk import BaseHook

        from acme_pipelines.backends import sync_table
        from acme_pipelines.contract import SYNC_BY_SOURCE
        from acme_pipelines.metrics import emit_load_metrics
        from acme_pipelines.warehouse import pg_connect

        table = SYNC_BY_SOURCE[self.table]
        window = resolve_partition(context, HOUR, allow_range=True)
        hook = self.warehouse
        started = datetime.now(UTC)
        counts, moved = sync_table(
            lambda: pg_connect(self.app_conn_id),
            hook,
            table,
            window.start,
            window.end,
            _audit(context, f"app_db:{table.source}", table.target, window),
            max_reject_ratio=float(self.max_reject_ratio),
        )
        seconds = (datetime.now(UTC) - started).total_seconds()
        emit_load_metrics(
            counts,
            bytes_read=moved,
            seconds=seconds,
            dag_id=self.dag_id,
            task_id=self.task_id,
            table=table.target,
        )
        app = BaseHook.get_connection(self.app_conn_id)
        self._set_lineage(
            hook,
            [(f"postgres://{app.host}:{app.port or 5432}", f"{app.schema}.public.{table.source}")],
            [hook.dataset(table.target)],
        )
        self.log.info(
            "%s %s: %d in, %d loaded, %d rejected in %.1fs (%.0f rows/s)",
            table.source, window, counts.rows_in, counts.rows_loaded, counts.rows_rejected, seconds,
            counts.rows_in / seconds if seconds else 0,
        )  # fmt: skip
        return {"window": str(window), **counts.__dict__}

"""The warehouse seam: the operations jobs and operators use, each backend's implementation chosen by the hook.

The hook comes from ``warehouse_hooks.warehouse_hook`` (by connection type); its
``backend`` (``postgres`` or ``snowflake``) picks one ``Backend``, the single place that knows which module
implements an operation on PostgreSQL and which on Snowflake. Callers never
branch on the backend. (The archival's day storage is chosen one layer down, by
``warehouse_hooks.day_storage``, so that its restore command, a job module, can
choose it too.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from acme_pipelines.accounting import AuditEntry, LoadCounts
from acme_pipelines.contract import SourceSpec, SyncTable
from acme_pipelines.landing_batches import LoadResult


@dataclass(frozen=True)
class Backend:
    """What a warehouse backend implements; each takes the hook first."""

    load_partition: Callable[..., LoadResult]
    sync_table: Callable[..., tuple[LoadCounts, int]]
    rebuild_partition: Callable[..., int]


def backend(hook: Any) -> Backend:
    """The implementation for ``hook.backend`` (``postgres`` or ``snowflake``)."""
    if hook.backend == "snowflake":
        from acme_pipelines import snowflake_loads

        return Backend(snowflake_loads.load_partition, snowflake_loads.sync_table, snowflake_loads.rebuild_partition)
    from acme_pipelines import incremental_sync, landing_load, partition_rebuild

    return Backend(landing_load.load_partition, incremental_sync.sync_table, partition_rebuild.rebuild_partition)


def load_partition(
    hook: Any, spec: SourceSpec, landing_root: Any, day: date, audit: AuditEntry, **options: Any
) -> LoadResult:
    """Load a landing source's day into its fact table: validated, accounted for, published at once."""
    return backend(hook).load_partition(hook, spec, landing_root, day, audit, **options)


def sync_table(
    source_conn_factory: Callable[[], Any],
    hook: Any,
    table: SyncTable,
    start: datetime,
    end: datetime,
    audit: AuditEntry,
    **options: Any,
) -> tuple[LoadCounts, int]:
    """Sync an app table's rows changed in ``[start, end)``: checked, newer ``updated_at`` wins; counts and bytes."""
    return backend(hook).sync_table(source_conn_factory, hook, table, start, end, audit, **options)


def rebuild_partition(
    hook: Any,
    sql_text: str,
    params: dict[str, Any],
    target: str,
    partition_column: str,
    precondition_text: str | None = None,
) -> int:
    """Replace ``params["dt"]``'s rows of ``target`` by its SQL file's, in one transaction; the day's row count."""
    return backend(hook).rebuild_partition(hook, sql_text, params, target, partition_column, precondition_text)

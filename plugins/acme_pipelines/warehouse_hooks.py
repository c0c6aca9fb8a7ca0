"""The warehouse connection's hook, chosen once by the connection's type (as common-sql picks a hook)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from acme_pipelines.warehouse import DayStorage, WarehouseHook


def warehouse_hook(conn_id: str = "warehouse") -> Any:
    """The hook for the warehouse connection ``conn_id``: ``SnowflakeWarehouseHook`` when the connection is of
    type ``snowflake``, else ``WarehouseHook`` (PostgreSQL). The DAGs never know which."""
    if BaseHook.get_connection(conn_id).conn_type == "snowflake":
        from acme_pipelines.snowflake_warehouse import SnowflakeWarehouseHook

        return SnowflakeWarehouseHook(snowflake_conn_id=conn_id)
    return WarehouseHook(conn_id)


def sql_hook(conn_id: str = "warehouse") -> Any:
    """The common-sql hook (a ``DbApiHook``) of the warehouse connection ``conn_id``: the provider's hook for its
    type, except that a snowflake connection gets ``SnowflakeWarehouseHook``, which keeps the ``protocol`` extra
    the provider's ``SnowflakeHook`` drops (an HTTP endpoint: fakesnow, a proxy)."""
    connection = BaseHook.get_connection(conn_id)
    if connection.conn_type == "snowflake":
        from acme_pipelines.snowflake_warehouse import SnowflakeWarehouseHook

        return SnowflakeWarehouseHook(snowflake_conn_id=conn_id)
    return connection.get_hook()


def day_storage(hook: Any) -> DayStorage:
    """How ``hook``'s warehouse locks, deletes and restores one day of a day-partitioned fact table (the archival):
    ``day_partitions.PartitionedDays`` on PostgreSQL (a partition), ``snowflake_warehouse.SnowflakeDays`` on
    Snowflake (the day's rows). Chosen here, below the jobs, so that ``python -m acme_pipelines.archive`` can."""
    if hook.backend == "snowflake":
        from acme_pipelines.snowflake_warehouse import SnowflakeDays

        return SnowflakeDays()
    from acme_pipelines.day_partitions import PartitionedDays

    return PartitionedDays()

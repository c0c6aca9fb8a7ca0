"""The Airflow Assets that connect the DAGs (data-aware scheduling).

Assets name *logical* tables, not hosts: the same DAGs publish to PostgreSQL
locally and to Snowflake in production, so a URI with a host in it would be
wrong in one of them. The ``x-warehouse`` scheme keeps Airflow from looking
for a provider URI normaliser (no provider discovery at DAG parse time).
Producers put the partition they published into the event's ``extra``
(``{"partition": "2026-11-01"}``), for lineage and the UI. No DAG is scheduled
on them: a producer triggers its consumers once per partition (``downstream``).
"""

from __future__ import annotations

from airflow.sdk import Asset


def warehouse_table(table: str) -> Asset:
    """The asset for a published warehouse table such as ``core.fact_payments``."""
    schema, _, name = table.partition(".")
    if not schema or not name:
        raise ValueError(f"warehouse table {table!r} must be schema-qualified")
    return Asset(name=table, uri=f"x-warehouse://{schema}/{name}", group="warehouse")


FACT_PAYMENTS = warehouse_table("core.fact_payments")
FACT_EVENTS = warehouse_table("core.fact_events")
FACT_POS_SALES = warehouse_table("core.fact_pos_sales")
DAILY_REVENUE = warehouse_table("marts.daily_revenue")

QUALITY_PASSED = Asset(name="quality.daily_passed", uri="x-quality://daily_passed", group="quality")
CUSTOMER_FEATURES = warehouse_table("features.customer_features")
MODEL_REGISTRY = warehouse_table("ml.model_registry")

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Hourly incremental sync

Copies customers, products, orders and order items whose `updated_at` falls in the
run's hour window [start, end) from the application database (`app_db`) into
`core.dim_customer`, `core.dim_product`, `core.fact_orders` and `core.fact_order_items`,
as upserts (the newer `updated_at` wins). Overlapping or repeated windows are harmless.

Data moves as a COPY stream from the source straight into a warehouse staging table;
the `app_db` pool keeps at most two readers on the production database.

Which window: `params.partition` (e.g. `2026-11-01T05:00`), optionally up to
`params.partition_end` for a catch-up in one run; else the data interval.
Runbook: rerun or backfill any window; it is idempotent.
"""

from acme_pipelines.contract import SYNC_TABLES
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.operators import IncrementalSyncOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "hourly_incremental_sync",
    schedule="0 * * * *",
    doc_md=__doc__,
    tags=["ingestion", "hourly", "app_db"],
    critical=True,
    priority=Priority.CRITICAL,
):
    for table in SYNC_TABLES:
        IncrementalSyncOperator(task_id=f"sync_{table.source}", table=table.source, pool=Pool.APP_DB)

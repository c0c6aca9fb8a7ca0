# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Hourly incremental sync

Copies customers, products, orders and order items whose `updated_at` falls in the run's
hour window [start, end) from the application database (`app_db`) into
`core.dim_customer`, `core.dim_product`, `core.fact_orders` and
`core.fact_order_items`, as upserts. Overlapping or repeated windows are harmless.

**Status: not built yet** (issue #3). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "hourly_incremental_sync",
    schedule="0 * * * *",
    doc_md=__doc__,
    tags=["ingestion", "hourly", "app_db"],
    critical=True,
    priority=Priority.CRITICAL,
    built=False,
):
    NotBuiltOperator(issue=3, pool=Pool.APP_DB)

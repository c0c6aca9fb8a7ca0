# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Data quality check

Runs when `daily_etl` has published the day's payments, events and revenue mart.
Write-audit-publish checks (column, table, interval, freshness, row accounting,
referential integrity) into `ops.quality_results`; publishes `quality.daily_passed`.

**Status: not built yet** (issue #4). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.assets import DAILY_ETL_OUTPUTS
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "data_quality_check",
    schedule=list(DAILY_ETL_OUTPUTS),
    doc_md=__doc__,
    tags=["quality", "daily"],
    critical=True,
    priority=Priority.HIGH,
    built=False,
):
    NotBuiltOperator(issue=4, pool=Pool.WAREHOUSE)

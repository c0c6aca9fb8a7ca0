# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Daily ETL

Loads one day (`dt`) of payments (CSV) and events (JSONL) from the landing zone and
that day's FX rates from the API into `core.fact_payments` (with `amount_usd`) and
`core.fact_events`, then rebuilds `marts.daily_revenue` for the day. Every source row
is accounted for in `ops.load_audit` / `ops.rejected_rows` (contract §2).

**Status: not built yet** (issue #3). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "daily_etl",
    schedule="0 2 * * *",
    doc_md=__doc__,
    tags=["ingestion", "daily", "landing"],
    critical=True,
    priority=Priority.CRITICAL,
    built=False,
):
    NotBuiltOperator(issue=3, pool=Pool.WAREHOUSE)

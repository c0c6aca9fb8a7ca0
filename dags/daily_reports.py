# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Daily reports

The day's business report (revenue, orders, AOV, refunds, top products,
day-over-day and week-over-week) as HTML + PNG chart + CSV in object storage, and a
Slack summary. Never reports a day that failed quality.

**Status: not built yet** (issue #4). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "daily_reports",
    schedule="0 6 * * *",
    doc_md=__doc__,
    tags=["reporting", "daily"],
    priority=Priority.HIGH,
    built=False,
):
    NotBuiltOperator(issue=4, pool=Pool.WAREHOUSE)

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Weekly aggregation

Mondays: `marts.weekly_kpis` for the ISO week that just ended, with week-over-week
changes.

**Status: not built yet** (issue #4). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "weekly_aggregation",
    schedule="0 3 * * 1",
    doc_md=__doc__,
    tags=["marts", "weekly"],
    priority=Priority.NORMAL,
    built=False,
):
    NotBuiltOperator(issue=4, pool=Pool.WAREHOUSE)

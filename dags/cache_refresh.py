# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Cache refresh

Every 15 minutes: hot aggregates (today's revenue and orders, top products, recent
customers) into Redis under a new version with a TTL, switched atomically.

**Status: not built yet** (issue #5). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "cache_refresh",
    schedule="*/15 * * * *",
    doc_md=__doc__,
    tags=["cache", "redis"],
    priority=Priority.NORMAL,
    built=False,
):
    NotBuiltOperator(issue=5, pool=Pool.CACHE)

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Cache refresh

Every 15 minutes: hot aggregates of the run's window into Redis (`redis_cache`
connection) for dashboards and the shop's back office:

- `{prefix}:v{N}:today`: orders placed today so far and their booked value in USD;
- `{prefix}:v{N}:top_products`: today's top products by booked value;
- `{prefix}:v{N}:customer:{id}`: a summary of every customer who ordered in the last 7 days.

Each refresh writes a complete new version N (every key with a TTL, variable
`cache_ttl_seconds`, default 3600), then switches the pointer `{prefix}:current`
to it in one atomic step: readers read the pointer, then keys of that version, so
they never see a mix of two refreshes. The previous version is kept for readers
half-way through it; older ones are deleted. Redis unreachable: the task fails
with the address it tried and retries (readers keep the current snapshot until it
expires). Prefix: variable `cache_key_prefix` (default `acme:cache`).
"""

from acme_pipelines.cache_operators import CacheRefreshOperator
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "cache_refresh",
    schedule="*/15 * * * *",
    doc_md=__doc__,
    tags=["cache", "redis"],
    priority=Priority.NORMAL,
):
    CacheRefreshOperator(task_id="refresh_cache", pool=Pool.CACHE)

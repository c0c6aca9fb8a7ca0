# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Data archival

Sundays: moves fact partitions older than `hot_retention_days` to Parquet in cold
storage (write, verify, record in `ops.archive_manifest`, then delete), restorable
bit for bit.

**Status: not built yet** (issue #5). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "data_archival",
    schedule="0 4 * * 0",
    doc_md=__doc__,
    tags=["archival", "weekly"],
    priority=Priority.LOW,
    built=False,
):
    NotBuiltOperator(issue=5, pool=Pool.OBJECT_STORAGE)

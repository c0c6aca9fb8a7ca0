# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Data archival

Sundays 04:00 UTC: every day of `core.fact_payments`, `core.fact_events` and
`core.fact_pos_sales` older than `hot_retention_days` (variable, default 90)
before the run's day moves to Parquet in cold storage (`cold_storage_root`: a local folder by default, an S3
prefix in production, with the S3 storage class of variable `cold_storage_class`,
e.g. `GLACIER_IR`), one file per table and day:
`{cold_storage_root}/{table}/dt=YYYY-MM-DD/part-000.parquet`.

Per day: write (streamed in batches), read back and verify (row count and content
checksum), record in `ops.archive_manifest`, then delete the day from the
warehouse in one transaction that also stamps the manifest. A crash at any point
loses nothing; a rerun finishes what was started and skips what is done.

Restore a day, verified against the manifest, bit for bit:
`eval "$(make -s env)"; .venv/bin/python -m acme_pipelines.archive restore --table core.fact_payments --day YYYY-MM-DD`.
"""

from acme_pipelines.archive_operators import ArchivePartitionsOperator
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "data_archival",
    schedule="0 4 * * 0",
    doc_md=__doc__,
    tags=["archival", "weekly"],
    priority=Priority.LOW,
):
    ArchivePartitionsOperator(task_id="archive_old_partitions", pool=Pool.OBJECT_STORAGE)

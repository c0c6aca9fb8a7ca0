# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Anomaly detection

Every 30 minutes: order count, revenue and payment failure rate over recent windows
compared with the same window on previous weeks (median/MAD); findings in
`ops.anomalies`, alerts once per anomaly.

**Status: not built yet** (issue #5). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "anomaly_detection",
    schedule="*/30 * * * *",
    doc_md=__doc__,
    tags=["monitoring", "anomalies"],
    priority=Priority.NORMAL,
    built=False,
):
    NotBuiltOperator(issue=5, pool=Pool.WAREHOUSE)

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### ML training

Trains the churn model on `features.customer_features`, evaluates it on a held-out
time split, stores the artifact in object storage and its metrics in
`ml.model_registry`; promotes it to champion only when it beats the current one.

**Status: not built yet** (issue #4). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.assets import CUSTOMER_FEATURES
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "ml_training",
    schedule=[CUSTOMER_FEATURES],
    doc_md=__doc__,
    tags=["ml", "training"],
    priority=Priority.LOW,
    built=False,
):
    NotBuiltOperator(issue=4, pool=Pool.WAREHOUSE)

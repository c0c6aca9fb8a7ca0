# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Feature engineering

Per-customer churn features as of the day (recency, frequency, monetary value,
refunds, events in 7/30 days) into `features.customer_features`, computed in SQL.

**Status: not built yet** (issue #4). Triggering it fails at once with that message;
it is paused when first deployed.
"""

from acme_pipelines.assets import QUALITY_PASSED
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.placeholders import NotBuiltOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "feature_engineering",
    schedule=[QUALITY_PASSED],
    doc_md=__doc__,
    tags=["ml", "features", "daily"],
    priority=Priority.NORMAL,
    built=False,
):
    NotBuiltOperator(issue=4, pool=Pool.WAREHOUSE)

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Feature engineering

Triggered by `data_quality_check` for each day that passes its checks. Builds
per-customer churn features as of the end of the day into
`features.customer_features` (key: customer_id, as_of_date), in SQL in the
warehouse (`include/sql/features/customer_features.sql`): days since signup,
recency, orders in 7/30 days and lifetime, captured revenue and average order
value over 30 days, refunds, failed payments, events in 7/30 days.

`wait_for_quality` refuses a day whose gate is `failed` (a hand-triggered run of a
bad day fails at once). Rerunning a day replaces its rows. Then triggers
`ml_training` for the day.
"""

from acme_pipelines.assets import CUSTOMER_FEATURES
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.downstream import TriggerForPartitionOperator
from acme_pipelines.operators import WarehouseSqlOperator
from acme_pipelines.quality_operators import QualityGateSensor
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "feature_engineering",
    schedule=None,  # data_quality_check triggers it once per passed day
    doc_md=__doc__,
    tags=["ml", "features", "daily"],
    priority=Priority.NORMAL,
):
    gate = QualityGateSensor(task_id="wait_for_quality", pool=Pool.WAREHOUSE)
    features = WarehouseSqlOperator(
        task_id="build_customer_features",
        sql_file="features/customer_features.sql",
        target="features.customer_features",
        partition_column="as_of_date",
        inputs=["core.dim_customer", "core.fact_orders", "core.fact_payments", "core.fact_events"],
        pool=Pool.WAREHOUSE,
        outlets=[CUSTOMER_FEATURES],
    )
    gate >> features >> TriggerForPartitionOperator(trigger_dag_id="ml_training")

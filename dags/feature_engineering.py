# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Feature engineering

Runs when a day passes its quality checks (`quality.daily_passed`). Builds
per-customer churn features as of the end of the day into
`features.customer_features` (key: customer_id, as_of_date), in SQL in the
warehouse (`include/sql/features/customer_features.sql`): days since signup,
recency, orders in 7/30 days and lifetime, captured revenue and average order
value over 30 days, refunds, failed payments, events in 7/30 days.

`wait_for_quality` refuses a day whose gate is `failed` (a hand-triggered run of a
bad day fails at once). Rerunning a day replaces its rows. Publishes
`features.customer_features`, which `ml_training` is scheduled on.
"""

from acme_pipelines.assets import CUSTOMER_FEATURES, QUALITY_PASSED
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.operators import WarehouseSqlOperator
from acme_pipelines.quality_operators import QualityGateSensor
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "feature_engineering",
    schedule=[QUALITY_PASSED],
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
    gate >> features

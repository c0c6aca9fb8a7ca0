# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### ML training

Triggered by `feature_engineering` for each day it builds. Trains the churn
model (scikit-learn logistic regression, seed 42) on `features.customer_features`:
a customer churns after an as-of day when they order nothing in the following
`churn_horizon_days` (variable, default 3). Only as-of days whose horizon has
passed are labelled; the newest of them are the held-out test split.

The artifact goes to `{artifacts_root}/models/churn/churn-YYYYMMDD/model.joblib`,
its metrics to `ml.model_registry`. It becomes the champion only when its ROC AUC
beats the current champion's on the same test rows by more than
`churn_min_improvement` (variable, default 0). Rerunning a day rewrites the same
version. Too little labelled history: the task is skipped and says why.
"""

from acme_pipelines.assets import MODEL_REGISTRY
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.model_operators import TrainChurnModelOperator
from acme_pipelines.quality_operators import QualityGateSensor
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "ml_training",
    schedule=None,  # feature_engineering triggers it once per day
    doc_md=__doc__,
    tags=["ml", "training"],
    priority=Priority.LOW,
):
    gate = QualityGateSensor(task_id="wait_for_quality", pool=Pool.WAREHOUSE)
    train = TrainChurnModelOperator(task_id="train_churn_model", pool=Pool.WAREHOUSE, outlets=[MODEL_REGISTRY])
    gate >> train

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Anomaly detection

Every 30 minutes: order count (`core.fact_orders`), captured revenue and payment
failure rate (`core.fact_payments`) over the hour ending with the run's half hour
(variable `anomaly_window_minutes`, default 60), compared with the same window on
the previous 4 weeks: expected = median, spread = 1.4826 x MAD with a noise floor,
score = (observed - expected) / spread. |score| >= 4 is a warning (Slack), >= 8
critical (PagerDuty and Slack); thresholds in variables `anomaly_warning_score` and
`anomaly_critical_score`.

Findings go to `ops.anomalies`, one row per metric and window (a rerun updates it).
Each anomaly alerts once: a finding that continues an alerted one (same metric and
direction, overlapping window) is stored as suppressed by it. Payments reach the
warehouse with the next `daily_etl`: until then payment metrics of a window are
not scored (the log says so); rerun the window with `-c '{"partition":
"YYYY-MM-DDTHH:MM"}'` to score it later. At least 3 past weeks with data are needed.
"""

from acme_pipelines.anomaly_operators import AnomalyDetectionOperator
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "anomaly_detection",
    schedule="*/30 * * * *",
    doc_md=__doc__,
    tags=["monitoring", "anomalies"],
    priority=Priority.NORMAL,
):
    AnomalyDetectionOperator(task_id="detect_anomalies", pool=Pool.WAREHOUSE)

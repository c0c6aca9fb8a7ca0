# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Daily reports

06:00 UTC: the business report of the day before (the run's data interval).
`wait_for_quality` waits (reschedule mode, no worker slot held) until the day's
quality gate is decided, and fails at once if the day failed: a day that failed
quality is never reported. Then `render_report` writes
`{artifacts_root}/reports/dt=YYYY-MM-DD/report.html` with a 14-day revenue chart
(`revenue_14d.png`) and `report.csv`: revenue, orders, average order value and
refunds from `marts.daily_revenue` with day-over-day and week-over-week changes,
and the top products. A short summary with the link goes to Slack (`slack_reports`).
Rerunning a day overwrites its files and posts again.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.quality_operators import QualityGateSensor
from acme_pipelines.report_operators import DailyReportOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "daily_reports",
    schedule="0 6 * * *",
    doc_md=__doc__,
    tags=["reporting", "daily"],
    priority=Priority.HIGH,
):
    gate = QualityGateSensor(task_id="wait_for_quality", pool=Pool.WAREHOUSE)
    report = DailyReportOperator(task_id="render_report", pool=Pool.OBJECT_STORAGE)
    gate >> report

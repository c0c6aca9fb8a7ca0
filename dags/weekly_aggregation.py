# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Weekly aggregation

`marts.weekly_kpis` for one ISO week, triggered by `data_quality_check` once all 7
days of the week have passed quality, and again when a late day passes (run id
`partition__<Monday>`; `params.partition` names a Monday by hand). Orders, paid orders,
revenue, refunds, average order value and active customers, with week-over-week
changes against the week before (null when that week is incomplete).

It refuses to build a week that is missing days in `marts.daily_revenue` and names
them: rerun `daily_etl` for those days first. Rerunning a week replaces its row.
"""

from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.operators import WarehouseSqlOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "weekly_aggregation",
    schedule=None,  # data_quality_check triggers it when the week is complete
    doc_md=__doc__,
    tags=["marts", "weekly"],
    priority=Priority.NORMAL,
):
    WarehouseSqlOperator(
        task_id="build_weekly_kpis",
        sql_file="marts/weekly_kpis.sql",
        precondition="marts/weekly_kpis_ready.sql",
        target="marts.weekly_kpis",
        partition_column="week_start",
        grain="week",
        inputs=["marts.daily_revenue", "core.fact_orders"],
        pool=Pool.WAREHOUSE,
    )

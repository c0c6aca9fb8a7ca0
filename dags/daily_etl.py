# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Daily ETL

Loads one day (`dt`) of the landing zone into the warehouse:

1. `load_fx_rates`: the day's FX rates from the API (`fx_api`) into `core.fx_rates`;
2. `load_payments`: `payments/dt=.../*.csv[.gz]` into `core.fact_payments`, with
   `amount_usd` from the day's rate;
3. `load_events`: `events/dt=.../*.jsonl[.gz]` into `core.fact_events`;
4. `build_daily_revenue`: `marts.daily_revenue` for the day.

Every source row is accounted for in `ops.load_audit` and `ops.rejected_rows`
(contract §2); a load whose rejected share exceeds the `max_reject_ratio` variable
fails after recording its rejects and publishes nothing. Each load publishes its day
in one transaction, so a retry, rerun or backfill replaces the day, never doubles it.

Which day: `params.partition`, else the data interval (the 02:00 run of 11-02 loads
11-01). Publishes the assets `data_quality_check` is scheduled on.
Runbook: rerun the day (`-c '{"partition": "YYYY-MM-DD"}'`); rejected rows are in
`ops.rejected_rows` with file:line and reason.
"""

from acme_pipelines.assets import DAILY_REVENUE, FACT_EVENTS, FACT_PAYMENTS
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.operators import FxRatesOperator, LandingLoadOperator, WarehouseSqlOperator
from acme_pipelines.resources import Pool, Priority

with pipeline_dag(
    "daily_etl",
    schedule="0 2 * * *",
    doc_md=__doc__,
    tags=["ingestion", "daily", "landing"],
    critical=True,
    priority=Priority.CRITICAL,
):
    fx = FxRatesOperator(task_id="load_fx_rates", pool=Pool.FX_API)
    payments = LandingLoadOperator(
        task_id="load_payments", source="payments", pool=Pool.WAREHOUSE, outlets=[FACT_PAYMENTS]
    )
    events = LandingLoadOperator(task_id="load_events", source="events", pool=Pool.WAREHOUSE, outlets=[FACT_EVENTS])
    revenue = WarehouseSqlOperator(
        task_id="build_daily_revenue",
        sql_file="marts/daily_revenue.sql",
        target="marts.daily_revenue",
        inputs=["core.fact_payments", "core.fact_orders"],
        pool=Pool.WAREHOUSE,
        outlets=[DAILY_REVENUE],
    )
    fx >> payments >> revenue

# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Daily ETL

Loads one day (`dt`) of the landing zone into the warehouse:

0. `wait_for_landing`: waits, deferred to the triggerer (no worker or pool slot), until the
   day's payments, events and point-of-sale files are in the landing zone; fails after the
   `landing_wait_timeout_minutes` variable (default 360) naming the missing prefixes;
1. `load_fx_rates`: the day's FX rates from the API (`fx_api`) into `core.fx_rates` (does not wait);
2. `load_payments`: `payments/dt=.../*.csv[.gz]` into `core.fact_payments`, with
   `amount_usd` from the day's rate;
3. `load_events`: `events/dt=.../*.jsonl[.gz]` into `core.fact_events`;
4. `load_pos`: the stores' point-of-sale databases `pos/dt=.../*.sqlite` (table `sales`,
   docs/contract.md section 1.4) into `core.fact_pos_sales`, with `amount_usd` from the day's rate;
5. `build_daily_revenue`: `marts.daily_revenue` for the day.

Every source row is accounted for in `ops.load_audit` and `ops.rejected_rows`
(contract §2); a load whose rejected share exceeds the `max_reject_ratio` variable
fails after recording its rejects and publishes nothing. Each load publishes its day
in one transaction, so a retry, rerun or backfill replaces the day, never doubles it.

Which day: `params.partition`, else the data interval (the 02:00 run of 11-02 loads
11-01). Then `trigger_data_quality_check` starts `data_quality_check` for the day
(run id `partition__YYYY-MM-DD`; a re-run of the day re-runs that check).
Runbook: rerun the day (`-c '{"partition": "YYYY-MM-DD"}'`); rejected rows are in
`ops.rejected_rows` with file:line and reason.
"""

from acme_pipelines.assets import DAILY_REVENUE, FACT_EVENTS, FACT_PAYMENTS, FACT_POS_SALES
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.downstream import TriggerForPartitionOperator
from acme_pipelines.landing_sensor import LandingFilesSensor
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
    pos = LandingLoadOperator(task_id="load_pos", source="pos", pool=Pool.WAREHOUSE, outlets=[FACT_POS_SALES])
    # the loads read the landing zone only once the day's files are there (fx does not wait for them)
    landing = LandingFilesSensor(
        task_id="wait_for_landing", sources=["payments", "events", "pos"], pool=Pool.OBJECT_STORAGE
    )
    landing >> [payments, events, pos]
    revenue = WarehouseSqlOperator(
        task_id="build_daily_revenue",
        sql_file="marts/daily_revenue.sql",
        target="marts.daily_revenue",
        inputs=["core.fact_payments", "core.fact_orders"],
        pool=Pool.WAREHOUSE,
        outlets=[DAILY_REVENUE],
    )
    fx >> payments >> revenue
    fx >> pos  # amount_usd
    [events, pos, revenue] >> TriggerForPartitionOperator(trigger_dag_id="data_quality_check")

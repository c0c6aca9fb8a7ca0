# Airflow DAG file: declared through acme_pipelines.dag_defaults.pipeline_dag.
"""
### Data quality check

Triggered by `daily_etl` once per day it publishes (run id `partition__YYYY-MM-DD`,
`params.partition` the day; trigger it by hand the same way).
Write-audit-publish: `daily_etl` *writes*, these tasks *audit* the day, and
`publish_gate` *publishes* the verdict to `ops.quality_gate`:

- `check_payments_columns` / `check_events_columns` / `check_pos_sales_columns`: nulls,
  uniqueness, ranges (common-sql `SQLColumnCheckOperator`);
- `check_payments_table`: row count, status mix, amount_usd sign (`SQLTableCheckOperator`);
- `check_pos_sales_table`: the stores' sales of the day exist and were sold around the day;
- `check_payments_vs_*`: payment count and revenue against the day before and the
  same weekday a week before (`SQLIntervalCheckOperator`, ratio < 3);
  `check_pos_sales_vs_week_before`: store sales and their USD amount against the same weekday a week before;
- `check_assertions`: freshness of the hourly sync, row accounting in
  `ops.load_audit`, payments -> orders, events -> customers and store sales -> products
  integrity, and the mart reconciled with the facts (`include/sql/quality/assertions.sql`).

Every outcome lands in `ops.quality_results` (one row per check per run), failed
or not. A failed check fails its task (Slack, and PagerDuty: this DAG is
critical), `publish_gate` records `failed` and fails, and no `quality.daily_passed`
event is emitted and nothing is triggered: features and training do not run on that day.
A passed day triggers `feature_engineering` for the day, and `weekly_aggregation` for its
week once all 7 days of the week have passed (again when a late day passes).
Recover: fix the data (usually rerun `daily_etl` for the day), then rerun this DAG
with `-c '{"partition": "YYYY-MM-DD"}'`.
"""

from acme_pipelines.assets import QUALITY_PASSED
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.downstream import TriggerCompleteWeekOperator, TriggerForPartitionOperator
from acme_pipelines.quality_operators import (
    DayColumnCheckOperator,
    DayIntervalCheckOperator,
    DayTableCheckOperator,
    QualityGateOperator,
    SqlAssertionsOperator,
)
from acme_pipelines.resources import Pool, Priority

# Interval checks: max(today, reference) / min(today, reference) must stay below this.
MAX_RATIO = 3.0
ASSERTION_INPUTS = ["core.fact_payments", "core.fact_events", "core.fact_orders", "core.dim_customer"]
ASSERTION_INPUTS += ["core.fact_pos_sales", "core.dim_product", "marts.daily_revenue", "ops.load_audit"]
PAYMENT_METRICS = {"count(*)": MAX_RATIO, "coalesce(sum(amount_usd), 0)": MAX_RATIO}
POS_SALES_METRICS = {"count(*)": MAX_RATIO, "coalesce(sum(amount_usd), 0)": MAX_RATIO}  # sales and their USD value

with pipeline_dag(
    "data_quality_check",
    schedule=None,  # daily_etl triggers it once per published day
    doc_md=__doc__,
    tags=["quality", "daily"],
    critical=True,
    priority=Priority.HIGH,
):
    checks = [
        DayColumnCheckOperator(
            task_id="check_payments_columns",
            table="core.fact_payments",
            column_mapping={
                "payment_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                "order_id": {"null_check": {"equal_to": 0}},
                "amount": {"min": {"geq_to": 0}},
                "amount_usd": {"min": {"geq_to": 0}, "null_check": {"equal_to": 0}},
            },
            pool=Pool.WAREHOUSE,
        ),
        DayColumnCheckOperator(
            task_id="check_events_columns",
            table="core.fact_events",
            column_mapping={
                "event_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                "session_id": {"null_check": {"equal_to": 0}},
            },
            pool=Pool.WAREHOUSE,
        ),
        DayColumnCheckOperator(
            task_id="check_pos_sales_columns",
            table="core.fact_pos_sales",
            column_mapping={
                "sale_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
                "store_id": {"null_check": {"equal_to": 0}},
                "product_id": {"null_check": {"equal_to": 0}},
                "quantity": {"min": {"geq_to": 1}},
                "amount": {"min": {"geq_to": 0}},
                "amount_usd": {"min": {"geq_to": 0}, "null_check": {"equal_to": 0}},
            },
            pool=Pool.WAREHOUSE,
        ),
        DayTableCheckOperator(
            task_id="check_pos_sales_table",
            table="core.fact_pos_sales",
            checks={
                "has_rows": {"check_statement": "count(*) > 0"},
                "sold_around_the_day": {
                    "check_statement": "sold_at >= dt::timestamptz - interval '1 day' "
                    "AND sold_at < dt::timestamptz + interval '2 days'"
                },
            },
            pool=Pool.WAREHOUSE,
        ),
        DayIntervalCheckOperator(
            task_id="check_pos_sales_vs_week_before",
            table="core.fact_pos_sales",
            days_back=7,
            metrics_thresholds=POS_SALES_METRICS,
            pool=Pool.WAREHOUSE,
        ),
        DayTableCheckOperator(
            task_id="check_payments_table",
            table="core.fact_payments",
            checks={
                "has_rows": {"check_statement": "count(*) > 0"},
                "mostly_captured": {"check_statement": "avg((status = 'captured')::int) >= 0.5"},
                "paid_within_day_or_late": {"check_statement": "paid_at >= dt::timestamptz - interval '1 day'"},
            },
            pool=Pool.WAREHOUSE,
        ),
        *(
            DayIntervalCheckOperator(
                task_id=f"check_payments_vs_{label}",
                table="core.fact_payments",
                days_back=days_back,
                metrics_thresholds=PAYMENT_METRICS,
                pool=Pool.WAREHOUSE,
            )
            for label, days_back in (("day_before", 1), ("week_before", 7))
        ),
        SqlAssertionsOperator(
            task_id="check_assertions",
            sql_file="quality/assertions.sql",
            inputs=ASSERTION_INPUTS,
            pool=Pool.WAREHOUSE,
        ),
    ]
    gate = QualityGateOperator(task_id="publish_gate", pool=Pool.WAREHOUSE, outlets=[QUALITY_PASSED])
    checks >> gate
    gate >> TriggerForPartitionOperator(trigger_dag_id="feature_engineering")
    gate >> TriggerCompleteWeekOperator(trigger_dag_id="weekly_aggregation", pool=Pool.WAREHOUSE)

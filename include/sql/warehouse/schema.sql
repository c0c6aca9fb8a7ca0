-- Warehouse tables of CONTRACT.md §3 (PostgreSQL dialect). Idempotent: applied
-- before every load by WarehouseHook.ensure_schema(), so a new environment
-- needs no manual step. Keys are enforced by the database.
--
-- Fact tables keep one row per business key across all days (a key seen again
-- in a newer partition moves there: "the newer partition wins"), so they are
-- keyed by the business key and indexed by dt: a day's publish, query and
-- archival use the dt index and touch only that day's rows.
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS staging;

CREATE TABLE IF NOT EXISTS core.dim_customer (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    _run_id     text NOT NULL,
    _loaded_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS core.dim_product (
    product_id bigint PRIMARY KEY,
    sku        text NOT NULL,
    name       text NOT NULL,
    category   text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    updated_at timestamptz NOT NULL,
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS core.fact_orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    status      text NOT NULL,
    currency    char(3) NOT NULL,
    order_total numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    _run_id     text NOT NULL,
    _loaded_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_orders_created_at ON core.fact_orders (created_at);

CREATE TABLE IF NOT EXISTS core.fact_order_items (
    order_id   bigint NOT NULL,
    line_no    int NOT NULL,
    product_id bigint NOT NULL,
    quantity   int NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    updated_at timestamptz NOT NULL,
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE IF NOT EXISTS core.fx_rates (
    dt         date NOT NULL,
    currency   char(3) NOT NULL,
    per_usd    numeric(18, 8) NOT NULL CHECK (per_usd > 0),
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL,
    PRIMARY KEY (dt, currency)
);

CREATE TABLE IF NOT EXISTS core.fact_payments (
    payment_id bigint PRIMARY KEY,
    order_id   bigint NOT NULL,
    amount     numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    method     text NOT NULL,
    status     text NOT NULL,
    paid_at    timestamptz NOT NULL,
    amount_usd numeric(14, 2) NOT NULL,
    dt         date NOT NULL,
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_payments_dt ON core.fact_payments (dt);

CREATE TABLE IF NOT EXISTS core.fact_events (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    session_id  text NOT NULL,
    customer_id bigint,
    product_id  bigint,
    properties  jsonb,
    dt          date NOT NULL,
    _run_id     text NOT NULL,
    _loaded_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_events_dt ON core.fact_events (dt);

CREATE TABLE IF NOT EXISTS marts.daily_revenue (
    dt                  date PRIMARY KEY,
    orders              bigint NOT NULL,
    paid_orders         bigint NOT NULL,
    revenue_usd         numeric(16, 2) NOT NULL,
    refunds_usd         numeric(16, 2) NOT NULL,
    avg_order_value_usd numeric(14, 2),
    _run_id             text NOT NULL,
    _loaded_at          timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS ops.load_audit (
    load_id        bigserial PRIMARY KEY,
    dag_id         text NOT NULL,
    task_id        text NOT NULL,
    run_id         text NOT NULL,
    source         text NOT NULL,
    target         text NOT NULL,
    partition      text NOT NULL,
    rows_in        bigint NOT NULL,
    rows_loaded    bigint NOT NULL,
    rows_rejected  bigint NOT NULL,
    rows_duplicate bigint NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('success', 'failed')),
    error          text,
    CHECK (rows_in = rows_loaded + rows_rejected + rows_duplicate)
);
CREATE INDEX IF NOT EXISTS load_audit_target_partition ON ops.load_audit (target, partition);

CREATE TABLE IF NOT EXISTS ops.rejected_rows (
    run_id     text NOT NULL,
    source     text NOT NULL,
    partition  text NOT NULL,
    locator    text NOT NULL,
    reason     text NOT NULL,
    raw_record text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rejected_rows_source_partition ON ops.rejected_rows (source, partition);

-- Migration 0001: the warehouse tables of CONTRACT.md §3 (PostgreSQL dialect), as they
-- stood when versioned migrations began (this was include/sql/warehouse/schema.sql).
-- Applied once, by acme_pipelines.migrations (make migrate, compose's airflow-init, the
-- Helm migration job); tasks only check the version. Never edit this file once it has
-- been applied anywhere (the runner refuses a changed checksum): add 0002_<name>.sql.
-- Keys are enforced by the database. IF NOT EXISTS throughout: a warehouse whose tables
-- the tasks created before migrations existed takes 0001 without a change.
--
-- The two landing fact tables are partitioned by day (PARTITION BY RANGE (dt),
-- one partition per day, made by the loads: acme_pipelines.day_partitions). A
-- day's load either swaps in a new partition or replaces the rows of that one
-- partition; a day's query reads one partition and a day's archival drops one.
-- A partitioned table's primary key must hold dt, so "one row per business key
-- across all days" (a key seen again in a newer day moves there) is kept by the
-- loads, which check the other days' keys (landing_load), not by an index.
-- Tables made before partitioning are converted by the runner in this migration's
-- transaction (day_partitions.convert_unpartitioned before it, refill after it).
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS features;
CREATE SCHEMA IF NOT EXISTS ml;

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
    payment_id bigint NOT NULL,
    order_id   bigint NOT NULL,
    amount     numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    method     text NOT NULL,
    status     text NOT NULL,
    paid_at    timestamptz NOT NULL,
    amount_usd numeric(14, 2) NOT NULL,
    dt         date NOT NULL,
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL,
    PRIMARY KEY (payment_id, dt)
) PARTITION BY RANGE (dt);

CREATE TABLE IF NOT EXISTS core.fact_events (
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    session_id  text NOT NULL,
    customer_id bigint,
    product_id  bigint,
    properties  jsonb,
    dt          date NOT NULL,
    _run_id     text NOT NULL,
    _loaded_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, dt)
) PARTITION BY RANGE (dt);

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

-- Quality: one row per check per DAG run and day (a retry of the run replaces its rows).
CREATE TABLE IF NOT EXISTS ops.quality_results (
    dt          date NOT NULL,
    run_id      text NOT NULL,
    task_id     text NOT NULL,
    check_name  text NOT NULL,
    check_type  text NOT NULL,
    table_name  text,
    column_name text,
    passed      boolean NOT NULL,
    observed    text,
    expected    text,
    content     text,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dt, run_id, task_id, check_name)
);

-- Write-audit-publish gate: the day's verdict of its latest quality run. Consumers
-- (features, training, reports) read only days whose status is 'passed'.
CREATE TABLE IF NOT EXISTS ops.quality_gate (
    dt         date PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('passed', 'failed')),
    run_id     text NOT NULL,
    failed     text[] NOT NULL DEFAULT '{}',
    decided_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS features.customer_features (
    customer_id             bigint NOT NULL,
    as_of_date              date NOT NULL,
    days_since_signup       int NOT NULL,
    recency_days            numeric(10, 2),
    orders_7d               int NOT NULL,
    orders_30d              int NOT NULL,
    orders_lifetime         int NOT NULL,
    monetary_30d_usd        numeric(16, 2) NOT NULL,
    avg_order_value_30d_usd numeric(14, 2),
    refunds_30d_usd         numeric(16, 2) NOT NULL,
    refund_count_30d        int NOT NULL,
    failed_payments_30d     int NOT NULL,
    events_7d               int NOT NULL,
    events_30d              int NOT NULL,
    _run_id                 text NOT NULL,
    _loaded_at              timestamptz NOT NULL,
    PRIMARY KEY (customer_id, as_of_date)
);
CREATE INDEX IF NOT EXISTS customer_features_as_of ON features.customer_features (as_of_date);

CREATE TABLE IF NOT EXISTS ml.model_registry (
    model_version         text PRIMARY KEY,
    trained_for_dt        date NOT NULL,
    run_id                text NOT NULL,
    algorithm             text NOT NULL,
    params                jsonb NOT NULL,
    train_rows            int NOT NULL,
    test_rows             int NOT NULL,
    train_dates           text NOT NULL,
    test_dates            text NOT NULL,
    metric_name           text NOT NULL,
    metric_value          double precision NOT NULL,
    compared_with         text,
    compared_metric_value double precision,
    artifact_path         text NOT NULL,
    artifact_sha256       text NOT NULL,
    is_champion           boolean NOT NULL DEFAULT false,
    promoted_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS model_registry_one_champion ON ml.model_registry (is_champion) WHERE is_champion;

CREATE TABLE IF NOT EXISTS marts.weekly_kpis (
    week_start               date PRIMARY KEY CHECK (extract(isodow FROM week_start) = 1),
    iso_week                 text NOT NULL,
    orders                   bigint NOT NULL,
    paid_orders              bigint NOT NULL,
    revenue_usd              numeric(16, 2) NOT NULL,
    refunds_usd              numeric(16, 2) NOT NULL,
    avg_order_value_usd      numeric(14, 2),
    active_customers         bigint NOT NULL,
    orders_wow_pct           numeric(10, 2),
    revenue_wow_pct          numeric(10, 2),
    refunds_wow_pct          numeric(10, 2),
    avg_order_value_wow_pct  numeric(10, 2),
    active_customers_wow_pct numeric(10, 2),
    _run_id                  text NOT NULL,
    _loaded_at               timestamptz NOT NULL
);

-- Anomalies: one row per metric and window (a rerun of the window updates it, never adds one).
CREATE TABLE IF NOT EXISTS ops.anomalies (
    anomaly_id    bigserial PRIMARY KEY,
    metric        text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    observed      double precision NOT NULL,
    expected      double precision NOT NULL,
    scale         double precision NOT NULL,
    score         double precision NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('warning', 'critical')),
    direction     text NOT NULL CHECK (direction IN ('spike', 'drop')),
    baseline      double precision[] NOT NULL,
    run_id        text NOT NULL,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    alerted_at    timestamptz,
    alerted_via   text,
    suppressed_by bigint REFERENCES ops.anomalies (anomaly_id),
    UNIQUE (metric, window_start, window_end)
);

-- Archive manifest: one row per archived partition. deleted_from_warehouse_at is set in the
-- same transaction as the delete; a restore clears it (and sets restored_at).
CREATE TABLE IF NOT EXISTS ops.archive_manifest (
    table_name                text NOT NULL,
    partition                 date NOT NULL,
    object_path               text NOT NULL,
    row_count                 bigint NOT NULL,
    checksum                  text NOT NULL,
    bytes                     bigint,
    run_id                    text NOT NULL,
    archived_at               timestamptz NOT NULL DEFAULT now(),
    deleted_from_warehouse_at timestamptz,
    restored_at               timestamptz,
    PRIMARY KEY (table_name, partition)
);

-- The time window of every load whose partition is a time window (the hourly sync's
-- "YYYY-MM-DDTHH:MM" hour, or a catch-up's "start/end"); freshness and anomaly checks read it.
CREATE OR REPLACE VIEW ops.load_windows AS
SELECT load_id, target, status, finished_at,
       CASE WHEN partition LIKE '%/%' THEN split_part(partition, '/', 1)::timestamptz
            ELSE partition::timestamptz END AS window_start,
       CASE WHEN partition LIKE '%/%' THEN split_part(partition, '/', 2)::timestamptz
            ELSE partition::timestamptz + interval '1 hour' END AS window_end
FROM ops.load_audit
WHERE partition LIKE '____-__-__T__:__%';

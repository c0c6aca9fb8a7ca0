-- Migration 0002: core.fact_pos_sales, the stores' point-of-sale sales (docs/contract.md section 1.4),
-- loaded by daily_etl's load_pos from one SQLite file per day in the landing zone's pos folder.
-- Partitioned by day like core.fact_payments (migration 0001): one partition per day, made
-- by the loads (acme_pipelines.day_partitions), which also keep sale_id unique across days
-- (a partitioned table's primary key must hold dt). amount_usd comes from the day's FX rate.
-- No CHECK constraints: a day's partition is built from the catalogue's columns and attached,
-- and ATTACH would demand the parent's CHECKs of it; the loads enforce the rules (quantity > 0).
CREATE TABLE IF NOT EXISTS core.fact_pos_sales (
    sale_id    bigint NOT NULL,
    store_id   bigint NOT NULL,
    product_id bigint NOT NULL,
    quantity   int NOT NULL,
    amount     numeric(12, 2) NOT NULL,
    currency   char(3) NOT NULL,
    sold_at    timestamptz NOT NULL,
    amount_usd numeric(14, 2) NOT NULL,
    dt         date NOT NULL,
    _run_id    text NOT NULL,
    _loaded_at timestamptz NOT NULL,
    PRIMARY KEY (sale_id, dt)
) PARTITION BY RANGE (dt);

-- features.customer_features as of the end of %(dt)s, for every customer signed up by then.
-- Windows end at the day's end: "7d" is (dt - 7 days, dt]. Rebuilt in the caller's transaction.
DELETE FROM features.customer_features WHERE as_of_date = %(dt)s;

INSERT INTO features.customer_features (
    customer_id, as_of_date, days_since_signup, recency_days, orders_7d, orders_30d, orders_lifetime,
    monetary_30d_usd, avg_order_value_30d_usd, refunds_30d_usd, refund_count_30d, failed_payments_30d,
    events_7d, events_30d, _run_id, _loaded_at
)
WITH bounds AS (
    SELECT %(dt)s::date AS as_of, (%(dt)s::date + 1)::timestamptz AS cutoff
),
orders AS (
    SELECT o.customer_id,
           count(*) FILTER (WHERE o.created_at >= b.cutoff - interval '7 days') AS orders_7d,
           count(*) FILTER (WHERE o.created_at >= b.cutoff - interval '30 days') AS orders_30d,
           count(*) AS orders_lifetime,
           max(o.created_at) AS last_order_at
    FROM core.fact_orders o CROSS JOIN bounds b
    WHERE o.created_at < b.cutoff
    GROUP BY o.customer_id
),
payments AS (
    SELECT o.customer_id,
           coalesce(sum(p.amount_usd) FILTER (WHERE p.status = 'captured'), 0) AS captured_usd,
           count(DISTINCT p.order_id) FILTER (WHERE p.status = 'captured') AS paid_orders,
           coalesce(sum(p.amount_usd) FILTER (WHERE p.status = 'refunded'), 0) AS refunds_usd,
           count(*) FILTER (WHERE p.status = 'refunded') AS refund_count,
           count(*) FILTER (WHERE p.status = 'failed') AS failed_count
    FROM core.fact_payments p
    JOIN core.fact_orders o ON o.order_id = p.order_id
    CROSS JOIN bounds b
    WHERE p.dt > b.as_of - 30 AND p.dt <= b.as_of
    GROUP BY o.customer_id
),
events AS (
    SELECT e.customer_id,
           count(*) FILTER (WHERE e.dt > b.as_of - 7) AS events_7d,
           count(*) AS events_30d
    FROM core.fact_events e CROSS JOIN bounds b
    WHERE e.customer_id IS NOT NULL AND e.dt > b.as_of - 30 AND e.dt <= b.as_of
    GROUP BY e.customer_id
)
SELECT c.customer_id,
       b.as_of,
       b.as_of - (c.created_at AT TIME ZONE 'UTC')::date,
       -- days since the last order's second (Snowflake's epoch seconds are whole), in hundredths rounded half
       -- away from zero: a tie is x.5 hundredths, exact even where the division is DOUBLE (the fakesnow server)
       round((extract(epoch FROM b.cutoff) - floor(extract(epoch FROM o.last_order_at))) * 100 / 86400) / 100,
       coalesce(o.orders_7d, 0),
       coalesce(o.orders_30d, 0),
       coalesce(o.orders_lifetime, 0),
       coalesce(p.captured_usd, 0),
       -- in cents, rounded half away from zero: exact on both warehouses (the fakesnow server divides as DOUBLE)
       round(round(p.captured_usd * 100) / nullif(p.paid_orders, 0)) / 100,
       coalesce(p.refunds_usd, 0),
       coalesce(p.refund_count, 0),
       coalesce(p.failed_count, 0),
       coalesce(e.events_7d, 0),
       coalesce(e.events_30d, 0),
       %(run_id)s,
       now()
FROM core.dim_customer c
CROSS JOIN bounds b
LEFT JOIN orders o ON o.customer_id = c.customer_id
LEFT JOIN payments p ON p.customer_id = c.customer_id
LEFT JOIN events e ON e.customer_id = c.customer_id
WHERE c.created_at < b.cutoff;

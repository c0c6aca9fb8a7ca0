-- The three metrics for the window [%(start)s, %(end)s) and the same window 1..%(weeks)s weeks earlier.
-- covered_orders / covered_payments: whether that window's data is in the warehouse at all (a sync
-- reached its end; the day's payments were loaded), so missing history is never read as zeros.
-- Written for PostgreSQL in SQL that SQLGlot carries to Snowflake (no generate_series, no LATERAL).
WITH RECURSIVE weeks (k) AS (
    SELECT 0
    UNION ALL
    SELECT k + 1 FROM weeks WHERE k < %(weeks)s
),
windows AS (
    SELECT k, %(start)s::timestamptz - (7 * k) * interval '1 day' AS ws,
              %(end)s::timestamptz - (7 * k) * interval '1 day' AS we
    FROM weeks
),
synced AS (
    SELECT min(window_start) AS since, max(window_end) AS until
    FROM ops.load_windows
    WHERE target = 'core.fact_orders' AND status = 'success'
),
loaded_days AS (
    SELECT DISTINCT partition FROM ops.load_audit WHERE target = 'core.fact_payments' AND status = 'success'
),
orders AS (
    SELECT w.k, count(o.order_id) AS orders
    FROM windows w
    LEFT JOIN core.fact_orders o ON o.created_at >= w.ws AND o.created_at < w.we
    GROUP BY w.k
),
payments AS (
    SELECT w.k,
           coalesce(sum(p.amount_usd) FILTER (WHERE p.status = 'captured'), 0) AS revenue_usd,
           count(p.payment_id) AS attempts,
           count(*) FILTER (WHERE p.status = 'failed') AS failed
    FROM windows w
    LEFT JOIN core.fact_payments p
        ON p.dt BETWEEN w.ws::date - 1 AND w.we::date AND p.paid_at >= w.ws AND p.paid_at < w.we
    GROUP BY w.k
)
SELECT w.k,
       w.ws,
       s.since <= w.ws AND s.until >= w.we AS covered_orders,
       d1.partition IS NOT NULL OR d2.partition IS NOT NULL AS covered_payments,
       o.orders,
       p.revenue_usd,
       p.attempts,
       p.failed
FROM windows w
CROSS JOIN synced s
JOIN orders o ON o.k = w.k
JOIN payments p ON p.k = w.k
LEFT JOIN loaded_days d1 ON d1.partition = w.ws::date::text
LEFT JOIN loaded_days d2 ON d2.partition = (w.we - interval '1 microsecond')::date::text
ORDER BY w.k;

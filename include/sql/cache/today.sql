-- Today's totals so far: orders placed in [%(day_start)s, %(until)s) and their booked value in USD
-- (order totals of orders not cancelled, at the latest FX rates known on or before the day; payments
-- arrive with the next daily_etl, orders every hour).
WITH rates AS (
    SELECT DISTINCT ON (currency) currency, per_usd
    FROM core.fx_rates
    WHERE dt <= %(day_start)s::date
    ORDER BY currency, dt DESC
)
SELECT count(*) AS orders,
       count(*) FILTER (WHERE o.status <> 'cancelled') AS active_orders,
       coalesce(round(sum(o.order_total / r.per_usd) FILTER (WHERE o.status <> 'cancelled'), 2), 0)::numeric(16, 2)
           AS booked_usd,
       count(*) FILTER (WHERE r.currency IS NULL) AS without_rate
FROM core.fact_orders o
LEFT JOIN rates r ON r.currency = o.currency
WHERE o.created_at >= %(day_start)s AND o.created_at < %(until)s;

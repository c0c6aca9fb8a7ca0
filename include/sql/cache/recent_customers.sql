-- Summaries of the customers who ordered in the last %(recent_days)s days before %(until)s.
WITH rates AS (
    SELECT DISTINCT ON (currency) currency, per_usd
    FROM core.fx_rates
    WHERE dt <= %(until)s::date
    ORDER BY currency, dt DESC
),
recent AS (
    SELECT DISTINCT customer_id FROM core.fact_orders
    WHERE created_at >= %(until)s::timestamptz - %(recent_days)s * interval '1 day' AND created_at < %(until)s
)
SELECT o.customer_id,
       count(*) AS lifetime_orders,
       count(*) FILTER (WHERE o.created_at >= %(until)s::timestamptz - %(recent_days)s * interval '1 day') AS recent_orders,
       coalesce(round(sum(o.order_total / r.per_usd) FILTER (WHERE o.status <> 'cancelled'), 2), 0)::numeric(16, 2)
           AS lifetime_booked_usd,
       max(o.created_at) AS last_order_at
FROM core.fact_orders o
JOIN recent USING (customer_id)
LEFT JOIN rates r ON r.currency = o.currency
WHERE o.created_at < %(until)s
GROUP BY o.customer_id
ORDER BY o.customer_id;

-- Top products by booked value in USD of the orders placed in [%(day_start)s, %(until)s) and not cancelled,
-- at the latest FX rates known on the day. The daily report (a whole day) and the cache (today so far) use it.
WITH rates AS (
    SELECT DISTINCT ON (currency) currency, per_usd
    FROM core.fx_rates
    WHERE dt <= %(day_start)s::date
    ORDER BY currency, dt DESC
)
SELECT p.product_id, p.name, p.category, sum(i.quantity) AS units,
       round(sum(i.quantity * i.unit_price / r.per_usd), 2)::numeric(16, 2) AS booked_usd
FROM core.fact_orders o
JOIN core.fact_order_items i ON i.order_id = o.order_id
JOIN core.dim_product p ON p.product_id = i.product_id
JOIN rates r ON r.currency = o.currency
WHERE o.created_at >= %(day_start)s AND o.created_at < %(until)s AND o.status <> 'cancelled'
GROUP BY p.product_id, p.name, p.category
ORDER BY booked_usd DESC, p.product_id
LIMIT %(limit)s;

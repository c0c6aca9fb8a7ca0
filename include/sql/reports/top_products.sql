-- Top products of the day (%(dt)s) by revenue in USD of the items of orders placed that day
-- and not cancelled, converted with the day's FX rates.
SELECT pr.product_id, pr.name, pr.category,
       sum(i.quantity) AS units,
       round(sum(i.quantity * i.unit_price / fx.per_usd), 2) AS revenue_usd
FROM core.fact_orders o
JOIN core.fact_order_items i ON i.order_id = o.order_id
JOIN core.dim_product pr ON pr.product_id = i.product_id
JOIN core.fx_rates fx ON fx.dt = %(dt)s AND fx.currency = o.currency
WHERE o.created_at >= %(dt)s::date AND o.created_at < %(dt)s::date + 1 AND o.status <> 'cancelled'
GROUP BY pr.product_id, pr.name, pr.category
ORDER BY revenue_usd DESC, pr.product_id
LIMIT %(limit)s;

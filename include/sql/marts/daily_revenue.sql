-- marts.daily_revenue for one day (%(dt)s), rebuilt in the caller's transaction.
-- Orders: placed that day (core.fact_orders.created_at). Revenue: captured
-- payments of the day in USD; refunds: refunded payments of the day.
DELETE FROM marts.daily_revenue WHERE dt = %(dt)s;

INSERT INTO marts.daily_revenue
    (dt, orders, paid_orders, revenue_usd, refunds_usd, avg_order_value_usd, _run_id, _loaded_at)
SELECT
    %(dt)s::date,
    (SELECT count(*) FROM core.fact_orders
      WHERE created_at >= %(dt)s::date AND created_at < %(dt)s::date + 1),
    count(DISTINCT p.order_id) FILTER (WHERE p.status = 'captured'),
    coalesce(sum(p.amount_usd) FILTER (WHERE p.status = 'captured'), 0),
    coalesce(sum(p.amount_usd) FILTER (WHERE p.status = 'refunded'), 0),
    round(sum(p.amount_usd) FILTER (WHERE p.status = 'captured')
          / nullif(count(DISTINCT p.order_id) FILTER (WHERE p.status = 'captured'), 0), 2),
    %(run_id)s,
    now()
FROM core.fact_payments p
WHERE p.dt = %(dt)s;

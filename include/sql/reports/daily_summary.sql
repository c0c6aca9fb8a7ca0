-- The day's business numbers (%(dt)s) from marts.daily_revenue, with the day before and the
-- same weekday a week before, and the day's refunds; one row.
SELECT d.dt,
       d.orders, d.paid_orders, d.revenue_usd, d.refunds_usd, d.avg_order_value_usd,
       p.revenue_usd AS revenue_prev_day, w.revenue_usd AS revenue_prev_week,
       p.orders AS orders_prev_day, w.orders AS orders_prev_week,
       p.avg_order_value_usd AS aov_prev_day, w.avg_order_value_usd AS aov_prev_week,
       p.refunds_usd AS refunds_prev_day, w.refunds_usd AS refunds_prev_week
FROM marts.daily_revenue d
LEFT JOIN marts.daily_revenue p ON p.dt = d.dt - 1
LEFT JOIN marts.daily_revenue w ON w.dt = d.dt - 7
WHERE d.dt = %(dt)s;

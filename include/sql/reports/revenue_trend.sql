-- Revenue and orders of the 14 days up to %(dt)s, for the report's chart.
SELECT dt, revenue_usd, refunds_usd, orders
FROM marts.daily_revenue
WHERE dt > %(dt)s::date - 14 AND dt <= %(dt)s
ORDER BY dt;

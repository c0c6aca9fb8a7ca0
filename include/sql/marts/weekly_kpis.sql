-- marts.weekly_kpis for the ISO week starting Monday %(dt)s, with week-over-week changes
-- against the week before (null when that week is not complete in marts.daily_revenue).
DELETE FROM marts.weekly_kpis WHERE week_start = %(dt)s;

INSERT INTO marts.weekly_kpis (
    week_start, iso_week, orders, paid_orders, revenue_usd, refunds_usd, avg_order_value_usd, active_customers,
    orders_wow_pct, revenue_wow_pct, refunds_wow_pct, avg_order_value_wow_pct, active_customers_wow_pct,
    _run_id, _loaded_at
)
WITH weeks AS (
    SELECT w.week_start,
           count(r.dt) AS days,
           coalesce(sum(r.orders), 0) AS orders,
           coalesce(sum(r.paid_orders), 0) AS paid_orders,
           coalesce(sum(r.revenue_usd), 0) AS revenue_usd,
           coalesce(sum(r.refunds_usd), 0) AS refunds_usd,
           round(sum(r.revenue_usd) / nullif(sum(r.paid_orders), 0), 2) AS avg_order_value_usd,
           (SELECT count(DISTINCT o.customer_id) FROM core.fact_orders o
             WHERE o.created_at >= w.week_start AND o.created_at < w.week_start + 7) AS active_customers
    FROM (VALUES (%(dt)s::date), (%(dt)s::date - 7)) AS w (week_start)
    LEFT JOIN marts.daily_revenue r ON r.dt >= w.week_start AND r.dt < w.week_start + 7
    GROUP BY w.week_start
),
cur AS (SELECT * FROM weeks WHERE week_start = %(dt)s::date),
prev AS (SELECT * FROM weeks WHERE week_start = %(dt)s::date - 7 AND days = 7)
SELECT cur.week_start,
       extract(isoyear FROM cur.week_start)::text || '-W' || lpad(extract(week FROM cur.week_start)::text, 2, '0'),
       cur.orders, cur.paid_orders, cur.revenue_usd, cur.refunds_usd, cur.avg_order_value_usd, cur.active_customers,
       round(100.0 * (cur.orders - prev.orders) / nullif(prev.orders, 0), 2),
       round(100.0 * (cur.revenue_usd - prev.revenue_usd) / nullif(prev.revenue_usd, 0), 2),
       round(100.0 * (cur.refunds_usd - prev.refunds_usd) / nullif(prev.refunds_usd, 0), 2),
       round(100.0 * (cur.avg_order_value_usd - prev.avg_order_value_usd) / nullif(prev.avg_order_value_usd, 0), 2),
       round(100.0 * (cur.active_customers - prev.active_customers) / nullif(prev.active_customers, 0), 2),
       %(run_id)s,
       now()
FROM cur LEFT JOIN prev ON true;

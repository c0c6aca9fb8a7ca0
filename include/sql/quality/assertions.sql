-- Checks of one day (%(dt)s) that the common-sql check operators cannot express.
-- One row per check: check_name, check_type, table_name, passed, observed, expected, content.
-- Written for PostgreSQL in SQL that SQLGlot carries to Snowflake (hook.statements): no format(), no LATERAL.

-- Freshness: successful hourly syncs of orders reach the end of the day (ops.load_windows).
SELECT 'freshness:core.fact_orders' AS check_name, 'freshness' AS check_type, 'core.fact_orders' AS table_name,
       coalesce(max(w.window_end) >= %(dt)s::date + 1, false) AS passed,
       'synced up to ' || coalesce(max(w.window_end)::text, 'never') AS observed,
       '>= ' || (%(dt)s::date + 1)::timestamptz::text AS expected,
       'latest window end of successful syncs of core.fact_orders' AS content
FROM ops.load_windows w
WHERE w.target = 'core.fact_orders' AND w.status = 'success'

UNION ALL
-- Row accounting: the day's latest load of each landing source succeeded, its counts add up
-- (contract section 2), and the fact table holds exactly the rows it says it loaded.
SELECT 'accounting:' || t.target, 'row_accounting', t.target,
       coalesce(a.status = 'success'
                AND a.rows_in = a.rows_loaded + a.rows_rejected + a.rows_duplicate
                AND a.rows_loaded = t.published, false),
       'status ' || coalesce(a.status, 'no load')
           || ', in ' || coalesce(a.rows_in::text, '') || ' = loaded ' || coalesce(a.rows_loaded::text, '')
           || ' + rejected ' || coalesce(a.rows_rejected::text, '')
           || ' + duplicate ' || coalesce(a.rows_duplicate::text, '') || '; published ' || t.published::text,
       'latest load succeeded, in = loaded + rejected + duplicate, published = loaded',
       'ops.load_audit latest row for (target, partition) vs count(*) of the day'
FROM (
    SELECT 'core.fact_payments' AS target, (SELECT count(*) FROM core.fact_payments WHERE dt = %(dt)s) AS published
    UNION ALL
    SELECT 'core.fact_events', (SELECT count(*) FROM core.fact_events WHERE dt = %(dt)s)
    UNION ALL
    SELECT 'core.fact_pos_sales', (SELECT count(*) FROM core.fact_pos_sales WHERE dt = %(dt)s)
) t
LEFT JOIN (
    SELECT la.target, la.status, la.rows_in, la.rows_loaded, la.rows_rejected, la.rows_duplicate,
           row_number() OVER (PARTITION BY la.target ORDER BY la.finished_at DESC, la.load_id DESC) AS latest
    FROM ops.load_audit la
    WHERE la.partition = %(dt)s::date::text
) a ON a.target = t.target AND a.latest = 1

UNION ALL
-- Referential integrity: every payment of the day belongs to a known order.
SELECT 'integrity:fact_payments.order_id', 'referential_integrity', 'core.fact_payments',
       count(*) = 0, count(*)::text || ' orphan payments', '0',
       'payments of the day whose order_id is not in core.fact_orders'
FROM core.fact_payments p
WHERE p.dt = %(dt)s AND NOT EXISTS (SELECT 1 FROM core.fact_orders o WHERE o.order_id = p.order_id)

UNION ALL
-- Referential integrity: events that name a customer name a known one.
SELECT 'integrity:fact_events.customer_id', 'referential_integrity', 'core.fact_events',
       count(*) = 0, count(*)::text || ' events of unknown customers', '0',
       'events of the day whose customer_id is not null and not in core.dim_customer'
FROM core.fact_events e
WHERE e.dt = %(dt)s AND e.customer_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM core.dim_customer c WHERE c.customer_id = e.customer_id)

UNION ALL
-- Referential integrity: the stores sold products the shop knows.
SELECT 'integrity:fact_pos_sales.product_id', 'referential_integrity', 'core.fact_pos_sales',
       count(*) = 0, count(*)::text || ' sales of unknown products', '0',
       'store sales of the day whose product_id is not in core.dim_product'
FROM core.fact_pos_sales s
WHERE s.dt = %(dt)s AND NOT EXISTS (SELECT 1 FROM core.dim_product p WHERE p.product_id = s.product_id)

UNION ALL
-- One row per business key across all days (contract section 1.2). The fact tables are partitioned by day,
-- so no index enforces it; the loads do (acme_pipelines.day_partitions), and this checks the day's keys.
-- The two ranges of dt skip the day's own partition; the day's smallest and largest key bound each other
-- day's key index read (payment and sale ids grow with time; event UUIDs do not, so that one reads more).
SELECT 'unique_across_days:core.fact_payments', 'uniqueness', 'core.fact_payments',
       count(*) = 0, count(*)::text || ' payment ids of the day also in other days', '0',
       'rows of other days whose payment_id the day also holds'
FROM core.fact_payments o
WHERE (o.dt < %(dt)s::date OR o.dt >= %(dt)s::date + 1)
  AND o.payment_id BETWEEN (SELECT min(payment_id) FROM core.fact_payments WHERE dt = %(dt)s)
                       AND (SELECT max(payment_id) FROM core.fact_payments WHERE dt = %(dt)s)
  AND EXISTS (SELECT 1 FROM core.fact_payments d WHERE d.dt = %(dt)s AND d.payment_id = o.payment_id)

UNION ALL
SELECT 'unique_across_days:core.fact_events', 'uniqueness', 'core.fact_events',
       count(*) = 0, count(*)::text || ' event ids of the day also in other days', '0',
       'rows of other days whose event_id the day also holds'
FROM core.fact_events o
WHERE (o.dt < %(dt)s::date OR o.dt >= %(dt)s::date + 1)
  AND o.event_id BETWEEN (SELECT min(event_id) FROM core.fact_events WHERE dt = %(dt)s)
                     AND (SELECT max(event_id) FROM core.fact_events WHERE dt = %(dt)s)
  AND EXISTS (SELECT 1 FROM core.fact_events d WHERE d.dt = %(dt)s AND d.event_id = o.event_id)

UNION ALL
SELECT 'unique_across_days:core.fact_pos_sales', 'uniqueness', 'core.fact_pos_sales',
       count(*) = 0, count(*)::text || ' sale ids of the day also in other days', '0',
       'rows of other days whose sale_id the day also holds'
FROM core.fact_pos_sales o
WHERE (o.dt < %(dt)s::date OR o.dt >= %(dt)s::date + 1)
  AND o.sale_id BETWEEN (SELECT min(sale_id) FROM core.fact_pos_sales WHERE dt = %(dt)s)
                    AND (SELECT max(sale_id) FROM core.fact_pos_sales WHERE dt = %(dt)s)
  AND EXISTS (SELECT 1 FROM core.fact_pos_sales d WHERE d.dt = %(dt)s AND d.sale_id = o.sale_id)

UNION ALL
-- The mart agrees with the facts it was built from.
SELECT 'reconciliation:marts.daily_revenue', 'reconciliation', 'marts.daily_revenue',
       coalesce(r.revenue_usd = f.revenue AND r.refunds_usd = f.refunds, false),
       'mart ' || coalesce(r.revenue_usd::text, '') || ' / ' || coalesce(r.refunds_usd::text, '')
           || ', facts ' || f.revenue::text || ' / ' || f.refunds::text,
       'mart revenue and refunds = sums of captured and refunded payments',
       'marts.daily_revenue vs core.fact_payments of the day'
FROM (
    -- rounded to cents: exact on both warehouses; the fakesnow server sums NUMBER columns as DOUBLE
    SELECT round(coalesce(sum(amount_usd) FILTER (WHERE status = 'captured'), 0), 2) AS revenue,
           round(coalesce(sum(amount_usd) FILTER (WHERE status = 'refunded'), 0), 2) AS refunds
    FROM core.fact_payments WHERE dt = %(dt)s
) f
LEFT JOIN marts.daily_revenue r ON r.dt = %(dt)s;

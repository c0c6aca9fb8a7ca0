-- The three metrics for the window [%(start)s, %(end)s) and the same window 1..%(weeks)s weeks earlier.
-- covered_orders / covered_payments: whether that window's data is in the warehouse at all (a sync
-- reached its end; the day's payments were loaded), so missing history is never read as zeros.
WITH windows AS (
    SELECT k, %(start)s::timestamptz - make_interval(days => 7 * k) AS ws,
              %(end)s::timestamptz - make_interval(days => 7 * k) AS we
    FROM generate_series(0, %(weeks)s) AS k
),
synced AS (
    SELECT min(window_start) AS since, max(window_end) AS until
    FROM ops.load_windows
    WHERE target = 'core.fact_orders' AND status = 'success'
)
SELECT w.k,
       w.ws,
       s.since <= w.ws AND s.until >= w.we AS covered_orders,
       EXISTS (SELECT 1 FROM ops.load_audit a
               WHERE a.target = 'core.fact_payments' AND a.status = 'success'
                 AND a.partition IN (w.ws::date::text, (w.we - interval '1 microsecond')::date::text)) AS covered_payments,
       (SELECT count(*) FROM core.fact_orders o WHERE o.created_at >= w.ws AND o.created_at < w.we) AS orders,
       p.revenue_usd,
       p.attempts,
       p.failed
FROM windows w
CROSS JOIN synced s
CROSS JOIN LATERAL (
    SELECT coalesce(sum(amount_usd) FILTER (WHERE status = 'captured'), 0) AS revenue_usd,
           count(*) AS attempts,
           count(*) FILTER (WHERE status = 'failed') AS failed
    FROM core.fact_payments
    WHERE dt BETWEEN w.ws::date - 1 AND w.we::date AND paid_at >= w.ws AND paid_at < w.we
) p
ORDER BY w.k;

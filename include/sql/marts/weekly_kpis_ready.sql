-- Precondition of weekly_kpis.sql: all seven days of the week are in marts.daily_revenue.
-- Written for PostgreSQL in SQL that SQLGlot carries to Snowflake (no generate_series, no format()).
SELECT count(r.dt) = 7 AS ok,
       'week of ' || (%(dt)s::date)::text || ' has ' || count(r.dt)::text
           || ' of 7 days in marts.daily_revenue (missing: '
           || coalesce(string_agg(w.d::text, ', ' ORDER BY w.d) FILTER (WHERE r.dt IS NULL), 'none')
           || '); run daily_etl for them first' AS message
FROM (
    SELECT %(dt)s::date + o.n AS d FROM (VALUES (0), (1), (2), (3), (4), (5), (6)) AS o (n)
) w
LEFT JOIN marts.daily_revenue r ON r.dt = w.d;

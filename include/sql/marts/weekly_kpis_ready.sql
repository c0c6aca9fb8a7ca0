-- Precondition of weekly_kpis.sql: all seven days of the week are in marts.daily_revenue.
SELECT count(r.dt) = 7 AS ok,
       format('week of %%s has %%s of 7 days in marts.daily_revenue (missing: %%s); run daily_etl for them first',
              %(dt)s::date, count(r.dt),
              coalesce(string_agg(d::date::text, ', ') FILTER (WHERE r.dt IS NULL), 'none')) AS message
FROM generate_series(%(dt)s::date, %(dt)s::date + 6, interval '1 day') AS d
LEFT JOIN marts.daily_revenue r ON r.dt = d::date;

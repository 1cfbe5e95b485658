-- materialized: table
-- description: Cross-sectional beta deciles each month (market factor), daily- and monthly-based
WITH b AS (
    SELECT month, model, estimator, beta FROM marts.betas_month_end
    WHERE factor IN ('mkt_excess', 'mkt_rf')
    UNION ALL
    SELECT month, model, estimator, beta FROM betas.monthly
    WHERE factor IN ('mkt_excess', 'mkt_rf')
),
q AS (
    SELECT month, model, estimator, count(*) AS n,
           quantile_cont(beta, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) AS qs
    FROM b GROUP BY month, model, estimator
)
SELECT month, model, estimator, d.decile, qs[d.decile] AS beta, n
FROM q CROSS JOIN (SELECT unnest(range(1, 10)) AS decile) d
ORDER BY month, model, estimator, d.decile

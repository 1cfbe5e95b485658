-- materialized: table
-- description: Share of stocks with a return in a month that have a beta estimate (coverage)
WITH universe AS (
    SELECT month, count(DISTINCT symbol) AS n_stocks FROM returns.monthly GROUP BY month
),
estimated AS (
    SELECT month, model, estimator, count(DISTINCT symbol) AS n_with_beta
    FROM marts.betas_month_end GROUP BY ALL
    UNION ALL
    SELECT month, model, estimator, count(DISTINCT symbol) FROM betas.monthly GROUP BY ALL
)
SELECT e.month, e.model, e.estimator, u.n_stocks, e.n_with_beta,
       e.n_with_beta / u.n_stocks AS share
FROM estimated e JOIN universe u USING (month)
ORDER BY e.month, e.model, e.estimator

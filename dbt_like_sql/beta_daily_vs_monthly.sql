-- materialized: table
-- description: Correlation of daily-based (OLS 252 days) and monthly-based (OLS 60 months) CAPM betas
WITH d AS (
    SELECT month, symbol, beta AS beta_daily FROM marts.betas_month_end
    WHERE model = 'capm' AND estimator = 'ols_252' AND factor = 'mkt_excess'
),
m AS (
    SELECT month, symbol, beta AS beta_monthly FROM betas.monthly
    WHERE model = 'capm' AND factor = 'mkt_excess'
),
j AS (SELECT * FROM d JOIN m USING (month, symbol))
SELECT 'all' AS period, corr(beta_daily, beta_monthly) AS correlation, count(*) AS n FROM j
UNION ALL
SELECT CAST(year(month) AS VARCHAR), corr(beta_daily, beta_monthly), count(*) FROM j
GROUP BY year(month)
ORDER BY period

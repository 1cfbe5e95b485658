-- materialized: table
-- description: Descriptive statistics of betas per frequency, model, estimator and factor (Tidy Finance)
WITH all_betas AS (
    SELECT 'daily (month-end)' AS frequency, model, estimator, factor, beta FROM marts.betas_month_end
    UNION ALL
    SELECT 'monthly' AS frequency, model, estimator, factor, beta FROM betas.monthly
)
SELECT frequency, model, estimator, factor,
       avg(beta) AS mean, stddev_samp(beta) AS sd, min(beta) AS min,
       quantile_cont(beta, 0.05) AS q05, quantile_cont(beta, 0.25) AS q25,
       quantile_cont(beta, 0.50) AS q50, quantile_cont(beta, 0.75) AS q75,
       quantile_cont(beta, 0.95) AS q95, max(beta) AS max, count(*) AS n
FROM all_betas
WHERE beta IS NOT NULL
GROUP BY ALL
ORDER BY frequency, model, estimator, factor

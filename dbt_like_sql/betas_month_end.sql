-- materialized: table
-- description: Month-end snapshot of daily betas: each symbol's last estimate in each month
SELECT date_trunc('month', date) AS month, symbol, model, estimator, factor,
       arg_max(beta, date) AS beta, max(date) AS date
FROM betas.daily
GROUP BY ALL

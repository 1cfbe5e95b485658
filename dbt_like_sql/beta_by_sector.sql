-- materialized: view
-- description: Month-end CAPM market betas with each stock's sector (for box plots by industry)
SELECT b.month, b.symbol, coalesce(s.sector, 'Unknown') AS sector, b.estimator, b.beta
FROM marts.betas_month_end b
LEFT JOIN raw.securities s USING (symbol)
WHERE b.model = 'capm' AND b.factor = 'mkt_excess'

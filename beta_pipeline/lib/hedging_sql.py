"""Hedging leaderboard computed inside DuckDB (scales to hundreds of millions of beta rows).

For every (model, estimator) the next-day hedging error is
``e_{t+1} = y_{t+1} - sum_f beta_{t,f} x_{f,t+1}`` where ``t+1`` is the next trading date
of the returns calendar (no alpha in the hedge, as in the NeuralBeta paper). RMSEs are
compared on the common set: the (model, date, symbol) triples where every estimator of the
model has an error, so estimators with longer warm-ups do not get easier samples.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from beta_pipeline.lib.beta_tables import MODEL_FACTORS, TRAIN_SHARE, VALIDATION_SHARE

LEADERBOARD_COLUMNS = (
    "model",
    "estimator",
    "period",
    "n",
    "rmse",
    "rmse_ref",
    "improvement_pct",
    "reference",
)


def _factor_values_sql() -> tuple[str, str, list[object]]:
    pairs = [(m, f) for m, fs in MODEL_FACTORS.items() if m != "capm" for f in fs]
    values = ", ".join("(?, ?)" for _ in pairs)
    params: list[object] = [v for pair in pairs for v in pair]
    counts = ", ".join("(?, ?)" for _ in MODEL_FACTORS)
    params += [v for m, fs in MODEL_FACTORS.items() for v in (m, len(fs))]
    return values, counts, params


def hedge_errors_sql(source: str = "betas.daily") -> tuple[str, list[object]]:
    """SQL (and parameters) selecting (model, estimator, date, symbol, y, hedge, error)."""
    values, counts, params = _factor_values_sql()
    sql = f"""
    WITH cal AS (
        SELECT date, lead(date) OVER (ORDER BY date) AS next_date
        FROM (SELECT DISTINCT date FROM returns.daily)
    ),
    factor_map(model, factor) AS (VALUES {values}),
    factor_count(model, k) AS (VALUES {counts}),
    fx AS (
        SELECT date, 'capm' AS model, 'mkt_excess' AS factor, any_value(mkt_excess) AS value
        FROM returns.daily GROUP BY date
        UNION ALL
        SELECT m.date, fm.model, m.series AS factor, m.value
        FROM raw.market m JOIN factor_map fm ON m.series = fm.factor
    ),
    hedge AS (
        SELECT b.model, b.estimator, b.date, b.symbol,
               any_value(r.ret_excess) AS y,
               sum(b.beta * fx.value) AS hedge,
               count(*) AS nf
        FROM {source} b
        JOIN cal ON cal.date = b.date
        JOIN returns.daily r ON r.symbol = b.symbol AND r.date = cal.next_date
        JOIN fx ON fx.model = b.model AND fx.factor = b.factor AND fx.date = cal.next_date
        GROUP BY b.model, b.estimator, b.date, b.symbol
    )
    SELECT h.model, h.estimator, h.date, h.symbol, h.y, h.hedge, h.y - h.hedge AS error
    FROM hedge h JOIN factor_count c ON c.model = h.model
    WHERE h.nf = c.k AND h.y IS NOT NULL AND h.hedge IS NOT NULL
    """
    return sql, params


def leaderboard(conn: duckdb.DuckDBPyConnection, reference: str = "ols_252") -> pd.DataFrame:
    """RMSE of the next-day hedge per (model, estimator), overall (``period='all'``), on the
    test span (``'test'``: the last 4/14 of the return calendar, the share the NeuralBeta
    paper tests on; tuned estimators never saw it) and by year, with % improvement over
    ``reference`` on the common set."""
    errors_sql, params = hedge_errors_sql()
    sql = f"""
    WITH err AS ({errors_sql}),
    n_est AS (SELECT model, count(DISTINCT estimator) AS k FROM err GROUP BY model),
    common AS (
        SELECT e.model, e.date, e.symbol
        FROM err e GROUP BY e.model, e.date, e.symbol
        HAVING count(*) = (SELECT k FROM n_est WHERE n_est.model = e.model)
    ),
    kept AS (
        SELECT err.* FROM err JOIN common USING (model, date, symbol)
    ),
    test_start AS (
        SELECT quantile_disc(date, ?) AS d FROM (SELECT DISTINCT date FROM returns.daily)
    ),
    scored AS (
        SELECT model, estimator, 'all' AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse
        FROM kept GROUP BY model, estimator
        UNION ALL
        SELECT model, estimator, 'test' AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse
        FROM kept WHERE date >= (SELECT d FROM test_start) GROUP BY model, estimator
        UNION ALL
        SELECT model, estimator, CAST(year(date) AS VARCHAR) AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse
        FROM kept GROUP BY model, estimator, year(date)
    )
    SELECT s.model, s.estimator, s.period, s.n, s.rmse, r.rmse AS rmse_ref,
           100 * (1 - s.rmse / r.rmse) AS improvement_pct, ? AS reference
    FROM scored s
    LEFT JOIN scored r ON r.model = s.model AND r.period = s.period AND r.estimator = ?
    ORDER BY s.model, s.period, s.rmse
    """
    test_share = TRAIN_SHARE + VALIDATION_SHARE
    frame = conn.execute(sql, [*params, test_share, reference, reference]).df()
    return frame.loc[:, list(LEADERBOARD_COLUMNS)]


def guest_leaderboard(
    conn: duckdb.DuckDBPyConnection, guest_source: str, reference: str = "ols_252"
) -> pd.DataFrame:
    """Leaderboard rows for estimators that cover only part of the calendar (NeuralBeta
    betas exist after the model's training data end): each guest is scored against
    ``reference`` on the guest's own (model, date, symbol) rows only.

    ``guest_source`` is a fixed SQL relation (no user values) with the columns of
    ``betas.daily`` that the hedge needs: ``date, symbol, model, estimator, factor, beta``.
    """
    guest_sql, params = hedge_errors_sql(f"({guest_source})")
    ref_sql, ref_params = hedge_errors_sql("(SELECT * FROM betas.daily WHERE estimator = ?)")
    sql = f"""
    WITH g AS ({guest_sql}),
    r AS ({ref_sql}),
    kept AS (
        SELECT g.model, g.estimator, g.date, g.error, r.error AS ref_error
        FROM g JOIN r USING (model, date, symbol)
    ),
    test_start AS (
        SELECT quantile_disc(date, ?) AS d FROM (SELECT DISTINCT date FROM returns.daily)
    ),
    scored AS (
        SELECT model, estimator, 'all' AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse, sqrt(avg(ref_error * ref_error)) AS rmse_ref
        FROM kept GROUP BY model, estimator
        UNION ALL
        SELECT model, estimator, 'test' AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse, sqrt(avg(ref_error * ref_error)) AS rmse_ref
        FROM kept WHERE date >= (SELECT d FROM test_start) GROUP BY model, estimator
        UNION ALL
        SELECT model, estimator, CAST(year(date) AS VARCHAR) AS period, count(*) AS n,
               sqrt(avg(error * error)) AS rmse, sqrt(avg(ref_error * ref_error)) AS rmse_ref
        FROM kept GROUP BY model, estimator, year(date)
    )
    SELECT model, estimator, period, n, rmse, rmse_ref,
           100 * (1 - rmse / rmse_ref) AS improvement_pct, ? AS reference
    FROM scored ORDER BY model, period, rmse
    """
    test_share = TRAIN_SHARE + VALIDATION_SHARE
    frame = conn.execute(sql, [*params, *ref_params, reference, test_share, reference]).df()
    return frame.loc[:, list(LEADERBOARD_COLUMNS)]


#: NeuralBeta's univariate (CAPM) daily betas as leaderboard guests of the capm model.
NEURALBETA_GUESTS = (
    "SELECT date, symbol, 'capm' AS model, 'neuralbeta_' || model AS estimator, factor, beta "
    "FROM neuralbeta.betas WHERE experiment = 'univariate' AND factor = 'mkt_excess'"
)

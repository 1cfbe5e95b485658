"""Warehouse reads of the beta sorts (DuckDB SQL, no Dagster): the market betas known at each
formation month end, market capitalisations, the number of portfolios, and the history
the figures and the summary use.

Estimator key: ``<model>/<estimator>`` for betas.daily and betas.monthly (e.g.
``capm/ols_252``, ``capm/kalman``, ``ff3/ewm``, ``capm/ols_60m``; multi-factor models are
sorted on their market beta ``mkt_rf``), ``neuralbeta/<experiment>/<model>`` for
neuralbeta.betas; the ``source`` column names the table. neuralbeta.betas is read
opportunistically (no declared dependency: lineage is wired by the neuralbeta domain).
"""

from __future__ import annotations

import fnmatch
from collections.abc import MutableMapping, Sequence

import duckdb
import pandas as pd

from beta_pipeline.lib import sorts

#: Factor names of the market beta in the beta tables (CAPM, FF3/FF5, neural models).
MARKET_FACTORS = ["mkt_excess", "mkt_rf", "mkt"]
SIGNAL_COLUMNS = ["formation_month", "estimator", "source", "symbol", "beta"]


def table_columns(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> set[str]:
    """Columns of ``schema.name`` (empty when the table does not exist)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0] for r in rows}


def _neuralbeta(
    conn: duckdb.DuckDBPyConnection, params: list[object], notes: MutableMapping[str, object]
) -> pd.DataFrame | None:
    """The last NeuralBeta market beta of each formation month (None: table unusable)."""
    cols = table_columns(conn, "neuralbeta", "betas")
    need = {"date", "symbol", "experiment", "model", "factor", "beta"}
    if not cols:
        notes["neuralbeta"] = "neuralbeta.betas does not exist yet: no NeuralBeta sorts"
        return None
    if not need <= cols:
        notes["neuralbeta"] = f"neuralbeta.betas lacks {sorted(need - cols)}: skipped"
        return None
    tie = ", run_id DESC" if "run_id" in cols else ""
    frame = conn.execute(
        f"""
        SELECT date_trunc('month', date) AS formation_month,
               'neuralbeta/' || experiment || '/' || model AS estimator,
               'neuralbeta.betas' AS source, symbol, beta
        FROM neuralbeta.betas
        WHERE date >= ? AND date < ? AND isfinite(beta)
          AND list_contains(?::VARCHAR[], factor)
        QUALIFY row_number() OVER (
            PARTITION BY date_trunc('month', date), experiment, model, symbol
            ORDER BY date DESC{tie}) = 1
        """,
        params,
    ).df()
    notes["neuralbeta"] = (
        f"{frame['estimator'].nunique()} NeuralBeta estimator(s)" if len(frame)
        else "neuralbeta.betas has no betas for these formation months"
    )
    return frame


def formation_signals(
    conn: duckdb.DuckDBPyConnection,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    *,
    models: Sequence[str],
    sources: Sequence[str],
    estimators: Sequence[str],
    notes: MutableMapping[str, object],
) -> pd.DataFrame:
    """Market betas known at each formation month end in [lo, hi): formation_month,
    estimator, source, symbol, beta (``estimators``: glob patterns, empty = all; ``notes``
    receives what happened to neuralbeta.betas)."""
    parts: list[pd.DataFrame] = []
    params = [lo.date(), hi.date(), MARKET_FACTORS, list(models)]
    if "daily" in sources:
        parts.append(conn.execute(
            """
            SELECT date_trunc('month', date) AS formation_month,
                   model || '/' || estimator AS estimator, 'betas.daily' AS source, symbol,
                   arg_max(beta, date) AS beta
            FROM betas.daily
            WHERE date >= ? AND date < ? AND isfinite(beta)
              AND list_contains(?::VARCHAR[], factor) AND list_contains(?::VARCHAR[], model)
            GROUP BY ALL
            """,
            params,
        ).df())
    if "monthly" in sources:
        parts.append(conn.execute(
            """
            SELECT month AS formation_month, model || '/' || estimator AS estimator,
                   'betas.monthly' AS source, symbol, beta
            FROM betas.monthly
            WHERE month >= ? AND month < ? AND isfinite(beta)
              AND list_contains(?::VARCHAR[], factor) AND list_contains(?::VARCHAR[], model)
            """,
            params,
        ).df())
    if "neuralbeta" in sources:
        frame = _neuralbeta(conn, params[:3], notes)
        if frame is not None:
            parts.append(frame)
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    if estimators:
        keep = {e for p in estimators for e in fnmatch.filter(out["estimator"].unique(), p)}
        out = out.loc[out["estimator"].isin(keep)]
    out["formation_month"] = pd.to_datetime(out["formation_month"])
    return out


def market_caps(
    conn: duckdb.DuckDBPyConnection, lo: pd.Timestamp, hi: pd.Timestamp
) -> tuple[pd.DataFrame | None, str]:
    """Market capitalisation at each formation month end (last close x shares outstanding,
    or a market_cap column) when raw.prices has one; else None and the reason."""
    cols = table_columns(conn, "raw", "prices")
    if "market_cap" in cols:
        expr = "market_cap"
    elif "shares_outstanding" in cols:
        expr = "close * shares_outstanding"
    else:
        return None, (
            "equal-weighted only: the sources give no market capitalisation or shares "
            "outstanding (raw.prices has close and volume), so no value weights"
        )
    frame = conn.execute(
        f"""
        SELECT date_trunc('month', date) AS formation_month, symbol,
               arg_max({expr}, date) AS market_cap
        FROM raw.prices WHERE date >= ? AND date < ? AND {expr} > 0
        GROUP BY ALL
        """,
        [lo.date(), hi.date()],
    ).df()
    if frame.empty:
        return None, f"equal-weighted only: raw.prices has {expr} but no positive value"
    frame["formation_month"] = pd.to_datetime(frame["formation_month"])
    return frame, f"equal- and value-weighted (weights: {expr} at the formation month end)"


def portfolio_count(
    conn: duckdb.DuckDBPyConnection, n_portfolios: int, percentiles: Sequence[float]
) -> tuple[int | None, str]:
    """Portfolios per cross-section (None with explicit ``percentiles``; 0 = auto from the
    symbols in returns.monthly) and a note saying how they were chosen."""
    if percentiles:
        return None, f"percentiles {list(percentiles)}"
    if n_portfolios:
        return n_portfolios, f"{n_portfolios} portfolios (configured)"
    universe = int(conn.execute("SELECT count(DISTINCT symbol) FROM returns.monthly").fetchone()[0])
    n = sorts.auto_n_portfolios(universe)
    name = {10: "deciles", 5: "quintiles", 3: "terciles"}[n]
    return n, f"{name} (auto: {universe} symbols in returns.monthly)"


def ew_history(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every equal-weighted row of portfolios.beta_sorts (what the figures draw)."""
    history = conn.execute(
        "SELECT month, estimator, portfolio, weighting, ret_excess, mean_beta "
        "FROM portfolios.beta_sorts WHERE weighting = 'ew'"
    ).df()
    history["month"] = pd.to_datetime(history["month"])
    return history


def market_excess(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``month, mkt_excess``: one market excess return per month of returns.monthly."""
    market = conn.execute(
        "SELECT month, any_value(mkt_excess) AS mkt_excess FROM returns.monthly "
        "WHERE mkt_excess IS NOT NULL GROUP BY month"
    ).df()
    market["month"] = pd.to_datetime(market["month"])
    return market

"""Univariate portfolio sorts on a lagged signal (beta): breakpoints, assignment, portfolio
returns, high-minus-low, Newey-West inference and CAPM alphas.

Conventions (Tidy Finance's univariate sorts, docs/methods.md):

- **Timing**: the sort variable is the value known at the end of the *formation* month t
  (``month`` = first day of t); portfolios are held over the *holding* month t+1. Signals
  and returns are joined by calendar month (``formation_month + 1 month == month``), never
  by shifting rows, so a gap in a stock's history cannot pair a beta with the wrong month.
- **Breakpoints**: interior quantiles of the formation month's cross-section of signals
  (``np.quantile``, linear interpolation), either ``n_portfolios`` equal steps or explicit
  ``percentiles``. Bins are **left-closed**: portfolio k holds ``b[k-1] <= x < b[k]``, the
  first is open below and the last open above. Equal signals always share a portfolio, so
  ties at a breakpoint go up and can leave a portfolio thin or empty.
- **Bad input**: missing or non-finite signals are dropped before the breakpoints; a
  formation month with fewer than ``n_portfolios * min_size`` stocks is skipped and
  reported (never silently); a portfolio with fewer than ``min_size`` stocks with a
  holding-month return keeps its row (with its ``n``) but a NaN return, and so does
  high-minus-low when a leg is NaN.
- **Weights**: equal weights always; value weights only from a lagged (formation month
  end) market capitalisation passed in by the caller.

No Dagster import: the pure core behind the ``beta_portfolio_sorts`` and
``beta_portfolio_summary`` assets (their warehouse tables are declared in
:mod:`beta_pipeline.lib.portfolios.tables`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from beta_pipeline.lib.portfolios.tables import (  # noqa: F401 (re-exported)
    BETA_SORTS,
    SORT_SKIPPED,
    SUMMARY,
)

#: Label of the high-minus-low row (highest minus lowest portfolio).
HML = "HML"
#: Newey-West lags of the t-statistics (Tidy Finance; docs/methods.md).
NW_LAGS = 6

SORT_COLUMNS = [
    "month",
    "formation_month",
    "estimator",
    "portfolio",
    "n_portfolios",
    "weighting",
    "ret_excess",
    "mean_beta",
    "n",
]
SKIP_COLUMNS = ["formation_month", "estimator", "n_stocks", "reason"]


def month_start(values: pd.Series) -> pd.Series:
    """Dates mapped to the first day of their calendar month (the warehouse's ``month``)."""
    return pd.to_datetime(values).dt.to_period("M").dt.to_timestamp()


def auto_n_portfolios(n_stocks: int) -> int:
    """Deciles from 100 stocks (10 a portfolio), quintiles from 15 (3 a portfolio), else
    terciles: the embedded 20 stocks give quintiles, the Kaggle 505 deciles."""
    if n_stocks >= 100:
        return 10
    if n_stocks >= 15:
        return 5
    return 3


def cut_points(
    n_portfolios: int | None = None, percentiles: Sequence[float] | None = None
) -> np.ndarray:
    """Interior cut probabilities: ``k / n`` for k = 1..n-1, or the sorted ``percentiles``
    (values in (0, 1), e.g. ``[0.3, 0.7]`` for 30/40/30)."""
    if percentiles:
        probs = np.sort(np.asarray(percentiles, dtype=float))
        if probs[0] <= 0 or probs[-1] >= 1 or np.any(np.diff(probs) <= 0):
            raise ValueError(f"percentiles must be distinct and inside (0, 1): {percentiles}")
        return probs
    if n_portfolios is None or n_portfolios < 2:
        raise ValueError(f"n_portfolios must be at least 2, got {n_portfolios}")
    return np.arange(1, n_portfolios) / n_portfolios


def breakpoints(
    values: np.ndarray | pd.Series,
    n_portfolios: int | None = None,
    percentiles: Sequence[float] | None = None,
) -> np.ndarray:
    """Interior quantile breakpoints of the finite ``values`` (length = portfolios - 1)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        raise ValueError("no finite values to compute breakpoints from")
    return np.quantile(x, cut_points(n_portfolios, percentiles), method="linear")


def assign(values: np.ndarray | pd.Series, breaks: np.ndarray) -> np.ndarray:
    """Portfolio numbers 1..len(breaks)+1 in left-closed bins ``[b[k-1], b[k])``; 0 for a
    missing value."""
    x = np.asarray(values, dtype=float)
    out = np.searchsorted(np.asarray(breaks, dtype=float), x, side="right") + 1
    return np.where(np.isfinite(x), out, 0)


def _portfolio_order(label: str) -> int:
    """Sort key of a portfolio label: 1, 2, ..., 10, then HML."""
    return 10_000 if label == HML else int(label)


def form_portfolios(
    signals: pd.DataFrame,
    n_portfolios: int | None = None,
    percentiles: Sequence[float] | None = None,
    min_size: int = 1,
    signal: str = "beta",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign each (formation month, estimator) cross-section of ``signals``
    (``formation_month, estimator, symbol, <signal>``) to quantile portfolios.

    Returns ``(members, skipped)``: ``members`` adds ``portfolio`` (1 = lowest signal) and
    ``n_portfolios``; ``skipped`` lists cross-sections left out, with the reason."""
    n_port = len(cut_points(n_portfolios, percentiles)) + 1
    data = signals.loc[:, ["formation_month", "estimator", "symbol", signal]].copy()
    data["formation_month"] = month_start(data["formation_month"])
    data[signal] = pd.to_numeric(data[signal], errors="coerce")
    finite = np.isfinite(data[signal].to_numpy(dtype=float))
    data = data.loc[finite]
    data = data.drop_duplicates(["formation_month", "estimator", "symbol"], keep="last")
    members: list[pd.DataFrame] = []
    skipped: list[dict[str, object]] = []
    for (month, est), part in data.groupby(["formation_month", "estimator"], sort=True):
        if len(part) < n_port * max(min_size, 1):
            skipped.append(
                dict(formation_month=month, estimator=est, n_stocks=len(part),
                     reason=f"{len(part)} stocks < {n_port} portfolios x min size {min_size}")
            )
            continue
        breaks = breakpoints(part[signal], n_portfolios, percentiles)
        members.append(part.assign(portfolio=assign(part[signal], breaks), n_portfolios=n_port))
    cols = ["formation_month", "estimator", "symbol", signal, "portfolio", "n_portfolios"]
    out = pd.concat(members, ignore_index=True) if members else pd.DataFrame(columns=cols)
    return out, pd.DataFrame(skipped, columns=SKIP_COLUMNS)


def portfolio_returns(
    members: pd.DataFrame,
    returns: pd.DataFrame,
    market_caps: pd.DataFrame | None = None,
    min_size: int = 1,
    signal: str = "beta",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holding-month excess returns of the portfolios in ``members`` (from
    :func:`form_portfolios`) with ``returns`` (``month, symbol, ret_excess``).

    The holding month is ``formation_month + 1 calendar month``. Equal-weighted rows
    (``weighting = 'ew'``) always; value-weighted ones (``'vw'``) when ``market_caps``
    (``formation_month, symbol, market_cap``: the cap at the formation month's end) is
    given. ``n`` counts the stocks with a holding-month return (and a positive cap for vw);
    below ``min_size`` the return is NaN. ``mean_beta`` is the portfolio's (same-weighted)
    average signal. High-minus-low rows (``portfolio = 'HML'``) are appended: highest minus
    lowest return and mean beta, ``n`` = both legs. A formation month whose holding month
    has no returns at all is skipped and reported (returns not in yet)."""
    if members.empty:
        return pd.DataFrame(columns=SORT_COLUMNS), pd.DataFrame(columns=SKIP_COLUMNS)
    held = members.rename(columns={signal: "signal"}).copy()
    held["formation_month"] = month_start(held["formation_month"])
    held["month"] = held["formation_month"] + pd.DateOffset(months=1)
    rets = returns.loc[:, ["month", "symbol", "ret_excess"]].copy()
    rets["month"] = month_start(rets["month"])
    rets = rets.loc[np.isfinite(pd.to_numeric(rets["ret_excess"], errors="coerce"))]
    available = set(rets["month"].unique())
    no_returns = ~held["month"].isin(available)
    skipped = (
        held.loc[no_returns]
        .groupby(["formation_month", "estimator"], as_index=False)
        .agg(n_stocks=("symbol", "size"))
        .assign(reason="no returns in the holding month")
    )
    held = held.loc[~no_returns].merge(rets, on=["month", "symbol"], how="left")

    weightings = {"ew": None}
    if market_caps is not None and len(market_caps):
        caps = market_caps.loc[:, ["formation_month", "symbol", "market_cap"]].copy()
        caps["formation_month"] = month_start(caps["formation_month"])
        held = held.merge(caps, on=["formation_month", "symbol"], how="left")
        weightings["vw"] = "market_cap"
    held["ones"] = 1.0
    keys = ["month", "formation_month", "estimator", "n_portfolios", "portfolio"]
    # every portfolio 1..n of every cross-section gets a row, even when empty
    grid = (
        held.loc[:, keys[:-1]].drop_duplicates()
        .assign(_k=lambda f: f["n_portfolios"].map(lambda n: list(range(1, int(n) + 1))))
        .explode("_k")
        .rename(columns={"_k": "portfolio"})
        .astype({"portfolio": "int64"})
    )
    frames = []
    for name, column in weightings.items():
        w = held[column or "ones"].astype(float)
        ok = held["ret_excess"].notna() & (w > 0)
        part = held.loc[ok, keys].assign(
            _wr=(w * held["ret_excess"])[ok], _ws=(w * held["signal"])[ok], _w=w[ok]
        )
        stats = part.groupby(keys, sort=False).agg(
            _wr=("_wr", "sum"), _ws=("_ws", "sum"), _w=("_w", "sum"), n=("_w", "size")
        )
        stats = pd.DataFrame(
            {"ret_excess": stats["_wr"] / stats["_w"], "mean_beta": stats["_ws"] / stats["_w"],
             "n": stats["n"]}
        ).reset_index()
        frame = grid.merge(stats.astype({"portfolio": "int64"}), on=keys, how="left")
        frame["n"] = frame["n"].fillna(0).astype("int64")
        frame.loc[frame["n"] < max(min_size, 1), "ret_excess"] = np.nan
        frame["weighting"] = name
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out = pd.concat([out, _high_minus_low(out)], ignore_index=True)
    out["portfolio"] = out["portfolio"].astype(str)
    out["_o"] = out["portfolio"].map(_portfolio_order)
    out = out.sort_values(["estimator", "weighting", "month", "_o"], kind="mergesort")
    return out.loc[:, SORT_COLUMNS].reset_index(drop=True), skipped.loc[:, SKIP_COLUMNS]


def _high_minus_low(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["month", "formation_month", "estimator", "n_portfolios", "weighting"]
    low = frame.loc[frame["portfolio"] == 1].set_index(keys)
    high = frame.loc[frame["portfolio"] == frame["n_portfolios"]].set_index(keys)
    high, low = high.align(low, join="inner")
    out = pd.DataFrame(
        {
            "ret_excess": high["ret_excess"] - low["ret_excess"],
            "mean_beta": high["mean_beta"] - low["mean_beta"],
            "n": high["n"] + low["n"],
        }
    ).reset_index()
    return out.assign(portfolio=HML)


def newey_west_mean(values: Sequence[float] | np.ndarray, lags: int = NW_LAGS) -> dict[str, float]:
    """Mean of a series with its Newey-West (Bartlett, ``lags``) standard error and
    t-statistic: ``statsmodels`` OLS on a constant with ``cov_type='HAC'`` (no small-sample
    correction), as Tidy Finance does. NaNs are dropped; fewer than 3 values give NaN."""
    y = np.asarray(values, dtype=float)
    y = y[np.isfinite(y)]
    if len(y) < 3:
        return {"mean": float(np.mean(y)) if len(y) else np.nan, "se": np.nan, "t": np.nan,
                "n": len(y)}
    import statsmodels.api as sm  # lazily: only the sorts need it

    fit = sm.OLS(y, np.ones((len(y), 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": min(lags, len(y) - 1)}
    )
    return {"mean": float(fit.params[0]), "se": float(fit.bse[0]), "t": float(fit.tvalues[0]),
            "n": len(y)}


def capm(
    ret_excess: Sequence[float] | np.ndarray,
    mkt_excess: Sequence[float] | np.ndarray,
    lags: int = NW_LAGS,
) -> dict[str, float]:
    """CAPM time-series regression ``r - rf = alpha + beta (m - rf) + e`` with Newey-West
    t-statistics; rows with a NaN are dropped, fewer than 4 give NaN."""
    y = np.asarray(ret_excess, dtype=float)
    x = np.asarray(mkt_excess, dtype=float)
    ok = np.isfinite(y) & np.isfinite(x)
    y, x = y[ok], x[ok]
    nan = {"alpha": np.nan, "t_alpha": np.nan, "beta": np.nan, "t_beta": np.nan, "n": len(y)}
    if len(y) < 4 or np.ptp(x) == 0:
        return nan
    import statsmodels.api as sm

    fit = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit(
        cov_type="HAC", cov_kwds={"maxlags": min(lags, len(y) - 2)}
    )
    return {"alpha": float(fit.params[0]), "t_alpha": float(fit.tvalues[0]),
            "beta": float(fit.params[1]), "t_beta": float(fit.tvalues[1]), "n": len(y)}


SUMMARY_COLUMNS = [
    "estimator",
    "weighting",
    "n_portfolios",
    "portfolio",
    "n_months",
    "first_month",
    "last_month",
    "mean_ret_excess",
    "t_mean",
    "alpha",
    "t_alpha",
    "capm_beta",
    "t_capm_beta",
    "mean_beta",
    "avg_n",
    "nw_lags",
]


def summarize(sorts: pd.DataFrame, market: pd.DataFrame, lags: int = NW_LAGS) -> pd.DataFrame:
    """Per estimator, weighting and portfolio (incl. HML): mean monthly excess return with
    its Newey-West t-statistic, CAPM alpha and beta (with t-statistics) against
    ``market`` (``month, mkt_excess``, one row per month), mean beta and average size."""
    if sorts.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    mkt = market.drop_duplicates("month").set_index("month")["mkt_excess"]
    rows = []
    keys = ["estimator", "weighting", "n_portfolios", "portfolio"]
    for key, part in sorts.groupby(keys, sort=False):
        part = part.sort_values("month")
        valid = part.loc[part["ret_excess"].notna()]
        mean = newey_west_mean(valid["ret_excess"], lags)
        reg = capm(valid["ret_excess"], valid["month"].map(mkt), lags)
        rows.append(
            dict(
                zip(keys, key, strict=True),
                n_months=mean["n"],
                first_month=valid["month"].min() if len(valid) else pd.NaT,
                last_month=valid["month"].max() if len(valid) else pd.NaT,
                mean_ret_excess=mean["mean"],
                t_mean=mean["t"],
                alpha=reg["alpha"],
                t_alpha=reg["t_alpha"],
                capm_beta=reg["beta"],
                t_capm_beta=reg["t_beta"],
                mean_beta=float(valid["mean_beta"].mean()) if len(valid) else np.nan,
                avg_n=float(part["n"].mean()),
                nw_lags=lags,
            )
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = out["portfolio"].map(_portfolio_order)
    return (
        out.assign(_o=order)
        .sort_values(["estimator", "weighting", "n_portfolios", "_o"], kind="mergesort")
        .drop(columns="_o")
        .reset_index(drop=True)
    )

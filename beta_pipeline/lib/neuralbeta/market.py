"""Market panels for NeuralBeta (METHODS §5): the univariate (CAPM) and multivariate
(market, size, value) experiments, and inference windows that end on a given day.

No Dagster import. Inputs are the warehouse's long frames: ``returns.daily``
(``date, symbol, ret_excess, mkt_excess``) and ``raw.market`` (``date, series, value``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError

#: Factor columns of each market experiment, in order (after :func:`market_panel`).
EXPERIMENT_FACTORS: dict[str, tuple[str, ...]] = {
    "univariate": ("mkt_excess",),
    "multivariate": ("mkt_excess", "size", "value"),
}


def _size_value(market: pd.DataFrame, dates: pd.DatetimeIndex) -> tuple[pd.DataFrame, str]:
    """Daily size and value factor returns: Fama-French SMB/HML when the source has them,
    else the excess returns of the SIZE and VLUE factor ETFs (the embedded data)."""
    wide = market.pivot_table(index="date", columns="series", values="value", aggfunc="first")
    wide.index = pd.DatetimeIndex(wide.index)
    if {"smb", "hml"} <= set(wide.columns):
        out = wide[["smb", "hml"]].rename(columns={"smb": "size", "hml": "value"})
        return out.reindex(dates), "Fama-French SMB and HML"
    if {"size_level", "vlue_level", "rf"} <= set(wide.columns):
        rets = {}
        for col, name in (("size_level", "size"), ("vlue_level", "value")):
            level = wide[col].dropna()
            if (level <= 0).any():
                bad = level[level <= 0].index[0]
                raise DataValidationError(
                    "positive_price",
                    f"{col} must be positive",
                    file="raw.market",
                    symbol=col,
                    date=str(bad.date()),
                )
            rets[name] = level.pct_change()
        rf = wide["rf"].reindex(dates)
        out = pd.DataFrame(rets).reindex(dates).sub(rf, axis=0)
        return out, "SIZE and VLUE factor ETF returns in excess of rf"
    raise DataValidationError(
        "missing_factor",
        "the multivariate experiment needs smb and hml, or size_level, vlue_level and rf; "
        f"the source has {sorted(wide.columns)}",
        file="raw.market",
    )


def market_panel(
    returns: pd.DataFrame, market: pd.DataFrame, experiment: str
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(y, x, description)``: wide stock excess returns (dates x symbols) and factors
    (dates x factors) on the returns calendar. Factor days that are missing stay NaN (the
    windows that would use them are skipped)."""
    if experiment not in EXPERIMENT_FACTORS:
        raise ValueError(f"unknown market experiment {experiment!r}")
    if returns.empty:
        raise DataValidationError("empty_partition", "no returns to train on", file="returns.daily")
    y = returns.pivot(index="date", columns="symbol", values="ret_excess")
    y.index = pd.DatetimeIndex(y.index)
    y = y.sort_index()
    mkt = returns.groupby("date")["mkt_excess"].first()
    mkt.index = pd.DatetimeIndex(mkt.index)
    x = pd.DataFrame({"mkt_excess": mkt.reindex(y.index)})
    desc = "market excess return"
    if experiment == "multivariate":
        sv, how = _size_value(market, y.index)
        x = x.join(sv)
        desc = f"market excess return, {how}"
    x = x.loc[:, list(EXPERIMENT_FACTORS[experiment])]
    have = x.dropna().index
    if have.empty:
        raise DataValidationError(
            "missing_factor", f"no day has every factor of {experiment}", file="raw.market"
        )
    # the factors' common span (the embedded size/value ETFs start in 2014), so that the
    # time split divides days that can form windows
    span = (x.index >= have[0]) & (x.index <= have[-1])
    return y.loc[span], x.loc[span], desc


def inference_windows(
    y: pd.DataFrame, x: pd.DataFrame, window: int, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Windows whose newest row is a date in ``[start, end)``: ``x [n, h, d]``, ``y [n, h]``
    and keys ``(date, symbol)`` (``date`` = the last day of data used; the beta hedges the
    next day). A window with any missing value is skipped. Nothing after ``date`` is read."""
    ya = y.to_numpy(dtype=float)
    xa = x.reindex(y.index).to_numpy(dtype=float)
    n_t, n_s = ya.shape
    h = window
    dates = y.index
    ends = np.flatnonzero((dates >= start) & (dates < end))
    ends = ends[ends >= h - 1]
    bad = ~np.isfinite(ya) | ~np.isfinite(xa).all(axis=1, keepdims=True)
    csum = np.vstack([np.zeros((1, n_s)), np.cumsum(bad, axis=0)])
    n_bad = csum[ends + 1] - csum[ends - h + 1]
    ok_t, ok_i = np.nonzero(n_bad == 0)
    last = ends[ok_t]
    rows = last[:, None] + np.arange(-h + 1, 1)[None, :]
    xw = xa[rows]  # [n, h, d]
    yw = ya[rows, ok_i[:, None]]  # [n, h]
    keys = pd.DataFrame({"date": dates[last], "symbol": np.asarray(y.columns)[ok_i]})
    return xw, yw, keys

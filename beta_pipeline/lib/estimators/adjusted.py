"""Adjusted betas: Blume, Vasicek, Dimson (lead/lag) and Welch (2022) slope-winsorised.

* Blume: ``weight * beta + (1 - weight) * prior`` (``0.67 beta + 0.33`` by default).
* Vasicek: per date, shrink each beta to the cross-sectional mean of that date,
  ``(s2_xs beta_i + se_i² mean_xs) / (s2_xs + se_i²)``; ``mean_xs`` and ``s2_xs`` (ddof 1)
  are taken over the assets with a finite beta and standard error on that date.
* Dimson: slopes on ``x_{s-lags} .. x_{s+leads}`` summed. A lead is look-ahead for a beta
  dated at the window's last row, so the regression is lagged by ``leads`` rows: the beta
  dated t uses rows ``s = t-leads-h+1 .. t-leads`` (each with its leads known at t). The sum
  and its standard error come from one regression on ``x_s`` and ``x_{s+l} - x_s`` (l != 0),
  whose coefficient on ``x_s`` is the sum of the lead/lag slopes.
* Welch (2022): clip the stock (excess) return to ``[r_m - delta |r_m|, r_m + delta |r_m|]``
  (with ``delta = 3`` that is between ``-2 r_m`` and ``4 r_m``) before the regression; with
  ``half_life`` the regression is also age-weighted (Welch's BSWA).
"""

from __future__ import annotations

import numpy as np

from beta_pipeline.lib.estimators._panel import RegressionResult, as_x, as_y
from beta_pipeline.lib.estimators.regression import rolling_regression


def blume(beta: np.ndarray, weight: float = 0.67, prior: float | np.ndarray = 1.0) -> np.ndarray:
    """Blume adjustment toward ``prior`` (broadcast over the last, factor axis)."""
    return weight * np.asarray(beta, dtype=np.float64) + (1.0 - weight) * np.asarray(prior)


def vasicek(beta: np.ndarray, beta_se: np.ndarray, ddof: int = 1) -> np.ndarray:
    """Vasicek shrinkage of (T, N) or (T, N, k) betas to each date's cross-sectional mean."""
    b = np.asarray(beta, dtype=np.float64)
    se2 = np.asarray(beta_se, dtype=np.float64) ** 2
    ok = np.isfinite(b) & np.isfinite(se2)
    cnt = ok.sum(axis=1, keepdims=True)
    bz = np.where(ok, b, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = bz.sum(axis=1, keepdims=True) / cnt
        dev = np.where(ok, b - mean, 0.0)
        var = (dev * dev).sum(axis=1, keepdims=True) / (cnt - ddof)
        var = np.where(cnt > ddof, var, np.nan)
        out = (var * b + se2 * mean) / (var + se2)
    return np.where(ok, out, np.nan)


def dimson(
    y: np.ndarray,
    x: np.ndarray,
    window: int,
    min_obs: int | None = None,
    intercept: bool = True,
    lags: int = 1,
    leads: int = 1,
    **engine: int,
) -> RegressionResult:
    """Dimson beta: sum of slopes on lagged, contemporaneous and lead factor returns.

    ``beta``/``beta_se`` hold the sums per factor; ``alpha``, ``r2``, ``resid_std`` and
    ``n_obs`` come from the full lead/lag regression; everything is dated ``leads`` rows
    later than the last regression row (the day the last lead is observed).
    """
    yy = as_y(y)
    t_len, n = yy.shape
    xx = as_x(x, t_len, n)
    parts = [xx]
    for shift in [*range(-lags, 0), *range(1, leads + 1)]:
        moved = np.full_like(xx, np.nan)
        if shift < 0:
            moved[-shift:] = xx[:shift]
        else:
            moved[:-shift] = xx[shift:]
        parts.append(moved - xx)
    design = np.concatenate(parts, axis=2)
    if "from_row" in engine:  # output row t is regression row t - leads
        engine["from_row"] = max(int(engine["from_row"]) - leads, 0)
    res = rolling_regression(yy, design, window, min_obs=min_obs, intercept=intercept, **engine)
    k = xx.shape[2]
    return _shift_rows(res, leads, k)


def _shift_rows(res: RegressionResult, rows: int, k: int) -> RegressionResult:
    """Date every output ``rows`` rows later (NaN / 0 observations at the start)."""

    def move(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full_like(a, fill)
        if rows < a.shape[0]:
            out[rows:] = a[: a.shape[0] - rows]
        return out

    return RegressionResult(
        beta=move(res.beta[:, :, :k], np.nan),
        alpha=move(res.alpha, np.nan),
        r2=move(res.r2, np.nan),
        resid_std=move(res.resid_std, np.nan),
        beta_se=move(res.beta_se[:, :, :k], np.nan),
        n_obs=move(res.n_obs, 0),
    )


def welch_clip(y: np.ndarray, market: np.ndarray, delta: float = 3.0) -> np.ndarray:
    """Clip ``y`` (T, N) to ``[m - delta |m|, m + delta |m|]`` of the market return ``m`` (T,)
    or (T, N); NaN stays NaN."""
    yy = as_y(y)
    m = np.asarray(market, dtype=np.float64)
    m = m[:, None] if m.ndim == 1 else m
    band = delta * np.abs(m)
    return np.clip(yy, m - band, m + band)


def welch(
    y: np.ndarray,
    x: np.ndarray,
    window: int | None,
    min_obs: int | None = None,
    intercept: bool = True,
    delta: float = 3.0,
    half_life: float | None = None,
    market_col: int = 0,
    **engine: int,
) -> RegressionResult:
    """Welch (2022) slope-winsorised beta: clip y around factor ``market_col``, then OLS
    (or EW-WLS with ``half_life``) on all factors."""
    yy = as_y(y)
    xx = as_x(x, *yy.shape)
    clipped = welch_clip(yy, xx[:, :, market_col], delta)
    return rolling_regression(
        clipped, xx, window, min_obs=min_obs, intercept=intercept, half_life=half_life, **engine
    )

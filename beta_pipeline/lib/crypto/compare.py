"""Classical betas of the coins on the same markets, for the comparison with the MLP.

* Rolling OLS (``ols_<w>``): ``y = alpha + x'beta + e`` over the last ``w`` months (all w
  required), :func:`beta_pipeline.lib.estimators.rolling_ols`; ``ols_exp`` is the expanding
  window from the first month of the sample (at least ``window`` months).
* Kalman (``kalman``): random-walk betas ``beta_{t+1} = beta_t + eta``, measurement
  ``y_t = alpha + x_t'beta_t + e_t``, ``e ~ N(0, h)``, ``eta ~ N(0, Q)``; per coin ``alpha``
  and ``h`` from a training-span OLS, ``Q = snr * h * diag(1 / var(x_j))`` with one
  signal-to-noise ratio shared by all coins, fitted by maximum likelihood of the filter
  over the training months (as ``fit_kalman_panel(method="pooled")`` does for one factor).
  Prior ``beta_0 ~ N(0, diag(var(y) / var(x_j)))``. For one market the filter is exactly
  :func:`beta_pipeline.lib.estimators.kalman_filter` (the multi-factor filter is
  :func:`beta_pipeline.lib.estimators.kalman_filter_multi`).

Every beta dated t uses data up to t only and hedges month t+1 (the training-span
parameters of the Kalman filter and the MLP's are fitted on the same training months).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from beta_pipeline.lib.estimators import expanding_ols, kalman_filter_multi, rolling_ols


@dataclass(frozen=True)
class KalmanFit:
    snr: float
    alpha: np.ndarray  #: (N,)
    h: np.ndarray  #: (N,)
    q: np.ndarray  #: (N, d) diagonal of Q
    p0: np.ndarray  #: (N, d) diagonal of the prior variance


def _train_ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coin intercept and residual variance of OLS on the training rows."""
    n = y.shape[1]
    alpha, h = np.zeros(n), np.ones(n)
    for i in range(n):
        ok = np.isfinite(y[:, i]) & np.isfinite(x).all(axis=1)
        design = np.column_stack([np.ones(ok.sum()), x[ok]])
        coef, *_ = np.linalg.lstsq(design, y[ok, i], rcond=None)
        resid = y[ok, i] - design @ coef
        dof = max(int(ok.sum()) - design.shape[1], 1)
        alpha[i], h[i] = coef[0], max(float(resid @ resid) / dof, 1e-12)
    return alpha, h


def fit_kalman(y: np.ndarray, x: np.ndarray, train_rows: int) -> KalmanFit:
    """Parameters from the first ``train_rows`` months (see the module docstring)."""
    yt, xt = y[:train_rows], x[:train_rows]
    alpha, h = _train_ols(yt, xt)
    var_x = np.nanvar(xt, axis=0)
    var_x = np.where(var_x > 0, var_x, 1.0)
    var_y = np.nanvar(yt, axis=0)
    p0 = var_y[:, None] / var_x[None, :]
    base = h[:, None] / var_x[None, :]

    def nll(log_snr: float) -> float:
        _, ll = kalman_filter_multi(yt, xt, 10.0**log_snr * base, h, alpha, p0)
        return -float(ll.sum())

    res = optimize.minimize_scalar(nll, bounds=(-8.0, 1.0), method="bounded")
    snr = float(10.0**res.x)
    return KalmanFit(snr, alpha, h, snr * base, p0)


def baseline_betas(
    wide: pd.DataFrame,
    coins: Sequence[str],
    markets: Sequence[str],
    config: str,
    train_end: pd.Timestamp,
    ols_windows: Sequence[int] = (12, 36),
    expanding: bool = True,
    kalman: bool = True,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Long betas (``month`` hedged, ``data_end``, coin, config, market, method, beta) of
    every classical estimator; rows with no estimate are left out.

    ``wide``: months x assets log returns; ``train_end``: the last month of the training
    span (the Kalman parameters use months up to it)."""
    markets = list(markets)
    sample = wide.loc[wide[list(coins)].notna().any(axis=1)]
    months = pd.DatetimeIndex(sample.index)
    y = sample.loc[:, list(coins)].to_numpy(dtype="float64")
    x = sample.loc[:, markets].to_numpy(dtype="float64")
    estimates: dict[str, np.ndarray] = {}
    for w in ols_windows:
        estimates[f"ols_{w}"] = rolling_ols(y, x, int(w), min_obs=int(w)).beta
    if expanding:
        w0 = int(min(ols_windows)) if ols_windows else 12
        estimates["ols_exp"] = expanding_ols(y, x, min_obs=w0).beta
    info: dict[str, object] = {}
    if kalman:
        train_rows = int((months <= pd.Timestamp(train_end)).sum())
        fit = fit_kalman(y, x, train_rows)
        estimates["kalman"], _ = kalman_filter_multi(y, x, fit.q, fit.h, fit.alpha, fit.p0)
        info["kalman_snr"] = fit.snr
    parts = []
    target = months + pd.offsets.MonthBegin(1)
    for method, beta in estimates.items():
        for i, coin in enumerate(coins):
            for j, market in enumerate(markets):
                parts.append(
                    pd.DataFrame(
                        {
                            "month": target,
                            "data_end": months,
                            "coin": coin,
                            "config": config,
                            "market": market,
                            "method": method,
                            "beta": beta[:, i, j],
                        }
                    )
                )
    out = pd.concat(parts, ignore_index=True).dropna(subset=["beta"])
    return out.reset_index(drop=True), info

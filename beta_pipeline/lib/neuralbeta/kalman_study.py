"""The Kalman study (METHODS §4, ``kalman_step``): entire-period OLS, rolling OLS and the
MLE random-walk Kalman filter on a series whose beta jumps from 3 to 6, over many seeds.

The filter is :func:`~beta_pipeline.lib.estimators.kalman.kalman_filter` with the intercept
as a second, constant state and a diffuse start; its variances are the statsmodels MLE of
:func:`~beta_pipeline.lib.estimators.kalman_mle.fit_kalman_mle` (``alpha_state``). The OLS
series are the panel estimators' on one column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators.kalman import DIFFUSE_VAR, kalman_filter
from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_mle
from beta_pipeline.lib.estimators.regression import expanding_ols, rolling_ols
from beta_pipeline.lib.neuralbeta.synthetic import kalman_step


def expanding_ols_series(y: np.ndarray, x: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """Entire-period OLS slope with intercept; ``out[t]`` uses observations ``0..t``."""
    return expanding_ols(y, x, min_obs=min_obs).beta[:, 0, 0]


def rolling_ols_series(y: np.ndarray, x: np.ndarray, window: int = 30) -> np.ndarray:
    """Rolling OLS slope with intercept; ``out[t]`` uses ``t-window+1..t`` (NaN before)."""
    return rolling_ols(y, x, window).beta[:, 0, 0]


def fit_random_walk_beta(y: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """MLE ``(state_var, obs_var)`` of ``y = alpha + beta_t x + e`` (beta a random walk,
    alpha a constant state, diffuse start) and the predicted betas: ``out[t]`` =
    ``E[beta_{t+1} | data 0..t]``."""
    fit = fit_kalman_mle(y, x, alpha_state=True)
    res = kalman_filter(
        y,
        x,
        fit["q"],
        fit["h"],
        0.0,
        beta0=0.0,
        p0=DIFFUSE_VAR,
        alpha_var=DIFFUSE_VAR,
        loglike=False,
    )
    return fit["q"], fit["h"], res.predicted[:, 0]


def kalman_study(
    seed: int = 0, window: int = 30, n: int = 1000, break_at: int = 500
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The kalman_step series with entire-period OLS, rolling-``window`` OLS and the MLE
    random-walk Kalman filter. Row t holds each estimate of ``beta_{t+1}`` from data to t
    and the squared error against the true ``beta_{t+1}``."""
    s = kalman_step(n=n, break_at=break_at, seed=seed)
    q, h, kal = fit_random_walk_beta(s.y, s.x)
    frame = pd.DataFrame(
        {
            "step": np.arange(n - 1),
            "beta_true_next": s.beta[1:],
            "ols_full": expanding_ols_series(s.y, s.x)[:-1],
            f"ols_{window}": rolling_ols_series(s.y, s.x, window)[:-1],
            "kalman": kal[:-1],
        }
    )
    return frame, {"state_var": q, "obs_var": h}


def kalman_mse(frame: pd.DataFrame, burn_in: int, window: int = 30) -> dict[str, float]:
    """MSE of beta from step ``burn_in`` on, and over the 60 steps after the break."""
    cols = ["ols_full", f"ols_{window}", "kalman"]
    err = frame[cols].sub(frame["beta_true_next"], axis=0) ** 2
    after = frame["step"] >= burn_in
    brk = frame.index[frame["beta_true_next"].diff().abs() > 0]
    out = {f"mse_{c}": float(err.loc[after, c].mean()) for c in cols}
    if len(brk):
        b = int(brk[0])
        post = (frame.index >= b) & (frame.index < b + 60)
        out.update({f"mse_break60_{c}": float(err.loc[post, c].mean()) for c in cols})
    return out


def kalman_monte_carlo(
    seeds: range | list[int], burn_in: int = 50, window: int = 30
) -> pd.DataFrame:
    """:func:`kalman_study` over many seeds: one row of MSEs per seed."""
    rows = []
    for seed in seeds:
        frame, params = kalman_study(seed=seed, window=window)
        rows.append({"seed": seed, **params, **kalman_mse(frame, burn_in, window)})
    return pd.DataFrame(rows)


def kalman_summary(mc: pd.DataFrame, window: int = 30) -> dict[str, float]:
    """How often and by how much the Kalman filter beats rolling OLS (after burn-in)."""
    roll = f"mse_ols_{window}"
    ratio = mc["mse_kalman"] / mc[roll]
    out = {
        "seeds": int(len(mc)),
        "kalman_beats_rolling_share": float((mc["mse_kalman"] < mc[roll]).mean()),
        "mse_kalman_mean": float(mc["mse_kalman"].mean()),
        f"mse_ols_{window}_mean": float(mc[roll].mean()),
        "mse_ols_full_mean": float(mc["mse_ols_full"].mean()),
        "mse_ratio_median": float(ratio.median()),
        "mse_reduction_pct_mean": float(100 * (1 - mc["mse_kalman"].mean() / mc[roll].mean())),
    }
    brk = f"mse_break60_ols_{window}"
    if brk in mc:
        out["break60_kalman_beats_rolling_share"] = float(
            (mc["mse_break60_kalman"] < mc[brk]).mean()
        )
    return out

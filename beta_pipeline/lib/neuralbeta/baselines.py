"""Baselines of the NeuralBeta experiments (METHODS §2): OLS, EW-WLS with a tuned half-life,
the window Kalman filter, the Bayes references and the oracle on synthetic test windows;
OLS and EW-WLS with an intercept on market windows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators.kalman import kalman_filter
from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_pooled
from beta_pipeline.lib.neuralbeta import metrics, windows
from beta_pipeline.lib.neuralbeta.synthetic import SyntheticData

BAYES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "constant": windows.bayes_constant_beta,
    "stepwise": windows.bayes_stepwise_beta,
    "cyclical": windows.bayes_cyclical_beta,
}


def fit_kalman_windows(
    x: np.ndarray, y: np.ndarray, max_windows: int = 5_000, seed: int = 0
) -> dict[str, float]:
    """Random-walk Kalman variances (q, h) for windows without intercept, by maximising the
    summed Gaussian log-likelihood of the batched filter over (up to ``max_windows``)
    training windows. The initial state is N(mean, var) of the windows' OLS betas."""
    if x.shape[-1] != 1:
        raise ValueError("the window Kalman baseline is univariate")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(len(x), max_windows), replace=False)
    xs, ys = x[idx, :, 0].T, y[idx].T  # (h, n): one column per window
    ols = windows.ols_beta(x[idx], y[idx])[:, 0]
    beta0, p0 = float(ols.mean()), float(max(ols.var(), 1e-6))
    fit = fit_kalman_pooled(ys, xs, beta0=beta0, p0=p0, start=(1e-2, float(np.var(y))))
    return {"q": fit["q"], "h": fit["h"], "beta0": beta0, "p0": p0, "loglike": fit["loglike"]}


def kalman_window_beta(x: np.ndarray, y: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """One-step-ahead predicted beta after each window (``[n, 1]``)."""
    res = kalman_filter(
        y.T,
        x[:, :, 0].T,
        params["q"],
        params["h"],
        0.0,
        beta0=params["beta0"],
        p0=params["p0"],
        loglike=False,
    )
    return res.predicted[-1][:, None]


def synthetic_baselines(
    scenario: str,
    train: SyntheticData,
    val: SyntheticData,
    test: SyntheticData,
    bayes: bool = True,
    kalman: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Test-set betas of OLS (no intercept), EW-WLS (half-life tuned on ``val``), the Kalman
    filter (variances fitted on ``train``), the Bayes reference and the oracle, plus the
    tuned parameters."""
    xv, yv, xnv, ynv, _ = val.windows()
    x, y, _, _, bn = test.windows()
    hl, grid = windows.tune_half_life(xv, yv, xnv, ynv)
    betas = {
        "ols": windows.ols_beta(x, y),
        "wls": windows.ewls_beta(x, y, hl),
        "oracle": windows.oracle_beta(bn),
    }
    params: dict[str, object] = {"wls_half_life": hl, "wls_grid_val_rmse": grid}
    if kalman and x.shape[-1] == 1:
        xt, yt, *_ = train.windows()
        kp = fit_kalman_windows(xt, yt)
        betas["kalman"] = kalman_window_beta(x, y, kp)
        params["kalman"] = kp
    if bayes and scenario in BAYES:
        betas["bayes"] = BAYES[scenario](x, y)
    return betas, params


def baseline_rows(
    scenario: str, data: SyntheticData, tests: Mapping[str, SyntheticData]
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Rows of ``neuralbeta.baselines``: every baseline (tuned on ``data``'s train and
    validation splits) on each of the scenario's test sets, and the tuned parameters."""
    parts = data.split()
    rows = []
    params: dict[str, object] = {}
    for test_set, test in tests.items():
        betas, params = synthetic_baselines(scenario, parts["train"], parts["val"], test)
        _, _, xn, yn, bn = test.windows()
        frame = metrics.metric_rows(scenario, betas, xn, yn, bn)
        frame = frame.rename(columns={"model": "estimator"})
        frame["test_set"] = test_set
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out["params"] = json.dumps(params, default=float)
    return out, params


def market_baselines(
    val: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    grid: tuple[float, ...] = windows.DEFAULT_HALF_LIVES,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """OLS and EW-WLS (with intercept, half-life tuned on the validation windows) on the
    test windows of a market panel. ``val`` = (x, y, x_next, y_next); ``test`` = (x, y)."""
    best, scores = windows.tune_half_life(*val, grid, intercept=True)
    x, y = test
    betas = {
        "ols": windows.intercept_ols_beta(x, y),
        "wls": windows.intercept_ols_beta(x, y, windows.ew_weights(x.shape[1], best)),
    }
    return betas, {"wls_half_life": best, "wls_grid_val_rmse": scores}

"""Data of the NeuralBeta figures (paper Figs. 3-8) and the figures of an evaluation.

Models are loaded Lightning systems; :func:`beta_pipeline.lib.nn.predict` (torch) and the
plots (matplotlib) are imported on use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta import metrics, windows
from beta_pipeline.lib.neuralbeta.synthetic import (
    DEFAULT_WINDOW,
    T_DOF,
    SyntheticData,
    jump_probe,
)

#: Half-life of the WLS curves when the scenario has no tuned baseline yet.
FALLBACK_HALF_LIFE = 4.0


def example_path(scenario: str, length: int = 320, seed: int = 7) -> SyntheticData:
    """One long path for Fig. 3: cyclical with c = 12, or a step 1 -> -0.5 at the middle,
    or a constant 1.2; t(10) regressors and unit noise as in the scenarios."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=float)
    if scenario == "cyclical":
        beta = np.sin(0.3 + t / 12.0)
    elif scenario == "stepwise":
        beta = np.where(t < length // 2, 1.0, -0.5)
    else:
        beta = np.full(length, 1.2)
    x = rng.standard_t(T_DOF, size=(length, 1))
    y = beta * x[:, 0] + rng.standard_normal(length)
    return SyntheticData(scenario, x[None], y[None], beta[None, :, None], seed)


def cyclical_fixed_period(
    c: float, n: int, h: int = DEFAULT_WINDOW, seed: int = 0
) -> SyntheticData:
    """Cyclical samples with a fixed ``c`` (period ``2 pi c``) for the Fig. 4 curve."""
    rng = np.random.default_rng(seed)
    beta0 = rng.normal(0.0, 1.0, size=(n, 1, 1))
    t = np.arange(h + 1, dtype=float)[None, :, None]
    beta = np.sin(beta0 + t / c)
    x = rng.standard_t(T_DOF, size=beta.shape)
    y = beta[..., 0] * x[..., 0] + rng.standard_normal(beta.shape[:2])
    return SyntheticData("cyclical", x, y, beta, seed, {"c": np.full((n, 1), c)})


def nbi_weight_profiles(
    weights: np.ndarray, dates: pd.Series | np.ndarray, market: pd.Series
) -> tuple[np.ndarray, np.ndarray, tuple[str, str], pd.DataFrame]:
    """Figs. 7-8 from NBI weights ``[n, h]`` (window order, newest last) of windows ending
    on ``dates``: the mean normalised weight per lag in the calmest and most volatile month
    (by the std of daily market returns), and per date the share of weight on lags 0-4
    beside the 5-day market volatility (both known at the date)."""
    w = np.asarray(weights, float)[:, ::-1]  # lag 0 = newest
    w = w / w.mean(axis=1, keepdims=True)
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    mkt = market.sort_index()
    vol5 = mkt.rolling(5).std()
    month = d.to_period("M")
    monthly_vol = mkt.groupby(mkt.index.to_period("M")).std()
    months = monthly_vol.reindex(np.unique(month)).dropna()
    if months.empty:
        raise ValueError("no month with market returns for the NBI weights")
    calm, wild = months.idxmin(), months.idxmax()
    prof_calm = w[month == calm].mean(axis=0)
    prof_wild = w[month == wild].mean(axis=0)
    share = w[:, :5].sum(axis=1) / w.sum(axis=1)
    per_date = (
        pd.DataFrame({"date": d, "recent_weight_share": share})
        .groupby("date", as_index=False)["recent_weight_share"]
        .mean()
    )
    per_date["market_vol_5d"] = vol5.reindex(per_date["date"]).to_numpy()
    labels = (
        f"calm month {calm} (daily sd {months[calm]:.4f})",
        f"volatile month {wild} (daily sd {months[wild]:.4f})",
    )
    return prof_calm, prof_wild, labels, per_date.dropna()


def fig3_estimates(
    experiment: str, systems: Mapping[str, object], half_life: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fig. 3: the true beta of :func:`example_path` and each estimate of it (OLS, WLS and
    every model in ``systems``) from the windows that end before each step."""
    from beta_pipeline.lib.nn import predict

    path = example_path(experiment)
    h = next(iter(systems.values())).cfg.window
    xs, ys = windows.sliding_windows(path.x[0], path.y[0], h)
    xs, ys = xs[:-1], ys[:-1]  # the last window has no next step to hedge
    est = {
        "OLS": windows.ols_beta(xs, ys)[:, 0],
        f"WLS (half-life {half_life:g})": windows.ewls_beta(xs, ys, half_life)[:, 0],
    }
    for name, system in systems.items():
        est[name] = predict(system, xs, ys)[0][:, 0]
    return path.beta[0, :, 0], est


def fig4_curve(systems: Mapping[str, object], half_life: float, n: int = 2000) -> pd.DataFrame:
    """Fig. 4: % improvement over OLS of WLS and each model against the cyclical period."""
    from beta_pipeline.lib.nn import predict

    rows = []
    for k in range(4, 40, 3):
        data = cyclical_fixed_period(float(k), n, seed=1000 + k)
        x, y, xn, yn, _ = data.windows()
        betas = {"ols": windows.ols_beta(x, y), "wls": windows.ewls_beta(x, y, half_life)}
        for name, system in systems.items():
            betas[name] = predict(system, x, y)[0]
        ols = metrics.rmse_y(betas["ols"], xn, yn)
        for name, beta in betas.items():
            if name != "ols":
                rows.append(
                    {
                        "k": k,
                        "period": 2 * np.pi * k,
                        "model": name,
                        "improvement_vs_ols_pct": metrics.improvement_pct(
                            metrics.rmse_y(beta, xn, yn), ols
                        ),
                    }
                )
    return pd.DataFrame(rows)


def fig6_profiles(system: object) -> dict[int, np.ndarray]:
    """Fig. 6: the mean NBI weight per window step, per position of a 2 -> 0 jump."""
    from beta_pipeline.lib.nn import predict

    probe = jump_probe(n_per_position=1000, seed=2)
    x, y, *_ = probe.windows()
    _, w = predict(system, x, y)
    pos = probe.meta["jump"]
    return {int(k): w[pos == k].mean(0) for k in np.unique(pos)}


def wls_half_life(baselines: pd.DataFrame, experiment: str) -> float:
    """The tuned EW-WLS half-life of a synthetic experiment's baselines (else the fallback)."""
    rows = baselines[(baselines["experiment"] == experiment) & (baselines["estimator"] == "wls")]
    if not len(rows):
        return FALLBACK_HALF_LIFE
    return float(json.loads(rows["params"].iloc[0])["wls_half_life"])


def evaluation_figures(
    systems: Mapping[str, Mapping[str, object]],
    baselines: pd.DataFrame,
    history: pd.DataFrame,
    weights: Mapping[str, tuple[np.ndarray, pd.Series, pd.Series]],
) -> tuple[dict[str, bytes], dict[str, object]]:
    """PNGs of Figs. 3-8 for the evaluated models (``systems``: experiment -> model ->
    system; ``weights``: ``experiment/model`` -> NBI weights, window dates, market returns)
    and their extra results: the Fig. 4 curve and each Fig. 8 correlation."""
    from beta_pipeline.lib.neuralbeta import figures

    pngs: dict[str, bytes] = {}
    extra: dict[str, object] = {}
    for experiment, models in systems.items():
        hl = wls_half_life(baselines, experiment)
        truth, est = fig3_estimates(experiment, models, hl)
        pngs[f"fig3_{experiment}"] = figures.fig3_paths(truth, est, experiment)
        if experiment == "cyclical":
            curve = fig4_curve(models, hl)
            pngs["fig4_cyclical_period"] = figures.fig4_period_curve(curve)
            extra["fig4_curve"] = curve
        if experiment == "stepwise":
            for model, system in models.items():
                if model.endswith("nbi"):
                    title = f"Fig. 6 ({model} trained on stepwise): weights, beta 2 -> 0"
                    pngs[f"fig6_{model}"] = figures.fig6_probe(fig6_profiles(system), title)
    if len(history):
        pngs["fig5_history"] = figures.fig5_history(history)
    for name, (w, dates, mkt) in weights.items():
        calm, wild, labels, scatter = nbi_weight_profiles(w, dates, mkt)
        tag = name.replace("/", "_")
        pngs[f"fig7_{tag}"] = figures.fig7_lag_weights(calm, wild, labels)
        pngs[f"fig8_{tag}"] = figures.fig8_weight_vs_vol(scatter)
        extra[f"fig8_corr_{tag}"] = float(
            scatter[["market_vol_5d", "recent_weight_share"]].corr().iloc[0, 1]
        )
    return pngs, extra

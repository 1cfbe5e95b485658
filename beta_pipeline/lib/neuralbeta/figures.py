"""Figures of the NeuralBeta study (paper Figs. 3-8, the Kalman study) as PNG bytes."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from beta_pipeline.lib.plots import to_png  # noqa: E402


def scenario_examples(beta: np.ndarray, scenario: str, n: int = 6) -> bytes:
    """True beta paths of the first ``n`` samples (window + target step)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i in range(min(n, len(beta))):
        ax.plot(beta[i, :, 0], lw=1.2)
    ax.axvline(beta.shape[1] - 1, color="grey", ls=":", lw=1)
    ax.set(
        title=f"{scenario}: true beta of example samples (dotted: target step)",
        xlabel="step",
        ylabel="beta",
    )
    return to_png(fig)


def fig3_paths(truth: np.ndarray, estimates: Mapping[str, np.ndarray], scenario: str) -> bytes:
    """Fig. 3: true beta vs estimates on one long path (each estimate dated by the step it
    hedges)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    steps = np.arange(len(truth))
    ax.plot(steps, truth, color="black", lw=2, label="true beta")
    for name, est in estimates.items():
        ax.plot(steps[-len(est) :], est, lw=1, label=name, alpha=0.85)
    ax.set(
        title=f"Fig. 3 ({scenario}): true beta and next-step estimates",
        xlabel="step",
        ylabel="beta",
    )
    ax.legend(fontsize=7, ncol=3)
    return to_png(fig)


def fig4_period_curve(curve: pd.DataFrame) -> bytes:
    """Fig. 4: % improvement over OLS against the cyclical period 2 pi k."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, part in curve.groupby("model"):
        ax.plot(part["period"], part["improvement_vs_ols_pct"], marker=".", label=name)
    ax.set(
        title="Fig. 4: improvement over OLS vs cyclical period",
        xlabel="period 2*pi*k",
        ylabel="% RMSE(y) improvement",
    )
    ax.legend(fontsize=8)
    return to_png(fig)


def fig5_history(history: pd.DataFrame) -> bytes:
    """Fig. 5: validation RMSE(y) and RMSE(beta) per validation step, one panel per model."""
    groups = list(history.groupby(["experiment", "model"]))
    cols = min(4, max(len(groups), 1))
    rows = int(np.ceil(len(groups) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, ((exp, model), part) in zip(axes.flat, groups, strict=False):
        ax.plot(part["step"], part["rmse_y"], color="tab:blue", label="RMSE(y)")
        ax2 = ax.twinx()
        ax2.plot(part["step"], part["rmse_beta"], color="tab:orange", label="RMSE(beta)")
        corr = part[["rmse_y", "rmse_beta"]].corr().iloc[0, 1] if len(part) > 2 else np.nan
        ax.set_title(f"{exp}/{model} corr={corr:.3f}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax2.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle("Fig. 5: validation RMSE(y) (blue) and RMSE(beta) (orange) per update")
    return to_png(fig)


def fig6_probe(weights: Mapping[int, np.ndarray], title: str) -> bytes:
    """Fig. 6: mean NBI weight per window step for beta jumping 2 -> 0 at step k."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, w in sorted(weights.items()):
        line = ax.plot(np.asarray(w) / np.mean(w), lw=1.2, label=f"jump at {k}")
        ax.axvline(k, color=line[0].get_color(), ls=":", lw=0.8)
    ax.set(title=title, xlabel="window step (63 = newest)", ylabel="weight / mean weight")
    ax.legend(fontsize=7, ncol=2)
    return to_png(fig)


def fig7_lag_weights(calm: np.ndarray, volatile: np.ndarray, labels: tuple[str, str]) -> bytes:
    """Fig. 7: average NBI weight per lag in a calm and a volatile month."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lags = np.arange(len(calm))
    ax.plot(lags, calm, label=labels[0])
    ax.plot(lags, volatile, label=labels[1])
    ax.set(
        title="Fig. 7: NBI average weight per lag (0 = newest day)",
        xlabel="lag",
        ylabel="weight / mean weight",
    )
    ax.legend(fontsize=8)
    return to_png(fig)


def fig8_weight_vs_vol(frame: pd.DataFrame) -> bytes:
    """Fig. 8: share of NBI weight on the last 5 days vs 5-day market volatility."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(frame["market_vol_5d"], frame["recent_weight_share"], s=4, alpha=0.5)
    corr = frame[["market_vol_5d", "recent_weight_share"]].corr().iloc[0, 1]
    ax.set(
        title=f"Fig. 8: weight on the last 5 days vs 5-day market vol (corr {corr:.2f})",
        xlabel="5-day market volatility",
        ylabel="share of weight on lags 0-4",
    )
    return to_png(fig)


def kalman_study_plot(frame: pd.DataFrame, window: int = 30) -> bytes:
    """Betas of the kalman_step series and the running MSE of each estimator."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    a1.plot(frame["step"], frame["beta_true_next"], color="black", lw=2, label="true")
    for col in ("ols_full", f"ols_{window}", "kalman"):
        a1.plot(frame["step"], frame[col], lw=1, label=col)
        err = (frame[col] - frame["beta_true_next"]) ** 2
        a2.plot(frame["step"], err.expanding().mean(), lw=1, label=col)
    a1.set(title="Kalman study: beta 3 -> 6 at step 500", ylabel="beta")
    a1.legend(fontsize=8)
    a2.set(xlabel="step", ylabel="running MSE of beta", yscale="log")
    a2.legend(fontsize=8)
    return to_png(fig)

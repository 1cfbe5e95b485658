"""Figures of the beta sorts (PNG bytes): security market line, cumulative high-minus-low,
mean beta per portfolio over time. No Dagster; matplotlib is imported on first drawing
(:func:`beta_pipeline.lib.plots.pyplot`)."""

from __future__ import annotations

import fnmatch

import numpy as np
import pandas as pd

from beta_pipeline.lib import plots
from beta_pipeline.lib.portfolios.pipeline import mean_market_by_estimator
from beta_pipeline.lib.sorts import HML

#: Estimators shown in the figures when none are configured, in this order of preference.
HEADLINE = (
    "capm/ols_252",
    "capm/ols_60m",
    "capm/ewm",
    "capm/kalman",
    "capm/vasicek_*",
    "capm/blume_*",
    "neuralbeta/*",
    "capm/ols_*",
    "*",
)


def headline(estimators: list[str], patterns: list[str] | None = None, limit: int = 6) -> list[str]:
    """Up to ``limit`` estimators matching ``patterns`` (default :data:`HEADLINE`), in the
    patterns' order."""
    out: list[str] = []
    for pattern in patterns or HEADLINE:
        for name in sorted(fnmatch.filter(estimators, pattern)):
            if name not in out and len(out) < limit:
                out.append(name)
    return out


def _grid(n: int, width: float = 10.0, height: float = 3.0):
    plt = plots.pyplot()
    cols = 1 if n == 1 else (2 if n <= 4 else 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def security_market_line(
    summary: pd.DataFrame, mkt_mean: dict[str, float], estimators: list[str]
) -> bytes:
    """Mean monthly excess return of each portfolio against its realised CAPM beta, with
    the security market line ``E[r] = beta * mean market excess`` over the estimator's
    months (``mkt_mean[estimator]``; equal weights)."""
    fig, axes = _grid(len(estimators))
    for ax, est in zip(axes, estimators, strict=False):
        part = summary[
            (summary["estimator"] == est)
            & (summary["weighting"] == "ew")
            & (summary["portfolio"] != HML)
        ]
        x = part["capm_beta"].to_numpy(float)
        y = 100 * part["mean_ret_excess"].to_numpy(float)
        ax.scatter(x, y, s=18, zorder=3)
        for label, xi, yi in zip(part["portfolio"], x, y, strict=True):
            ax.annotate(str(label), (xi, yi), fontsize=7, xytext=(3, 2),
                        textcoords="offset points")
        finite = np.isfinite(x)
        lo = min(0.0, np.nanmin(x)) if finite.any() else 0.0
        hi = max(1.5, np.nanmax(x)) if finite.any() else 1.5
        grid = np.linspace(lo, hi, 2)
        slope = mkt_mean.get(est, np.nan)
        ax.plot(grid, 100 * slope * grid, color="tab:red", lw=1, label="SML")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(est, fontsize=9)
        ax.set_xlabel("realised CAPM beta", fontsize=8)
        ax.set_ylabel("mean excess return, %/month", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Beta-sorted portfolios and the security market line (equal-weighted)")
    fig.tight_layout()
    return plots.to_png(fig)


def cumulative_hml(sorts: pd.DataFrame, estimators: list[str]) -> bytes:
    """Compounded high-minus-low excess return per estimator (equal weights; a month with
    no high-minus-low return counts as 0)."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    part = sorts[
        (sorts["portfolio"] == HML)
        & (sorts["weighting"] == "ew")
        & sorts["estimator"].isin(estimators)
    ]
    for est, line in part.sort_values("month").groupby("estimator", sort=True):
        growth = (1 + line["ret_excess"].fillna(0.0)).cumprod() - 1
        ax.plot(line["month"], growth.to_numpy(), lw=1, label=est)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("Cumulative high-minus-low beta portfolio return (equal-weighted)")
    ax.set_ylabel("cumulative return")
    ax.legend(fontsize=7, ncol=2)
    return plots.to_png(fig)


def mean_beta_over_time(sorts: pd.DataFrame, estimators: list[str]) -> bytes:
    """Mean (sort-variable) beta of each portfolio per holding month, one panel per
    estimator (equal weights)."""
    fig, axes = _grid(len(estimators), height=2.8)
    for ax, est in zip(axes, estimators, strict=False):
        part = sorts[
            (sorts["estimator"] == est)
            & (sorts["weighting"] == "ew")
            & (sorts["portfolio"] != HML)
        ]
        for label, line in part.groupby("portfolio", sort=False):
            line = line.sort_values("month")
            ax.plot(line["month"], line["mean_beta"], lw=0.8, label=str(label))
        ax.set_title(est, fontsize=9)
        ax.tick_params(labelsize=7)
        if part["portfolio"].nunique() <= 10:
            ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Mean beta per portfolio over time (formation month's beta)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return plots.to_png(fig)


#: Holding months of history before the sort figures are drawn.
MIN_FIGURE_MONTHS = 3


def sort_figures(history: pd.DataFrame, patterns: list[str] | None = None) -> dict[str, bytes]:
    """``cumulative_hml`` and ``mean_beta`` figures of the equal-weighted sort history (the
    :func:`headline` estimators of ``patterns``); none before ``MIN_FIGURE_MONTHS`` months."""
    if history["month"].nunique() < MIN_FIGURE_MONTHS:
        return {}
    chosen = headline(sorted(history["estimator"].unique()), patterns)
    return {
        "cumulative_hml": cumulative_hml(history, chosen),
        "mean_beta": mean_beta_over_time(history, chosen[:4]),
    }


def sml_figure(
    summary: pd.DataFrame,
    sorts: pd.DataFrame,
    market: pd.DataFrame,
    patterns: list[str] | None = None,
) -> bytes | None:
    """The security market line of the :func:`headline` estimators of ``patterns`` with a
    finite CAPM beta (slope: mean market excess return over each estimator's holding months
    in ``sorts``); None when there is nothing to draw."""
    if not len(summary):
        return None
    mkt_mean = mean_market_by_estimator(sorts, market)
    chosen = headline(sorted(summary["estimator"].unique()), patterns)
    plottable = summary.loc[np.isfinite(summary["capm_beta"].astype(float))]
    chosen = [e for e in chosen if e in set(plottable["estimator"]) and e in mkt_mean]
    if not chosen:
        return None
    return security_market_line(plottable, mkt_mean, chosen)

"""Matplotlib figures rendered to PNG bytes (headless), for asset metadata and files."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend, imported on first use (a process
    that draws nothing, e.g. a scheduled daily run, does not load matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

#: Byte budget of one PNG: plots travel inline (base64) in Dagster metadata.
MAX_PNG_BYTES = 150_000
#: Resolutions tried in turn until a figure fits ``MAX_PNG_BYTES``.
DPIS = (100, 80, 64, 50)


def to_png(fig: plt.Figure, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """Render and close a figure, lowering the DPI until it fits ``max_bytes``."""
    plt = pyplot()
    png = b""
    try:
        for dpi in DPIS:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            png = buf.getvalue()
            if len(png) <= max_bytes:
                break
    finally:
        plt.close(fig)
    return png


def returns_overview(daily: pd.DataFrame) -> bytes:
    """Symbols with a return per day and the cumulative market excess return."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    counts = daily.groupby("date")["symbol"].nunique()
    ax1.plot(counts.index, counts.to_numpy(), lw=0.8)
    ax1.set_ylabel("symbols with a return")
    mkt = daily.drop_duplicates("date").set_index("date")["mkt_excess"].sort_index()
    ax2.plot(mkt.index, (1 + mkt).cumprod().to_numpy(), lw=0.8, color="tab:green")
    ax2.set_ylabel("cumulative market excess")
    ax2.set_yscale("log")
    fig.suptitle("daily_returns")
    return to_png(fig)


def lines_over_time(
    frame: pd.DataFrame, x: str, y: str, hue: str, title: str, ylabel: str | None = None
) -> bytes:
    """One line per value of ``hue`` (e.g. beta deciles over time, example stocks)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, part in frame.sort_values(x).groupby(hue, sort=True):
        ax.plot(part[x], part[y], lw=0.9, label=str(key))
    ax.set_title(title)
    ax.set_ylabel(ylabel or y)
    if frame[hue].nunique() <= 12:
        ax.legend(fontsize=7, ncol=2)
    return to_png(fig)


def boxplot_by(frame: pd.DataFrame, value: str, by: str, title: str) -> bytes:
    """Box plots of ``value`` per category ``by`` (e.g. betas by sector)."""
    plt = pyplot()
    groups = [(k, g[value].dropna().to_numpy()) for k, g in frame.groupby(by, sort=True)]
    groups = [(k, v) for k, v in groups if len(v)]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(groups), 4) + 1.5))
    ax.boxplot([v for _, v in groups], vert=False, showfliers=False)
    ax.set_yticks(range(1, len(groups) + 1), [str(k) for k, _ in groups])
    ax.set_title(title)
    ax.set_xlabel(value)
    return to_png(fig)


def bars(frame: pd.DataFrame, x: str, y: str, title: str, hue: str | None = None) -> bytes:
    """Grouped bar chart (e.g. hedging RMSE improvement per estimator)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if hue is None:
        ax.bar(frame[x].astype(str), frame[y])
    else:
        wide = frame.pivot_table(index=x, columns=hue, values=y)
        wide.plot.bar(ax=ax)
    ax.set_title(title)
    ax.set_ylabel(y)
    ax.tick_params(axis="x", labelrotation=45)
    return to_png(fig)


def small_multiples(
    frame: pd.DataFrame, x: str, y: str, panel: str, hue: str, title: str
) -> bytes:
    """One subplot per value of ``panel`` (e.g. a stock), one line per ``hue`` (estimator)."""
    plt = pyplot()
    import matplotlib.dates as mdates

    keys = sorted(frame[panel].unique())
    cols = 2 if len(keys) > 1 else 1
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.8 * rows), sharex=True, squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        part = frame[frame[panel] == key].sort_values(x)
        for name, line in part.groupby(hue, sort=True):
            ax.plot(line[x], line[y], lw=0.8, label=str(name))
        ax.set_title(str(key), fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.set_visible(False)
    for ax in axes.ravel():
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    fig.suptitle(title)
    fig.tight_layout()
    return to_png(fig)


def quantile_bands(
    frame: pd.DataFrame, x: str, y: str, title: str, ylabel: str | None = None
) -> bytes:
    """Cross-sectional median of ``y`` per ``x`` with its 10-90 % and 25-75 % bands (e.g.
    the distribution of monthly betas over time)."""
    plt = pyplot()
    q = frame.groupby(x)[y].quantile([0.1, 0.25, 0.5, 0.75, 0.9]).unstack().sort_index()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.fill_between(q.index, q[0.1], q[0.9], alpha=0.2, color="tab:blue", label="10-90 %")
    ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.35, color="tab:blue", label="25-75 %")
    ax.plot(q.index, q[0.5], lw=1.2, color="tab:blue", label="median")
    ax.set_title(title)
    ax.set_ylabel(ylabel or y)
    ax.legend(fontsize=8)
    return to_png(fig)

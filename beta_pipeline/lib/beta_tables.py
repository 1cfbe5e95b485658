"""Beta tables from long returns: factor panels, estimator specs, tuning and long output.

This is the pure core behind the ``daily_betas`` and ``monthly_betas`` assets: it pivots
returns once per factor model, runs every configured estimator on the (T, N) panel and
yields long rows (one estimator at a time, to bound memory) for the requested dates only.
Estimates dated t use data up to t (the estimators are causal; see lib/estimators).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators import kalman_filter
from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_panel
from beta_pipeline.lib.estimators.long import ESTIMATORS, pivot_returns, unpivot
from beta_pipeline.lib.estimators.tuning import tune_half_life

#: Factor columns of each model: CAPM uses the returns table's market excess return;
#: FF3/FF5 use factor series from raw.market (or raw.market_monthly).
MODEL_FACTORS: dict[str, tuple[str, ...]] = {
    "capm": ("mkt_excess",),
    "ff3": ("mkt_rf", "smb", "hml"),
    "ff5": ("mkt_rf", "smb", "hml", "rmw", "cma"),
}

BETA_COLUMNS: tuple[str, ...] = (
    "symbol",
    "model",
    "estimator",
    "factor",
    "beta",
    "alpha",
    "r2",
    "resid_std",
    "n_obs",
)

#: Train / validation shares of the history for tuned estimators (NeuralBeta paper's split:
#: 8 of 14 years train, 2 validation, 4 test).
TRAIN_SHARE = 8 / 14
VALIDATION_SHARE = 2 / 14


@dataclass(frozen=True)
class EstimatorSpec:
    """One column of the beta table: a name, an estimator kind and its parameters."""

    name: str
    kind: str  # ols | expanding | ewm | blume | vasicek | dimson | welch | kalman
    params: dict[str, Any] = field(default_factory=dict)
    single_factor: bool = False  # Kalman: CAPM only

    @property
    def lookback(self) -> int | None:
        """Rows of history an estimate needs; None: the whole history (Kalman, expanding)."""
        if self.kind in ("kalman", "expanding"):
            return None
        window = self.params.get("window")
        if window is None:
            return None
        return int(window) + int(self.params.get("leads", 0)) + int(self.params.get("lags", 0))


def daily_specs(
    windows: Sequence[int] = (60, 252),
    tidy_window: int = 63,
    tidy_min_obs: int = 50,
    ewm_window: int = 252,
    adjusted_window: int = 252,
    kalman: bool = True,
) -> list[EstimatorSpec]:
    """The default daily estimator set (half-life and Kalman variances are tuned later)."""
    specs = [
        EstimatorSpec(f"ols_{w}", "ols", {"window": w, "min_obs": max(int(0.8 * w), 3)})
        for w in windows
    ]
    specs.append(EstimatorSpec("ols_3m", "ols", {"window": tidy_window, "min_obs": tidy_min_obs}))
    specs.append(
        EstimatorSpec("ewm", "ewm", {"window": ewm_window, "min_obs": min(60, ewm_window)})
    )
    adj = {"window": adjusted_window, "min_obs": max(int(0.8 * adjusted_window), 3)}
    specs += [
        EstimatorSpec(f"blume_{adjusted_window}", "blume", dict(adj)),
        EstimatorSpec(f"vasicek_{adjusted_window}", "vasicek", dict(adj)),
        EstimatorSpec(f"dimson_{adjusted_window}", "dimson", dict(adj)),
        EstimatorSpec(f"welch_{adjusted_window}", "welch", dict(adj)),
    ]
    if kalman:
        specs.append(EstimatorSpec("kalman", "kalman", {"min_obs": 20}, single_factor=True))
    return specs


def factor_frame(
    model: str, returns: pd.DataFrame, market: pd.DataFrame, date_col: str = "date"
) -> pd.DataFrame | None:
    """Wide factor returns (index date, one column per factor) for a model, or None when
    the source lacks a factor. CAPM takes ``mkt_excess`` from the returns table."""
    factors = MODEL_FACTORS[model]
    if model == "capm":
        frame = returns.drop_duplicates(date_col).set_index(date_col)[["mkt_excess"]]
        return frame.sort_index()
    if market.empty:
        return None
    wide = market.pivot_table(index=date_col, columns="series", values="value", aggfunc="first")
    if not set(factors) <= set(wide.columns):
        return None
    dates = pd.DatetimeIndex(returns[date_col].drop_duplicates()).sort_values()
    frame = wide.loc[:, list(factors)].reindex(dates).dropna()
    frame.index.name = date_col
    return frame if len(frame) else None


@dataclass
class Panel:
    """Returns of one model as arrays: y (T, N) excess returns, x (T, k) factors."""

    dates: pd.DatetimeIndex
    symbols: pd.Index
    factors: list[str]
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def build(
        cls, returns: pd.DataFrame, factors: pd.DataFrame, date_col: str = "date"
    ) -> Panel:
        dates = pd.DatetimeIndex(factors.index)
        long = returns.rename(columns={date_col: "date", "ret_excess": "y"})
        y, symbols = pivot_returns(long, dates, "y")
        return cls(dates, symbols, [str(c) for c in factors.columns], y, factors.to_numpy(float))

    def rows_before(self, when: pd.Timestamp) -> int:
        return int(self.dates.searchsorted(pd.Timestamp(when), side="left"))


def split_rows(n_rows: int) -> tuple[slice, slice]:
    """Train and validation row slices by the paper's proportions (time order)."""
    # the epsilon keeps exact multiples exact: 14 * (8/14 + 2/14) is 9.999... in floats
    train_end = max(int(n_rows * TRAIN_SHARE + 1e-9), 1)
    val_end = max(int(n_rows * (TRAIN_SHARE + VALIDATION_SHARE) + 1e-9), train_end + 1)
    return slice(0, train_end), slice(train_end, min(val_end, n_rows))


def tune_ewm(
    panel: Panel, spec: EstimatorSpec, grid: Sequence[float]
) -> tuple[float, pd.DataFrame]:
    """Half-life with the lowest next-day hedging RMSE on the validation rows."""
    _, val = split_rows(len(panel.dates))
    best, table = tune_half_life(
        panel.y,
        panel.x,
        val,
        half_lives=list(grid),
        window=spec.params.get("window"),
        min_obs=spec.params.get("min_obs"),
    )
    return float(best), table


def fit_kalman(
    panel: Panel, n_sample: int = 20, seed: int = 0, train_rows: int | None = None
) -> dict[str, Any]:
    """Kalman parameters (q, h, alpha per asset) by MLE on the first ``train_rows`` rows
    (default: the training share of the panel, :func:`split_rows`)."""
    if train_rows is None:
        train_rows = split_rows(len(panel.dates))[0].stop
    params = fit_kalman_panel(panel.y, panel.x[:, 0], train_rows, n_sample=n_sample, seed=seed)
    return params.as_kwargs()


def _run(panel: Panel, spec: EstimatorSpec, out_rows: np.ndarray):
    """(RegressionResult-like, valid mask) of one spec over the whole panel."""
    from beta_pipeline.lib.estimators._panel import RegressionResult

    if spec.kind != "kalman":
        params = {k: v for k, v in spec.params.items() if not k.startswith("_")}
        return ESTIMATORS[spec.kind](panel.y, panel.x, **params), None
    p = dict(spec.params)
    min_obs = int(p.pop("min_obs", 1))
    kw = {k: p[k] for k in ("q", "h", "alpha", "phi", "mu", "beta0", "p0") if k in p}
    if "q" not in kw or "h" not in kw:
        raise ValueError("kalman spec needs fitted q and h (see fit_kalman)")
    xs = panel.x[:, 0]
    res = kalman_filter(panel.y, xs, **kw)
    t_len, n = panel.y.shape
    h = np.broadcast_to(np.asarray(kw["h"], dtype=float), (n,))
    alpha = np.broadcast_to(np.asarray(kw.get("alpha", 0.0), dtype=float), (n,))
    out = RegressionResult(
        beta=res.predicted[:, :, None],
        alpha=np.broadcast_to(alpha, (t_len, n)),
        r2=np.full((t_len, n), np.nan),
        resid_std=np.broadcast_to(np.sqrt(h), (t_len, n)),
        beta_se=np.sqrt(res.predicted_var)[:, :, None],
        n_obs=res.n_obs,
    )
    observed = np.isfinite(panel.y) & np.isfinite(xs)[:, None]
    return out, observed & (res.n_obs >= min_obs)


def estimate(
    panel: Panel,
    model: str,
    specs: Sequence[EstimatorSpec],
    start: pd.Timestamp,
    end: pd.Timestamp,
    date_col: str = "date",
) -> Iterator[pd.DataFrame]:
    """Long beta rows (``date_col`` + BETA_COLUMNS) for dates in [start, end), one frame per
    estimator. Specs that need a single factor are skipped for multi-factor models."""
    in_window = (panel.dates >= pd.Timestamp(start)) & (panel.dates < pd.Timestamp(end))
    if not in_window.any():
        return
    out_rows = np.asarray(in_window)[:, None]
    for spec in specs:
        if spec.single_factor and len(panel.factors) != 1:
            continue
        res, valid = _run(panel, spec, out_rows)
        mask = out_rows if valid is None else (valid & out_rows)
        long = unpivot(res, panel.dates, panel.symbols, panel.factors, spec.name, mask)
        if long.empty:
            continue
        long = long.rename(columns={"date": date_col})
        long["model"] = model
        for col in ("symbol", "estimator", "factor"):
            long[col] = long[col].astype(str)
        yield long.loc[:, [date_col, *BETA_COLUMNS]]

"""The crypto study's steps between its warehouse tables: the monthly panel, the MLP grid over
the market configurations, the classical baselines of each best configuration, the quartile
sorts and the small frames the assets show.

No Dagster import; no torch at import time (:func:`fit_configs` imports :mod:`.model`, and
with it torch, when it trains).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from beta_pipeline.lib.crypto import analysis, compare
from beta_pipeline.lib.crypto.data import COINS, common_sample, monthly_rf, wide_returns
from beta_pipeline.lib.crypto.grid import (
    GridPoint,
    TrainOptions,
    build_samples,
    config_markets,
)


def coin_order(frame: pd.DataFrame) -> list[str]:
    """Coin names of a long ``crypto.monthly_returns`` frame in the study's order (BTC, ETH,
    LTC, BCH first, others after)."""
    have = sorted(frame.loc[frame["role"] == "coin", "asset"].unique())
    return [c for c in COINS if c in have] + [c for c in have if c not in COINS]


def study_panel(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Months x assets log returns on the study sample (months where a coin has a return)
    and the coins, from a long ``crypto.monthly_returns`` frame."""
    coins = coin_order(frame)
    return common_sample(wide_returns(frame), coins), coins


def cumulative_log_returns(wide: pd.DataFrame) -> pd.DataFrame:
    """Long ``month, asset, cum_log_ret``: the running sum of each asset's log returns."""
    cum = wide.cumsum().stack().rename("cum_log_ret").reset_index()
    cum.columns = ["month", "asset", "cum_log_ret"]
    return cum


@dataclass(frozen=True)
class GridStudy:
    """The MLP grid over the configurations: every grid point's validation RMSE, the best
    point per configuration, its learning curves and its betas (method ``mlp``)."""

    grid: pd.DataFrame
    best: pd.DataFrame
    curves: pd.DataFrame
    betas: pd.DataFrame


def fit_configs(
    wide: pd.DataFrame,
    coins: Sequence[str],
    configs: Sequence[str],
    points: Sequence[GridPoint],
    options: TrainOptions,
    log: Callable[[str], None] | None = None,
) -> GridStudy:
    """Fit the grid ``points`` on each market configuration (``log``: one line each)."""
    from beta_pipeline.lib.crypto import model  # torch, only when training

    tables, best, curves, betas = [], [], [], []
    for name in configs:
        samples = build_samples(wide, list(coins), config_markets(name), options)
        fit = model.fit_grid(samples, list(points), options, name)
        p = fit.best
        tables.append(fit.table())
        row = model.best_row(fit)
        row["options"] = json.dumps(options.__dict__)
        best.append(row)
        curves.append(model.learning_curve(fit, p))
        betas.append(model.betas_frame(fit, p))
        if log is not None:
            log(
                f"{name}: {len(points)} grid points x {options.replicates} seeds in "
                f"{fit.seconds:.1f}s; best hidden={row['hidden']} lr={row['lr']} "
                f"{row['activation']} val RMSE {row['val_rmse']:.4f} test {row['test_rmse']:.4f}"
            )
    best_table = pd.DataFrame(best)
    for col in [c for c in best_table.columns if c.endswith(("_start", "_end"))]:
        best_table[col] = pd.to_datetime(best_table[col])
    return GridStudy(
        grid=pd.concat(tables, ignore_index=True),
        best=best_table,
        curves=pd.concat(curves, ignore_index=True),
        betas=pd.concat(betas, ignore_index=True),
    )


def split_text(best: pd.DataFrame) -> str:
    """The train / validation / test target months of the first best configuration."""
    first = best.iloc[0]
    return (
        f"train {first['train_start']:%Y-%m}..{first['train_end']:%Y-%m}, val "
        f"{first['val_start']:%Y-%m}..{first['val_end']:%Y-%m}, test "
        f"{first['test_start']:%Y-%m}..{first['test_end']:%Y-%m} (target months)"
    )


def grid_sample(grid: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` best grid points (validation RMSE) of each configuration."""
    return grid.sort_values(["config", "val_rmse"]).groupby("config").head(n)


def curves_long(curves: pd.DataFrame) -> pd.DataFrame:
    """Long ``config, epoch, curve, rmse`` of the learning curves (train and validation)."""
    return curves.melt(
        id_vars=["config", "epoch"], value_vars=["train_rmse", "val_rmse"], var_name="curve",
        value_name="rmse",
    )


def split_bounds(row: pd.Series) -> dict[str, str]:
    """``train_end``, ``val_end``, ``test_end`` (``YYYY-MM``) of a best-config row."""
    return {f"{s}_end": f"{pd.Timestamp(row[f'{s}_end']):%Y-%m}" for s in ("train", "val", "test")}


def study_baselines(
    wide: pd.DataFrame,
    coins: Sequence[str],
    best: pd.DataFrame,
    ols_windows: Sequence[int],
    expanding: bool,
    kalman: bool,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """OLS / Kalman betas on each best configuration's markets, labelled with its split
    (Kalman variances fitted on its training months), and the Kalman signal-to-noise
    ratio per configuration."""
    parts, snr = [], {}
    for _, row in best.iterrows():
        frame, info = compare.baseline_betas(
            wide, list(coins), config_markets(row["config"]), row["config"],
            pd.Timestamp(row["train_end"]), list(ols_windows), expanding, kalman,
        )
        frame["split"] = analysis.label_months(frame["month"], split_bounds(row))
        parts.append(frame)
        if "kalman_snr" in info:
            snr[row["config"]] = float(info["kalman_snr"])
    return pd.concat(parts, ignore_index=True), snr


def single_market(frame: pd.DataFrame, method: str = "mlp") -> pd.DataFrame:
    """Rows of ``method`` on the single-market configurations (config = market)."""
    return frame.loc[(frame["method"] == method) & (frame["config"] == frame["market"])]


def best_points(best: pd.DataFrame) -> tuple[TrainOptions, dict[str, GridPoint]]:
    """The grid's training options and each configuration's best grid point."""
    options = TrainOptions(**json.loads(best["options"].iloc[0]))
    points = {
        r["config"]: GridPoint(int(r["hidden"]), float(r["lr"]), str(r["activation"]))
        for _, r in best.iterrows()
    }
    return options, points


@dataclass(frozen=True)
class QuartileStudy:
    """Quartile rows, the cross-sections skipped, their summary, and the months whose rf
    was carried forward past the factor file's last month."""

    rows: pd.DataFrame
    skipped: pd.DataFrame
    summary: pd.DataFrame
    rf_filled: int


def quartile_study(
    wide: pd.DataFrame, coins: Sequence[str], factors: pd.DataFrame, betas: pd.DataFrame
) -> QuartileStudy:
    """Beta quartiles of the coins (single-market configurations) with next-month excess
    returns: simple return - rf of the holding month (``factors``: long monthly factors)."""
    rf, filled = monthly_rf(factors, pd.DatetimeIndex(wide.index))
    excess = analysis.excess_returns(wide, list(coins), rf)
    rows, skipped = analysis.quartile_sorts(betas, excess)
    return QuartileStudy(rows, skipped, analysis.quartile_summary(rows), filled)

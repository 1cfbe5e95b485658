"""Daily NeuralBeta betas and NBI weights (no look-ahead): each date of a window gets the
beta of the newest run of its (experiment, model) trained on data up to that date.

Checkpoints are loaded with :mod:`beta_pipeline.lib.nn` (torch, imported on use).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from beta_pipeline.lib import warehouse
from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.neuralbeta.market import inference_windows, market_panel
from beta_pipeline.lib.neuralbeta.tables import BETAS, WEIGHTS


@dataclass
class DailyBetas:
    """Rows for ``neuralbeta.betas`` / ``neuralbeta.weights`` and what was left out."""

    betas: pd.DataFrame
    weights: pd.DataFrame
    runs_used: list[str] = field(default_factory=list)
    #: stock-days before the first run's data end (no beta without look-ahead)
    before_any_model: int = 0
    #: dates with less history than a model's window in the data read
    short_history: int = 0
    #: experiment -> why its panel could not be built (its rows stay as they were)
    skipped_experiments: dict[str, str] = field(default_factory=dict)


#: Studies a daily beta may come from, in order of preference: the walk-forward runs (one
#: per cut-off year) and the single Table 1 split (``neuralbeta_model``).
STUDIES: tuple[str, ...] = ("walkforward", "table1")


def choose_runs(runs: pd.DataFrame, studies: list[str] | tuple[str, ...] = STUDIES) -> pd.DataFrame:
    """Per (experiment, model), the runs of the first study in ``studies`` that has any (a
    run stored before studies were recorded counts as ``table1``): a model's daily betas
    come from one study, never a mix."""
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        raise ValueError(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    if runs.empty:
        return runs
    study = runs["study"].fillna("table1") if "study" in runs else pd.Series("table1", runs.index)
    keep = pd.Series(False, index=runs.index)
    for _, grp in runs.groupby(["experiment", "model"]):
        for name in studies:
            hit = grp.index[study[grp.index] == name]
            if len(hit):
                keep[hit] = True
                break
    return runs[keep]


def assign_runs(dates: pd.Series, runs: pd.DataFrame) -> np.ndarray:
    """Per date, the index (into ``runs``, sorted by trained_through) of the newest run
    trained strictly on data up to that date, or -1 (no model yet)."""
    through = pd.to_datetime(runs["trained_through"]).to_numpy(dtype="datetime64[ns]")
    d = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    return np.searchsorted(through, d, side="right") - 1


def _weight_rows(
    keys: pd.DataFrame, w: np.ndarray, experiment: str, model: str, run_id: str
) -> pd.DataFrame:
    """Long NBI weights: one row per (date, symbol, lag), lag 0 = the newest day."""
    n_lags = w.shape[1]
    return pd.DataFrame(
        {
            "date": np.repeat(keys["date"].to_numpy(), n_lags),
            "symbol": np.repeat(keys["symbol"].to_numpy(), n_lags),
            "experiment": experiment,
            "model": model,
            "lag": np.tile(np.arange(n_lags - 1, -1, -1, dtype=np.int16), len(keys)),
            "weight": w.astype(np.float32).ravel(),
            "run_id": run_id,
        }
    )


def daily_betas(
    returns: pd.DataFrame,
    market: pd.DataFrame,
    runs: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    with_weights: bool = True,
) -> DailyBetas:
    """Betas dated in ``[start, end)`` (inputs t-h+1..t, hedging t+1) of every market run
    in ``runs``; ``returns``/``market`` must reach a window's length before ``start``."""
    from beta_pipeline.lib.nn import load_system, predict

    out = DailyBetas(pd.DataFrame(), pd.DataFrame())
    beta_rows, weight_rows = [], []
    for experiment, exp_runs in runs.groupby("experiment"):
        try:
            y, x, _ = market_panel(returns, market, experiment)
        except DataValidationError as err:  # e.g. no size/value factor on these dates
            out.skipped_experiments[experiment] = str(err)
            continue
        in_range = np.flatnonzero((y.index >= start) & (y.index < end))
        for model, mruns in exp_runs.groupby("model"):
            mruns = mruns.sort_values(["trained_through", "created_at"]).reset_index(drop=True)
            for i, run in mruns.iterrows():
                # windows of this run's own length; the run serves the dates for which it is
                # the newest model trained on data up to the date
                h = int(json.loads(run["config"])["model"]["window"])
                out.short_history += int((in_range < h - 1).sum())
                xw, yw, keys = inference_windows(y, x, h, start, end)
                which = assign_runs(keys["date"], mruns)
                if i == 0:
                    out.before_any_model += int((which < 0).sum())
                sel = which == i
                if not sel.any():
                    continue
                beta, w = predict(load_system(run["checkpoint"]), xw[sel], yw[sel])
                k = keys[sel].reset_index(drop=True)
                run_id = run["run_id"]
                out.runs_used.append(run_id)
                for j, factor in enumerate(x.columns):
                    beta_rows.append(
                        k.assign(
                            experiment=experiment,
                            model=model,
                            factor=factor,
                            beta=beta[:, j],
                            run_id=run_id,
                        )
                    )
                if with_weights and w is not None:
                    weight_rows.append(_weight_rows(k, w, experiment, model, run_id))
    out.betas = _concat(beta_rows, BETAS.column_names)
    out.weights = _concat(weight_rows, WEIGHTS.column_names)
    return out


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def write_daily_betas(
    conn: duckdb.DuckDBPyConnection,
    result: DailyBetas,
    runs: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    with_weights: bool = True,
) -> None:
    """Replace the window's rows of every (experiment, model) of ``runs`` (NBI weights of
    the NBI models too); a skipped experiment's rows stay as they were."""
    betas, weights = result.betas, result.weights
    for (experiment, model), _ in runs.groupby(["experiment", "model"]):
        if experiment in result.skipped_experiments:
            continue
        flt = {"experiment": experiment, "model": model}
        part = betas[(betas["experiment"] == experiment) & (betas["model"] == model)]
        warehouse.replace_window(conn, BETAS.name, part, start, end, flt)
        if with_weights and model.endswith("nbi"):
            wpart = weights[(weights["experiment"] == experiment) & (weights["model"] == model)]
            warehouse.replace_window(conn, WEIGHTS.name, wpart, start, end, flt)

"""Evaluation of trained NeuralBeta models (METHODS §5): metric rows of each model on its
test set(s) beside the baselines on the same windows, and the evaluation table.

Checkpoints are loaded with :mod:`beta_pipeline.lib.nn` (torch, imported on use).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta import metrics, windows
from beta_pipeline.lib.neuralbeta.baselines import market_baselines
from beta_pipeline.lib.neuralbeta.experiments import PAPER_TABLE1
from beta_pipeline.lib.neuralbeta.market import market_panel
from beta_pipeline.lib.neuralbeta.synthetic import SyntheticData

#: NBI weights of one market model for Figs. 7-8: weights, window end dates, market returns.
WeightSample = tuple[np.ndarray, pd.Series, pd.Series]


def synthetic_model_rows(
    runs: pd.DataFrame, test_sets: Callable[[str], Mapping[str, SyntheticData]]
) -> tuple[list[pd.DataFrame], dict[str, dict[str, object]]]:
    """Metric rows of every synthetic model on each test set of its experiment
    (``test_sets(experiment)``: name -> data); the loaded systems."""
    from beta_pipeline.lib.nn import load_system, predict

    rows: list[pd.DataFrame] = []
    systems: dict[str, dict[str, object]] = {}
    for experiment, part in runs.groupby("experiment"):
        tests = test_sets(experiment)
        for run in part.itertuples():
            system = load_system(run.checkpoint)
            systems.setdefault(experiment, {})[run.model] = system
            for test_set, test in tests.items():
                x, y, xn, yn, bn = test.windows()
                beta, _ = predict(system, x, y)
                betas = {
                    "ols": windows.ols_beta(x, y),
                    "oracle": windows.oracle_beta(bn),
                    run.model: beta,
                }
                frame = metrics.metric_rows(experiment, betas, xn, yn, bn)
                frame = frame[frame["model"] == run.model].assign(
                    test_set=test_set, run_id=run.run_id
                )
                rows.append(frame)
    return rows, systems


def window_end_dates(data) -> pd.Series:
    """Last input date of each window of a market split (the day the beta is dated)."""
    return pd.Series(data.dates[data.last.numpy()])


def _as_numpy(data) -> dict[str, np.ndarray]:
    """Every window of a market split as float64 arrays (x, y, x_next, y_next)."""
    import torch

    batch = data[torch.arange(len(data))]
    return {k: batch[k].double().numpy() for k in ("x", "y", "x_next", "y_next")}


def market_model_rows(
    runs: pd.DataFrame, returns: pd.DataFrame, market: pd.DataFrame
) -> tuple[list[pd.DataFrame], dict[str, pd.DataFrame], dict[str, WeightSample]]:
    """Test-span metric rows of the market models with OLS / tuned EW-WLS on the same
    windows, the baselines' rows and (for NBI models) weights for Figs. 7-8."""
    from beta_pipeline.lib.nn import NeuralBetaDataModule, load_system, predict

    rows: list[pd.DataFrame] = []
    base_rows: dict[str, pd.DataFrame] = {}
    weights: dict[str, WeightSample] = {}
    for experiment, part in runs.groupby("experiment"):
        y, x, _ = market_panel(returns, market, experiment)
        for run in part.itertuples():
            cfg = json.loads(run.config)["model"]
            sets = NeuralBetaDataModule.from_market(
                y, x, int(cfg["window"]), run.train_end, run.val_end
            )
            if sets.test_set is None or not len(sets.test_set):
                continue
            val, test = _as_numpy(sets.val_set), _as_numpy(sets.test_set)
            betas, params = market_baselines(
                (val["x"], val["y"], val["x_next"], val["y_next"]), (test["x"], test["y"])
            )
            beta, w = predict(load_system(run.checkpoint), test["x"], test["y"])
            betas[run.model] = beta
            frame = metrics.metric_rows(experiment, betas, test["x_next"], test["y_next"])
            frame = frame.assign(test_set="test", run_id=run.run_id)
            rows.append(frame[frame["model"] == run.model])
            base = frame[frame["model"].isin(["ols", "wls"])].copy()
            base["params"] = json.dumps(params, default=float)
            base_rows[experiment] = base
            if w is not None:
                dates = window_end_dates(sets.test_set)
                weights[f"{experiment}/{run.model}"] = (w, dates, x["mkt_excess"])
    return rows, base_rows, weights


def evaluation_table(
    model_rows: list[pd.DataFrame],
    baselines: pd.DataFrame,
    market_base: Mapping[str, pd.DataFrame],
    history: pd.DataFrame,
) -> pd.DataFrame:
    """``neuralbeta.evaluation``: the models' rows, the synthetic baselines (``estimator``
    as ``model``) and the market baselines, with each run's correlation of validation
    RMSE(y) and RMSE(beta) and the paper's Table 1 value."""
    base = baselines.rename(columns={"estimator": "model"})
    base = pd.concat([base, *market_base.values()], ignore_index=True) if market_base else base
    evaluation = pd.concat([*model_rows, base.assign(run_id=None)], ignore_index=True)
    corr = (
        history.groupby("run_id")[["rmse_y", "rmse_beta"]]
        .apply(lambda g: g.corr().iloc[0, 1] if len(g) > 2 else np.nan)
        .rename("corr_rmse_y_rmse_beta")
    )
    evaluation = evaluation.merge(corr, left_on="run_id", right_index=True, how="left")
    evaluation["paper_improvement_pct"] = [
        PAPER_TABLE1.get(e, {}).get(m)
        for e, m in zip(evaluation["experiment"], evaluation["model"], strict=True)
    ]
    evaluation["paper_improvement_pct"] = evaluation["paper_improvement_pct"].astype(float)
    return evaluation


def table1_markdown(evaluation: pd.DataFrame) -> str:
    """Table 1 (ours beside the paper's) as Markdown, from the headline test sets (the
    synthetic 10 % split and the market test span)."""
    headline = evaluation[evaluation["test_set"].isin(["split", "test"])]
    return metrics.table1(headline).reset_index().to_markdown(index=False)

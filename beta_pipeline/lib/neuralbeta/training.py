"""Bookkeeping of one NeuralBeta training run: its id, budget and data split, and the rows
of ``neuralbeta.runs`` / ``neuralbeta.history`` (the training itself is
:func:`beta_pipeline.lib.nn.train`; torch loads on use)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta.market import market_panel

if TYPE_CHECKING:
    from beta_pipeline.lib.nn import Budget, NeuralBetaDataModule, TrainResult


def new_run_id() -> str:
    """UTC time stamp plus a random suffix, e.g. ``20240102T030405-1a2b3c``."""
    return f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def budget(name: str, max_steps: int | None = None) -> Budget:
    """The named training budget, with ``max_steps`` updates if given."""
    from beta_pipeline.lib.nn.config import get_budget

    out = get_budget(name)
    return dataclasses.replace(out, max_steps=max_steps) if max_steps else out


def split_end(data) -> pd.Timestamp | None:
    """Last window date of a market split (None for an empty or synthetic split)."""
    keys = data.keys() if hasattr(data, "keys") and len(data) else None
    return None if keys is None else pd.Timestamp(keys["date"].max())


def market_datamodule(
    returns: pd.DataFrame,
    market: pd.DataFrame,
    experiment: str,
    window: int,
    train_end: str | None = None,
    val_end: str | None = None,
) -> tuple[NeuralBetaDataModule, list[str], str, dict[str, pd.Timestamp | None]]:
    """Windows of a market experiment split in time (8/2/4 of the dates unless the ends
    are given): the data module, its factors, a description and the split's end dates."""
    from beta_pipeline.lib.nn import NeuralBetaDataModule

    y, x, desc = market_panel(returns, market, experiment)
    dm = NeuralBetaDataModule.from_market(y, x, window, train_end, val_end)
    split = {
        "train_end": split_end(dm.train_set),
        "val_end": split_end(dm.val_set),
        "trained_through": split_end(dm.val_set),
    }
    return dm, list(x.columns), desc, split


def history_corr(history: pd.DataFrame) -> float:
    """Correlation of validation RMSE(y) and RMSE(beta) over the run (NaN without beta)."""
    if len(history) > 2 and "rmse_beta" in history and history["rmse_beta"].notna().all():
        return float(history[["rmse_y", "rmse_beta"]].corr().iloc[0, 1])
    return float("nan")


def run_tables(
    run_id: str,
    experiment: str,
    model: str,
    seed: int,
    plan: Budget,
    res: TrainResult,
    dm: NeuralBetaDataModule,
    split: dict[str, pd.Timestamp | None],
    factors: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's row of ``neuralbeta.runs`` and its rows of ``neuralbeta.history``."""
    run = {
        "run_id": run_id,
        "experiment": experiment,
        "model": model,
        "budget": plan.name,
        "seed": seed,
        "config": json.dumps({"model": res.config, "budget": res.budget}, default=str),
        "checkpoint": res.checkpoint_path,
        "n_train": len(dm.train_set),
        "n_val": len(dm.val_set),
        "n_test": len(dm.test_set) if dm.test_set is not None else 0,
        "train_end": split.get("train_end"),
        "val_end": split.get("val_end"),
        "trained_through": split.get("trained_through"),
        "factors": ",".join(factors),
        "best_step": res.best_step,
        "best_val_loss": res.best_val_loss,
        "steps": res.steps,
        "seconds": res.seconds,
        "cpu_seconds": res.cpu_seconds,
        "device": str(next(res.system.parameters()).device),
        "created_at": pd.Timestamp.now(),
    }
    history = (
        pd.DataFrame(res.history)
        .rename(columns={"loss": "val_loss"})
        .assign(run_id=run_id, experiment=experiment, model=model)
    )
    for col in ("val_loss", "rmse_y", "rmse_beta"):
        if col not in history:
            history[col] = np.nan
    return pd.DataFrame([run]), history

"""Training of one NeuralBeta model per (experiment, model) partition."""

from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.synthetic import load_scenario
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import png_metadata
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.neuralbeta import store, training
from beta_pipeline.lib.neuralbeta.experiments import EXPERIMENTS, MODELS, SYNTHETIC_EXPERIMENTS
from beta_pipeline.lib.quality.model_rules import window_ols_rmse

if TYPE_CHECKING:  # torch and lightning load only where a model is trained
    from beta_pipeline.lib.nn import NeuralBetaDataModule, TrainResult

SplitEnds = dict[str, pd.Timestamp | None]

model_partitions = dg.MultiPartitionsDefinition(
    {
        "experiment": dg.StaticPartitionsDefinition(list(EXPERIMENTS)),
        "model": dg.StaticPartitionsDefinition(list(MODELS)),
    }
)


class NeuralBetaModelConfig(dg.Config):
    """Training budget and data split of one NeuralBeta model."""

    budget: str = "quick"
    """quick (CPU, minutes), paper (100,000 updates; for a GPU) or tiny (tests)."""
    seed: int = 0
    threads: int = 1
    """torch CPU threads (1: other steps may run at the same time)."""
    accelerator: str = "auto"
    max_steps: int | None = None
    """Override the budget's number of updates."""
    window: int = 64
    data_end: str | None = None
    """Market experiments: use returns up to this date only (walk-forward retraining)."""
    train_end: str | None = None
    """Market experiments: last target date of the training split (default: 8/14 of dates)."""
    val_end: str | None = None
    """Market experiments: last target date of the validation split (default: 10/14)."""
    progress: bool = False


def _datamodule(
    experiment: str,
    config: NeuralBetaModelConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> tuple["NeuralBetaDataModule", list[str], str, SplitEnds, int]:
    """The experiment's windows: data module, factors, description, split ends, window."""
    from beta_pipeline.lib.nn import NeuralBetaDataModule

    if experiment in SYNTHETIC_EXPERIMENTS:
        data = load_scenario(artifacts, experiment)
        dm = NeuralBetaDataModule.from_synthetic(data)
        return dm, ["x"], f"synthetic {experiment}", {}, data.window
    end = pd.Timestamp(config.data_end) + pd.Timedelta(days=1) if config.data_end else None
    with warehouse_db.reader() as conn:
        returns, market = store.read_market(conn, end)
    dm, factors, desc, split = training.market_datamodule(
        returns, market, experiment, config.window, config.train_end, config.val_end
    )
    if not len(dm.train_set) or not len(dm.val_set):
        raise dg.Failure(f"{experiment}: empty training or validation split ({split})")
    return dm, factors, desc, split, config.window


def _metadata(
    res: "TrainResult",
    run_id: str,
    dm: "NeuralBetaDataModule",
    factors: list[str],
    split: SplitEnds,
    corr: float,
) -> dict[str, object]:
    """Metadata of a training run (``ols_val_rmse_y``: see lib/quality/model_rules.py)."""
    return {
        "run_id": run_id,
        "checkpoint": res.checkpoint_path,
        "best_step": res.best_step,
        "best_val_loss": float(res.best_val_loss),
        "train_seconds": round(res.seconds, 1),
        "cpu_seconds": round(res.cpu_seconds, 1),
        "train_windows": len(dm.train_set),
        "factors": ", ".join(factors),
        "corr_rmse_y_rmse_beta": corr,
        "ols_val_rmse_y": window_ols_rmse(dm.val_set),
        **{k: str(pd.Timestamp(v).date()) for k, v in split.items() if v is not None},
    }


@dg.asset(
    partitions_def=model_partitions,
    deps=[
        # one scenario per synthetic experiment; Dagster cannot map an experiment x model key
        # onto a static partition set that lacks the market experiments, so: all scenarios
        dg.AssetDep("synthetic_scenarios", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("daily_returns", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("raw_market", partition_mapping=dg.AllPartitionMapping()),
    ],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "lightning", "duckdb"},
    group_name=GROUP,
    metadata=writes("neuralbeta.runs", "neuralbeta.history"),
    description="Train one NeuralBeta model (NB/NBI, GRU/attention) for one experiment.",
)
def neuralbeta_model(
    context: dg.AssetExecutionContext,
    config: NeuralBetaModelConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Synthetic experiments train on the scenario's 70 % split and validate on its 20 %;
    market experiments train jointly on all stocks with a time split (8/2/4 of the dates).
    The best-validation checkpoint goes under ``artifacts/neuralbeta/`` and the run (split
    dates, budget, timings) into ``neuralbeta.runs`` / ``neuralbeta.history``."""
    import torch

    from beta_pipeline.lib.neuralbeta import figures
    from beta_pipeline.lib.nn import NeuralBetaConfig, train

    keys = context.partition_key.keys_by_dimension
    experiment, model = keys["experiment"], keys["model"]
    torch.set_num_threads(max(config.threads, 1))
    plan = training.budget(config.budget, config.max_steps)
    run_id = training.new_run_id()
    out_dir = artifacts.path("neuralbeta", experiment, model, run_id, "best.ckpt").parent
    dm, factors, desc, split, window_len = _datamodule(experiment, config, artifacts, warehouse_db)
    cfg = NeuralBetaConfig.preset(model, d=len(factors), window=window_len)
    context.log.info(
        f"training {experiment}/{model} ({desc}): {len(dm.train_set):,} train / "
        f"{len(dm.val_set):,} val windows, budget {plan.name} ({plan.max_steps} updates)"
    )
    res = train(
        cfg,
        dm,
        plan,
        seed=config.seed,
        out_dir=out_dir,
        accelerator=config.accelerator,
        progress=config.progress,
    )
    runs, history = training.run_tables(
        run_id, experiment, model, config.seed, plan, res, dm, split, factors
    )
    with warehouse_db.patient_writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.runs", runs, {"run_id": run_id})
        warehouse.replace_keys(conn, "neuralbeta.history", history, {"run_id": run_id})
    png = figures.fig5_history(history)
    artifacts.path("plots", f"neuralbeta_history_{experiment}_{model}.png").write_bytes(png)
    meta = _metadata(res, run_id, dm, factors, split, training.history_corr(history))
    meta["history"] = png_metadata(png, "validation history")
    return dg.MaterializeResult(metadata=meta)

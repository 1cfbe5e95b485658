"""Training of one NeuralBeta model per (experiment, model) partition."""

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.synthetic import load_scenario
from beta_pipeline.defs.util import png_metadata
from beta_pipeline.lib.neuralbeta import bundles, store, training
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


class TrainingConfig(dg.Config):
    """Training budget, devices and input window of a NeuralBeta model."""

    budget: str = "quick"
    """quick (CPU, minutes), paper (100,000 updates; for a GPU) or tiny (tests)."""
    seed: int = 0
    threads: int = 1
    """torch CPU threads (1: other steps may run at the same time)."""
    accelerator: str = "auto"
    devices: int = 1
    """Devices per node (GPUs, or CPU processes with strategy ddp)."""
    num_nodes: int = 1
    strategy: str = "auto"
    """Lightning strategy: auto (one device) or ddp (one process per device)."""
    max_steps: int | None = None
    """Override the budget's number of updates."""
    window: int = 64
    progress: bool = False


class NeuralBetaModelConfig(TrainingConfig):
    """:class:`TrainingConfig` plus the data split of a Table 1 model."""

    data_end: str | None = None
    """Market experiments: use returns up to this date only."""
    train_end: str | None = None
    """Market experiments: last target date of the training split (default: 8/14 of dates)."""
    val_end: str | None = None
    """Market experiments: last target date of the validation split (default: 10/14)."""


@dataclass(frozen=True)
class MarketSplit:
    """Dates a market model reads and trains/validates on (None: the default split)."""

    data_end: str | None = None
    train_end: str | None = None
    val_end: str | None = None


@dataclass
class FittedRun:
    """A trained model's rows for ``neuralbeta.runs``/``history``, plot and metadata."""

    run_id: str
    runs: pd.DataFrame
    history: pd.DataFrame
    checkpoint: str
    png: bytes
    metadata: dict[str, object]


def _datamodule(
    experiment: str,
    config: TrainingConfig,
    split: MarketSplit,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> tuple["NeuralBetaDataModule", list[str], str, SplitEnds, int]:
    """The experiment's windows: data module, factors, description, split ends, window."""
    from beta_pipeline.lib.nn import NeuralBetaDataModule

    if experiment in SYNTHETIC_EXPERIMENTS:
        data = load_scenario(artifacts, experiment)
        dm = NeuralBetaDataModule.from_synthetic(data)
        return dm, ["x"], f"synthetic {experiment}", {}, data.window
    end = pd.Timestamp(split.data_end) + pd.Timedelta(days=1) if split.data_end else None
    with warehouse_db.reader() as conn:
        returns, market = store.read_market(conn, end)
    dm, factors, desc, ends = training.market_datamodule(
        returns, market, experiment, config.window, split.train_end, split.val_end
    )
    if not len(dm.train_set) or not len(dm.val_set):
        raise dg.Failure(f"{experiment}: empty training or validation split ({ends})")
    return dm, factors, desc, ends, config.window


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
    kinds={"pytorch", "lightning"},
    group_name=GROUP,
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
    Reads the warehouse, never writes it: the best-validation checkpoint and the run (split
    dates, budget, timings, history) become a run bundle under the model store, which
    ``neuralbeta_runs`` loads into ``neuralbeta.runs`` / ``neuralbeta.history``."""
    keys = model_partitions.get_partition_key_from_str(str(context.partition_key)).keys_by_dimension
    experiment, model = keys["experiment"], keys["model"]
    split = MarketSplit(config.data_end, config.train_end, config.val_end)
    with training_folder(artifacts, bundles.TABLE1, f"{experiment}.{model}") as folder:
        fit = fit_model(context, experiment, model, config, split, artifacts, warehouse_db, folder)
        meta = publish(context, artifacts, bundles.TABLE1, fit)
    artifacts.path("plots", f"neuralbeta_history_{experiment}_{model}.png").write_bytes(fit.png)
    return dg.MaterializeResult(metadata=meta)


@contextlib.contextmanager
def training_folder(artifacts: ArtifactStore, study_key: str, spec: str) -> Iterator[Path]:
    """Where a training writes its checkpoint: its bundle's folder when the model store is
    local, else a temporary folder (removed after :func:`publish` uploaded the bundle)."""
    root = bundles.local_folder(artifacts.models_root())
    if root is not None:
        yield root / study_key / spec
        return
    with tempfile.TemporaryDirectory(prefix="neuralbeta_") as tmp:
        yield Path(tmp)


def publish(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, study_key: str, fit: "FittedRun"
) -> dict[str, object]:
    """Leave ``fit`` as a run bundle in the model store; its materialization metadata."""
    spec = f"{fit.runs['experiment'].iloc[0]}.{fit.runs['model'].iloc[0]}"
    url = bundles.bundle_url(artifacts.models_root(), study_key, spec, fit.run_id)
    checkpoint = bundles.write_bundle(url, fit.runs, fit.history, fit.checkpoint)
    context.log.info(f"{spec} ({study_key}): run bundle {url}")
    return {**fit.metadata, "checkpoint": checkpoint, "bundle": url}


def fit_model(
    context: dg.AssetExecutionContext,
    experiment: str,
    model: str,
    config: TrainingConfig,
    split: MarketSplit,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
    out_root: Path,
    study: str = "table1",
    cutoff: int | None = None,
) -> FittedRun:
    """Train one model (reading the warehouse, never writing it): the best checkpoint goes
    to ``out_root/<run_id>/best.ckpt``; returns the run's rows, plot and metadata."""
    import torch

    from beta_pipeline.lib.neuralbeta import figures
    from beta_pipeline.lib.nn import NeuralBetaConfig, train

    torch.set_num_threads(max(config.threads, 1))
    plan = training.budget(config.budget, config.max_steps)
    run_id = training.new_run_id()
    out_dir = out_root / run_id
    dm, factors, desc, ends, window_len = _datamodule(
        experiment, config, split, artifacts, warehouse_db
    )
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
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
    )
    runs, history = training.run_tables(
        run_id, experiment, model, config.seed, plan, res, dm, ends, factors
    )
    runs = runs.assign(study=study, cutoff=cutoff)
    png = figures.fig5_history(history)
    meta = _metadata(res, run_id, dm, factors, ends, training.history_corr(history))
    meta["history"] = png_metadata(png, "validation history")
    return FittedRun(run_id, runs, history, res.checkpoint_path, png, meta)

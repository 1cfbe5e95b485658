"""Training entry point, prediction helpers and checkpoint loading."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

from beta_pipeline.lib.nn.config import Budget, NeuralBetaConfig, get_budget
from beta_pipeline.lib.nn.data import ArrayWindows, NeuralBetaDataModule, PanelWindows
from beta_pipeline.lib.nn.system import NeuralBetaSystem

_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


@dataclass
class TrainResult:
    """A trained model (best checkpoint restored) and how it got there."""

    system: NeuralBetaSystem
    checkpoint_path: str
    best_val_loss: float
    best_step: int
    history: list[dict[str, float]]
    steps: int
    seconds: float  # wall time of Trainer.fit
    cpu_seconds: float  # CPU time of this process during fit (all threads)
    config: dict[str, Any]
    budget: dict[str, Any]
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)


def quiet_lightning() -> None:
    """Silence Lightning's info logs and its single-process dataloader warnings."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*deterministic.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def make_trainer(
    budget: Budget,
    callbacks: list[Any] | None = None,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    progress: bool = False,
    max_steps: int | None = None,
    validate: bool = True,
) -> L.Trainer:
    """A Trainer for ``budget``: step-based validation, no logger, one device.

    Checkpoints are written only when ``callbacks`` holds a ``ModelCheckpoint``.
    """
    kwargs: dict[str, Any] = {}
    if budget.max_time_s is not None:
        kwargs["max_time"] = {"seconds": budget.max_time_s}
    on_cpu = accelerator == "cpu" or not torch.cuda.is_available()
    return L.Trainer(
        max_steps=max_steps or budget.max_steps,
        max_epochs=-1,
        val_check_interval=budget.val_every if validate else None,
        check_val_every_n_epoch=None if validate else 1,
        limit_val_batches=None if validate else 0,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks or []),
        callbacks=callbacks or [],
        accelerator=accelerator,
        devices=1,
        deterministic=True if on_cpu else "warn",
        use_distributed_sampler=False,
        gradient_clip_val=budget.grad_clip,
        default_root_dir=str(out_dir) if out_dir else None,
        **kwargs,
    )


def train(
    config: NeuralBetaConfig,
    datamodule: NeuralBetaDataModule,
    budget: str | Budget = "quick",
    seed: int = 0,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    progress: bool = False,
) -> TrainResult:
    """Train ``config`` on ``datamodule`` under ``budget``; restore the best checkpoint.

    Validation runs every ``budget.val_every`` updates (on the exponential moving average of
    the weights when ``budget.ema_decay`` is set); the checkpoint with the lowest
    ``val_loss`` is written to ``out_dir/best.ckpt`` (a fresh temporary directory when None)
    and its weights are loaded back into the returned system. Same seed, same data and same
    device give the same weights (``seed_everything``, seeded batch order, deterministic ops).
    """
    b = get_budget(budget)
    quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule.configure(b.batch_size, b.eval_batch_size, b.val_limit, seed)
    system = NeuralBetaSystem(
        config.to_dict(),
        datamodule.scaler.to_dict(),
        lr=b.lr,
        lr_schedule=b.lr_schedule,
        max_steps=b.max_steps,
        min_lr_ratio=b.min_lr_ratio,
        head_weight_decay=b.head_weight_decay,
        prior=datamodule.prior,
    )
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="neuralbeta_"))
    out.mkdir(parents=True, exist_ok=True)
    ckpt = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    callbacks: list[Any] = [ckpt]
    if b.ema_decay:
        # validation, checkpoints and the final weights use the EMA of the weights
        callbacks.append(EMAWeightAveraging(decay=b.ema_decay))
    trainer = make_trainer(b, callbacks, out, accelerator, progress)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.fit(system, datamodule=datamodule)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    best_path = ckpt.best_model_path
    history = list(system.history)
    if not best_path:
        raise RuntimeError("training ran no validation: raise max_steps or lower val_every")
    state = torch.load(best_path, map_location=system.device, weights_only=False)
    system.load_state_dict(state["state_dict"])
    system.history = history
    system.eval()
    best = min(history, key=lambda r: r["loss"])
    return TrainResult(
        system=system,
        checkpoint_path=str(best_path),
        best_val_loss=float(ckpt.best_model_score),
        best_step=int(best["step"]),
        history=history,
        steps=int(trainer.global_step),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        config=config.to_dict(),
        budget=b.to_dict(),
        seed=seed,
    )


@torch.no_grad()
def predict(
    system: NeuralBetaSystem,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Betas ``[n, d]`` (raw units) and NBI weights ``[n, h]`` (None for NB) for raw windows."""
    was_training = system.training
    system.eval()
    device = system.device
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    betas, weights = [], []
    for i in range(0, x_t.shape[0], batch_size):
        beta, w = system(x_t[i : i + batch_size].to(device), y_t[i : i + batch_size].to(device))
        betas.append(beta.cpu())
        if w is not None:
            weights.append(w.cpu())
    system.train(was_training)
    beta_np = torch.cat(betas).double().numpy()
    return beta_np, (torch.cat(weights).double().numpy() if weights else None)


def predict_dataset(
    system: NeuralBetaSystem,
    data: ArrayWindows | PanelWindows,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict` over every window of a dataset, in item order.

    For a market split, ``data.keys()`` gives the (target date, symbol) of each row.
    """
    betas, weights = [], []
    for i in range(0, len(data), batch_size):
        batch = data[torch.arange(i, min(i + batch_size, len(data)))]
        beta, w = predict(system, batch["x"], batch["y"], batch_size)
        betas.append(beta)
        if w is not None:
            weights.append(w)
    d = system.cfg.d
    beta_all = np.concatenate(betas) if betas else np.empty((0, d))
    return beta_all, (np.concatenate(weights) if weights else None)


def load_system(checkpoint_path: str | Path, map_location: str = "cpu") -> NeuralBetaSystem:
    """A :class:`NeuralBetaSystem` from a checkpoint written by :func:`train` (eval mode)."""
    system = NeuralBetaSystem.load_from_checkpoint(
        str(checkpoint_path), map_location=map_location, weights_only=False
    )
    return system.eval()


def load_and_predict(
    checkpoint_path: str | Path,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a trained checkpoint and estimate ``beta_{t+1}`` for each window.

    ``x [n, h, d]`` and ``y [n, h]`` are raw (unscaled) windows, oldest step first, ending at
    day t (never containing day t+1). Returns ``beta [n, d]`` in raw units (the scaler stored
    in the checkpoint's hparams is applied and undone) and, for NBI models, the per-step
    weights ``[n, h]`` (in the order of the window; None for NB). Runs on the CPU.
    """
    return predict(load_system(checkpoint_path), x, y, batch_size)

"""Training entry point, prediction helpers and checkpoint loading.

One process trains in the caller's process. Several processes (``devices * num_nodes > 1``,
or any ``ddp`` strategy) train in a child process tree: ``train`` writes the run to a private
temporary directory and runs ``python -m beta_pipeline.lib.nn.launch`` there, and Lightning's
``ddp`` launcher re-executes that module (never the caller's command line, which may be a
Dagster step or pytest) once per further local rank. See :mod:`beta_pipeline.lib.nn.launch`.
"""

from __future__ import annotations

import codecs
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from beta_pipeline.lib.nn.config import Budget, NeuralBetaConfig, get_budget
from beta_pipeline.lib.nn.data import ArrayWindows, NeuralBetaDataModule, PanelWindows
from beta_pipeline.lib.nn.system import NeuralBetaSystem

_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
LAUNCH_MODULE = "beta_pipeline.lib.nn.launch"


@dataclass
class TrainResult:
    """A trained model (best checkpoint restored) and how it got there.

    ``extra`` holds the process layout (``world_size``, ``num_nodes``, ``devices``,
    ``strategy``, ``per_process_batch``) and, for multi-process runs, ``launch_seconds`` (the
    whole child run, start-up included) and ``rank_cpu_seconds``.
    """

    system: NeuralBetaSystem
    checkpoint_path: str
    best_val_loss: float
    best_step: int
    history: list[dict[str, float]]
    steps: int
    seconds: float  # wall time of Trainer.fit (rank 0's under DDP)
    cpu_seconds: float  # CPU time during fit of this process (DDP: of all ranks on this node)
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
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
) -> L.Trainer:
    """A Trainer for ``budget``: step-based validation, no logger, one device by default.

    Checkpoints are written only when ``callbacks`` holds a ``ModelCheckpoint``. The data
    module shards batches itself (``use_distributed_sampler=False``).
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
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        deterministic=True if on_cpu else "warn",
        use_distributed_sampler=False,
        gradient_clip_val=budget.grad_clip,
        default_root_dir=str(out_dir) if out_dir else None,
        **kwargs,
    )


def _layout(trainer: L.Trainer, batch_size: int) -> dict[str, Any]:
    """How many processes trained, on what, and the batch each saw."""
    world = int(trainer.world_size)
    return {
        "world_size": world,
        "num_nodes": int(trainer.num_nodes),
        "devices": int(trainer.num_devices),
        "strategy": type(trainer.strategy).__name__,
        "accelerator": type(trainer.accelerator).__name__,
        "per_process_batch": batch_size // max(world, 1),
    }


class _RecordLayout(Callback):
    """Stores the process layout in every checkpoint (``checkpoint["distributed"]``)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["distributed"] = _layout(trainer, self.batch_size)


@dataclass
class _Fitted:
    """What one training process knows after ``Trainer.fit``."""

    system: NeuralBetaSystem
    best_path: str
    best_score: float
    steps: int
    seconds: float
    cpu_seconds: float
    layout: dict[str, Any]
    global_rank: int
    local_rank: int


def _new_system(
    config: NeuralBetaConfig, datamodule: NeuralBetaDataModule, b: Budget
) -> NeuralBetaSystem:
    return NeuralBetaSystem(
        config.to_dict(),
        datamodule.scaler.to_dict(),
        lr=b.lr,
        lr_schedule=b.lr_schedule,
        max_steps=b.max_steps,
        min_lr_ratio=b.min_lr_ratio,
        head_weight_decay=b.head_weight_decay,
        prior=datamodule.prior,
    )


def _out_dir(out_dir: str | Path | None) -> Path:
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="neuralbeta_"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def fit_process(
    config: NeuralBetaConfig,
    datamodule: NeuralBetaDataModule,
    b: Budget,
    seed: int,
    out_dir: str | Path | None,
    accelerator: str = "auto",
    progress: bool = False,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
) -> _Fitted:
    """``Trainer.fit`` in this process: the whole run, or one rank of a DDP run."""
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule.configure(b.batch_size, b.eval_batch_size, b.val_limit, seed)
    system = _new_system(config, datamodule, b)
    out = _out_dir(out_dir)
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
    callbacks.append(_RecordLayout(b.batch_size))
    trainer = make_trainer(
        b,
        callbacks,
        out,
        accelerator,
        progress,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
    )
    processes = trainer.num_devices * trainer.num_nodes
    if b.batch_size % processes:
        raise ValueError(f"batch size {b.batch_size} is not divisible by {processes} processes")
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.fit(system, datamodule=datamodule)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    if not ckpt.best_model_path:
        raise RuntimeError("training ran no validation: raise max_steps or lower val_every")
    return _Fitted(
        system=system,
        best_path=str(ckpt.best_model_path),
        best_score=float(ckpt.best_model_score),
        steps=int(trainer.global_step),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        layout=_layout(trainer, b.batch_size),
        global_rank=int(trainer.global_rank),
        local_rank=int(trainer.local_rank),
    )


def _restore(system: NeuralBetaSystem, best_path: str, history: list[dict[str, float]]) -> None:
    """Load the best checkpoint's weights into ``system`` (eval mode) with the full history."""
    state = torch.load(best_path, map_location=system.device, weights_only=False)
    system.load_state_dict(state["state_dict"])
    system.history = history
    system.eval()


def _child_process_tree(
    b: Budget, accelerator: str, devices: int | str, num_nodes: int, strategy: str
) -> int:
    """Local processes per node when training must run in a child process tree, else 0.

    0 for one process in the caller, and when an external launcher (torchrun, SLURM) already
    started this process as one rank. Lightning's ``ddp_spawn``/``ddp_fork`` are refused.
    """
    if devices in (1, "1") and num_nodes == 1 and strategy == "auto":
        return 0
    probe = make_trainer(
        b, accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy
    )
    launcher = probe.strategy.launcher
    env = getattr(probe.strategy, "cluster_environment", None)
    if launcher is None or (env is not None and env.creates_processes_externally):
        return 0
    if not isinstance(launcher, _SubprocessScriptLauncher):
        raise ValueError(
            f"strategy {strategy!r} is not supported: use 'ddp' (one child process tree, "
            "started with `python -m beta_pipeline.lib.nn.launch`)"
        )
    return int(probe.num_devices)


def _child_env(local_processes: int) -> dict[str, str]:
    """The caller's environment, with this package importable and the caller's torch threads
    shared among the local processes (``OMP_NUM_THREADS``, at least 1 each)."""
    env = os.environ.copy()
    env["OMP_NUM_THREADS"] = str(max(1, torch.get_num_threads() // max(local_processes, 1)))
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _run_child(cmd: list[str], env: dict[str, str]) -> None:
    """Run ``cmd``, forwarding its stderr (progress bars, warnings) to ours; on failure raise
    with the tail of that output. Interrupting the caller terminates the child (whose ranks
    exit with it: see :mod:`beta_pipeline.lib.nn.launch`)."""
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    tail = bytearray()

    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):
            tail.extend(chunk)
            del tail[:-10000]
            try:
                sys.stderr.write(decoder.decode(chunk))
                sys.stderr.flush()
            except (OSError, ValueError):  # our stderr closed: keep draining the pipe
                pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        reader.join(timeout=10)
    if rc != 0:
        text = bytes(tail).decode("utf-8", errors="replace")
        raise RuntimeError(f"multi-process training failed (exit code {rc}):\n{text}")


def _train_in_child(
    config: NeuralBetaConfig,
    datamodule: NeuralBetaDataModule,
    b: Budget,
    seed: int,
    out_dir: str | Path | None,
    accelerator: str,
    progress: bool,
    devices: int | str,
    num_nodes: int,
    strategy: str,
    local_processes: int,
) -> TrainResult:
    """Train in ``python -m beta_pipeline.lib.nn.launch`` and rebuild rank 0's result here."""
    processes = local_processes * num_nodes
    if b.batch_size % processes:
        raise ValueError(f"batch size {b.batch_size} is not divisible by {processes} processes")
    out = _out_dir(out_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neuralbeta_ddp_") as tmp:
        run_dir = Path(tmp)
        shipped = copy.copy(datamodule)  # shallow: the caller's module is left as it is
        shipped.trainer = None
        shipped.test_set = None
        spec = {
            "config": config.to_dict(),
            "datamodule": shipped,
            "budget": b,
            "seed": seed,
            "out_dir": str(out),
            "accelerator": accelerator,
            "progress": progress,
            "devices": devices,
            "num_nodes": num_nodes,
            "strategy": strategy,
        }
        torch.save(spec, run_dir / "spec.pt")
        cmd = [sys.executable, "-m", LAUNCH_MODULE, str(run_dir)]
        _run_child(cmd, _child_env(local_processes))
        info = json.loads((run_dir / "result.json").read_text())
        ranks = [json.loads(p.read_text()) for p in sorted(run_dir.glob("rank*.json"))]
    launch_seconds = time.perf_counter() - start
    if not Path(info["best_path"]).exists():
        raise RuntimeError(
            f"{info['best_path']} is missing here: with several nodes, out_dir must be on a "
            "filesystem they share"
        )
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule.configure(b.batch_size, b.eval_batch_size, b.val_limit, seed)
    system = _new_system(config, datamodule, b)
    history = [dict(h) for h in info["history"]]
    _restore(system, info["best_path"], history)
    extra = {
        **info["layout"],
        "launch_seconds": launch_seconds,
        "rank_cpu_seconds": [r["cpu_seconds"] for r in ranks],
    }
    return _result(
        system,
        info["best_path"],
        info["best_score"],
        history,
        info["steps"],
        info["seconds"],
        sum(r["cpu_seconds"] for r in ranks),
        config,
        b,
        seed,
        extra,
    )


def _result(
    system: NeuralBetaSystem,
    best_path: str,
    best_score: float,
    history: list[dict[str, float]],
    steps: int,
    seconds: float,
    cpu_seconds: float,
    config: NeuralBetaConfig,
    b: Budget,
    seed: int,
    extra: dict[str, Any],
) -> TrainResult:
    best = min(history, key=lambda r: r["loss"])
    return TrainResult(
        system=system,
        checkpoint_path=best_path,
        best_val_loss=float(best_score),
        best_step=int(best["step"]),
        history=history,
        steps=steps,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        config=config.to_dict(),
        budget=b.to_dict(),
        seed=seed,
        extra=extra,
    )


def train(
    config: NeuralBetaConfig,
    datamodule: NeuralBetaDataModule,
    budget: str | Budget = "quick",
    seed: int = 0,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    progress: bool = False,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
) -> TrainResult:
    """Train ``config`` on ``datamodule`` under ``budget``; restore the best checkpoint.

    Validation runs every ``budget.val_every`` updates (on the exponential moving average of
    the weights when ``budget.ema_decay`` is set); the checkpoint with the lowest
    ``val_loss`` is written to ``out_dir/best.ckpt`` (a fresh temporary directory when None)
    and its weights are loaded back into the returned system. Same seed, same data and same
    device give the same weights (``seed_everything``, seeded batch order, deterministic ops).

    ``devices``, ``num_nodes`` and ``strategy`` go to Lightning's Trainer. With more than one
    process (or ``strategy="ddp"``) training runs in a child process tree (gloo on CPUs, NCCL
    on GPUs) and this returns rank 0's result. Every process draws the same global batches of
    ``budget.batch_size`` and trains on its ``batch_size / world size`` slice (the batch size
    must be divisible by the world size), so an update is the one-process update up to
    floating-point summation order; validation errors are summed over the processes.
    """
    b = get_budget(budget)
    quiet_lightning()
    local = _child_process_tree(b, accelerator, devices, num_nodes, strategy)
    if local:
        return _train_in_child(
            config,
            datamodule,
            b,
            seed,
            out_dir,
            accelerator,
            progress,
            devices,
            num_nodes,
            strategy,
            local,
        )
    fit = fit_process(
        config, datamodule, b, seed, out_dir, accelerator, progress, devices, num_nodes, strategy
    )
    history = list(fit.system.history)
    _restore(fit.system, fit.best_path, history)
    return _result(
        fit.system,
        fit.best_path,
        fit.best_score,
        history,
        fit.steps,
        fit.seconds,
        fit.cpu_seconds,
        config,
        b,
        seed,
        fit.layout,
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

"""Training throughput: the Lightning loop against a plain PyTorch loop (same model, batches)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from beta_pipeline.lib.nn.config import Budget, NeuralBetaConfig, get_budget
from beta_pipeline.lib.nn.data import NeuralBetaDataModule
from beta_pipeline.lib.nn.system import NeuralBetaSystem
from beta_pipeline.lib.nn.train import make_trainer, quiet_lightning


class _StepTimer(Callback):
    """Wall time from the start of update ``warmup`` to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.end = time.perf_counter()


def _system(config: NeuralBetaConfig, dm: NeuralBetaDataModule, b: Budget, seed: int):
    L.seed_everything(seed, verbose=False)
    return NeuralBetaSystem(config.to_dict(), dm.scaler.to_dict(), lr=b.lr, max_steps=b.max_steps)


def lightning_rate(
    config: NeuralBetaConfig,
    dm: NeuralBetaDataModule,
    b: Budget,
    steps: int,
    warmup: int,
    seed: int = 0,
    accelerator: str = "auto",
) -> float:
    """Sequences per second of ``Trainer.fit`` (no validation, no checkpoints)."""
    system = _system(config, dm, b, seed)
    timer = _StepTimer(warmup)
    trainer = make_trainer(b, [timer], None, accelerator, max_steps=warmup + steps, validate=False)
    trainer.fit(system, datamodule=dm)
    assert timer.start is not None and timer.end is not None
    return steps * dm.batch_size / (timer.end - timer.start)


def torch_rate(
    config: NeuralBetaConfig,
    dm: NeuralBetaDataModule,
    b: Budget,
    steps: int,
    warmup: int,
    seed: int = 0,
    device: str | None = None,
) -> float:
    """Sequences per second of a hand-written loop: batch, forward, loss, backward, Adam step."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    system = _system(config, dm, b, seed).to(dev)
    system.train()
    opt = torch.optim.Adam(system.parameters(), lr=b.lr)
    done, start = 0, 0.0
    while done < warmup + steps:
        for batch in dm.train_dataloader():
            if done == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
            err, _ = system.hedge_errors(batch)
            loss = (err / system.y_scale).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * dm.batch_size / (time.perf_counter() - start)


def compare_throughput(
    config: NeuralBetaConfig,
    dm: NeuralBetaDataModule,
    budget: str | Budget = "quick",
    steps: int = 200,
    warmup: int = 20,
    repeats: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Best-of-``repeats`` sequences/s of both loops (interleaved) and Lightning's overhead %."""
    b = get_budget(budget)
    quiet_lightning()
    dm.configure(b.batch_size, b.eval_batch_size, b.val_limit, seed)
    lit, raw = [], []
    for _ in range(repeats):
        raw.append(torch_rate(config, dm, b, steps, warmup, seed))
        lit.append(lightning_rate(config, dm, b, steps, warmup, seed))
    best_lit, best_raw = max(lit), max(raw)
    return {
        "lightning_seq_per_s": best_lit,
        "torch_seq_per_s": best_raw,
        "overhead_pct": 100.0 * (best_raw / best_lit - 1.0),
        "batch_size": float(dm.batch_size),
        "steps": float(steps),
    }

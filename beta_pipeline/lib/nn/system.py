"""``NeuralBetaSystem``: the Lightning module that trains and evaluates a NeuralBeta model."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from beta_pipeline.lib.nn.config import NeuralBetaConfig
from beta_pipeline.lib.nn.data import Batch
from beta_pipeline.lib.nn.model import NeuralBeta
from beta_pipeline.lib.nn.scaling import Scaler


class NeuralBetaSystem(L.LightningModule):
    """NeuralBeta + scaling + loss + optimiser.

    ``forward(x, y)`` takes raw windows and returns raw-unit ``(beta [B, d], weights | None)``.
    Loss: scaled MSE of ``y_{t+1} - <beta_{t+1}, x_{t+1}>``. Logged: ``train_loss`` and
    ``train_rmse_y`` (every ``log_every`` updates), ``val_loss``, ``val_rmse_y`` and, when
    batches carry ``beta_next``, ``val_rmse_beta``. Every validation run appends a row to
    ``history`` (for Fig. 5); the history is stored in checkpoints.
    """

    def __init__(
        self,
        config: dict[str, Any],
        scaler: dict[str, Any],
        lr: float = 1e-4,
        lr_schedule: str = "constant",
        max_steps: int = 100_000,
        min_lr_ratio: float = 0.05,
        head_weight_decay: float = 0.0,
        prior: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = NeuralBetaConfig.from_dict(config)
        self.model = NeuralBeta(self.cfg)
        sc = Scaler.from_dict(scaler)
        self.register_buffer("y_scale", torch.tensor(sc.y_scale, dtype=torch.float32))
        self.register_buffer("x_scale", torch.tensor(sc.x_scale, dtype=torch.float32))
        if prior is not None:  # raw-unit window OLS moments -> scaled units
            ratio = self.x_scale / self.y_scale
            self.model.head.init_prior(
                torch.tensor(prior["beta_mean"]) * ratio,
                torch.tensor(prior["beta_var"]) * ratio**2,
                float(prior["resid_var"]) / float(self.y_scale) ** 2,
            )
        self.history: list[dict[str, float]] = []
        self.log_every = 50
        self._acc: dict[str, float] = {}

    # ------------------------------------------------------------------------- inference
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        beta_s, w = self.model(x / self.x_scale, y / self.y_scale)
        return beta_s * (self.y_scale / self.x_scale), w

    def hedge_errors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw-unit hedging errors ``[B]`` and betas ``[B, d]`` of a batch."""
        beta, _ = self(batch["x"], batch["y"])
        err = batch["y_next"] - (beta * batch["x_next"]).sum(-1)
        return err, beta

    # -------------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        err, _ = self.hedge_errors(batch)
        loss = (err / self.y_scale).pow(2).mean()
        if batch_idx % self.log_every == 0:  # self.log costs ~0.1 ms: not on every update
            b = err.shape[0]
            self.log("train_loss", loss.detach(), batch_size=b)
            self.log("train_rmse_y", loss.detach().sqrt() * self.y_scale, batch_size=b)
        return loss

    def _eval_start(self) -> None:
        self._acc = {"sse": 0.0, "n": 0.0, "bse": 0.0, "bn": 0.0}

    def _eval_step(self, batch: Batch) -> None:
        err, beta = self.hedge_errors(batch)
        self._acc["sse"] += float(err.double().pow(2).sum())
        self._acc["n"] += err.shape[0]
        if "beta_next" in batch:
            self._acc["bse"] += float((beta - batch["beta_next"]).double().pow(2).sum())
            self._acc["bn"] += beta.numel()

    def _eval_metrics(self) -> dict[str, float]:
        a = self._acc
        mse = a["sse"] / max(a["n"], 1.0)
        out = {"loss": mse / float(self.y_scale) ** 2, "rmse_y": math.sqrt(mse)}
        if a["bn"]:
            out["rmse_beta"] = math.sqrt(a["bse"] / a["bn"])
        return out

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def _sum_over_processes(self) -> dict[str, Any]:
        """Sum the evaluation sums over processes (under DDP each evaluated a shard), so every
        rank computes the whole split's metrics; returns the ``self.log`` arguments."""
        if self.trainer.world_size <= 1:
            return {}
        keys = sorted(self._acc)
        sums = torch.tensor([self._acc[k] for k in keys], dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self._acc = dict(zip(keys, sums.tolist(), strict=True))
        # already global and identical on every rank: "max" over ranks keeps them exact
        return {"sync_dist": True, "reduce_fx": "max"}

    def on_validation_epoch_end(self) -> None:
        sync = self._sum_over_processes()
        metrics = self._eval_metrics()
        for k, v in metrics.items():
            self.log(f"val_{k}", v, **sync)
        if not self.trainer.sanity_checking:
            self.history.append({"step": int(self.global_step), **metrics})

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        sync = self._sum_over_processes()
        for k, v in self._eval_metrics().items():
            self.log(f"test_{k}", v, **sync)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        # Adam; optionally decoupled weight decay (AdamW) on the NBI weight map only, which
        # shrinks the data-dependent weight modulation towards uniform weights (ridge OLS).
        head = self.model.head
        decayed = (
            [head.linear.weight, head.position_bias]
            if hp.get("head_weight_decay", 0.0) and hasattr(head, "position_bias")
            else []
        )
        ids = {id(p) for p in decayed}
        groups = [
            {"params": [p for p in self.parameters() if id(p) not in ids], "weight_decay": 0.0}
        ]
        if decayed:
            groups.append({"params": decayed, "weight_decay": hp.head_weight_decay})
        opt = torch.optim.AdamW(groups, lr=hp.lr)
        if hp.lr_schedule == "constant":
            return opt
        if hp.lr_schedule != "cosine":
            raise ValueError(f"unknown lr_schedule {hp.lr_schedule!r}")
        total, floor = max(int(hp.max_steps), 1), float(hp.min_lr_ratio)

        def factor(step: int) -> float:
            frac = min(step / total, 1.0)
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("history", []))

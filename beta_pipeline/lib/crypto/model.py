"""The neural beta of the crypto study: an MLP reads a coin's last ``window`` months and
outputs its betas on one or several markets for the next month.

Sample (coin i, formation month t): the inputs are, for each month s = t-window+1 .. t, the
coin's log return, the markets' log returns and any extra inputs (e.g. Fama-French
factors); the output is ``beta_{i,t+1}`` in R^d (d markets); the loss is the squared
next-month hedging error ``y_{i,t+1} - <beta_{i,t+1}, x_{t+1}>``. One network is trained
on all coins together (no coin identifier). A beta for month t+1 uses data up to month t.

Split by target month (t+1): the first ``train`` share of the target months trains, the
next ``val`` share validates (early stopping and model choice), the rest tests. Samples
with a complete window but no next month yet are ``live`` (the betas for the coming month).

Scaling (fitted on the training samples only): every input column is standardised; the
network's raw outputs ``o_j`` are mapped to betas ``o_j * sd(y) / sd(x_j)``, so its outputs
live on the scale of correlations whatever the market's volatility.

Training: the whole grid (hidden sizes x learning rates x activations x replicate seeds)
of one market configuration is ONE batched model (block-diagonal weights, masked hidden
units, per-model learning rates in a vectorised Adam), trained on shared mini-batches
with plain torch on one CPU thread. Every model keeps the betas of its epoch with the
lowest validation loss (early stopping by checkpoint); a grid point's betas are the mean
over its replicate seeds. Same seed, same data: same numbers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from beta_pipeline.lib.crypto.grid import (  # noqa: F401 (re-exported)
    ACTIVATIONS,
    HIDDEN,
    LEARNING_RATES,
    MARKET_CONFIGS,
    SPLITS,
    GridPoint,
    Samples,
    TrainOptions,
    build_samples,
    config_markets,
    make_grid,
    split_targets,
)

_ACT_FN = (lambda z: z, torch.sigmoid, torch.tanh, torch.relu)  # in ACTIVATIONS order


# --- batched grid model -----------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (tiny models: one is fastest)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class GridMLP(torch.nn.Module):
    """G independent one-hidden-layer MLPs evaluated at once: ``[S, F] -> [G, S, d]``.

    Model g has ``hidden[g]`` units (the others are masked to zero) and activation
    ``act[g]``; its initial weights follow ``torch.nn.Linear``'s default (uniform in
    +-1/sqrt(fan_in)) drawn from its own seed, so a model does not depend on which others
    share the batch.
    """

    def __init__(
        self, n_in: int, n_out: int, hidden: Sequence[int], act: Sequence[int],
        seeds: Sequence[int],
    ) -> None:
        super().__init__()
        g_n, h_max = len(hidden), max(hidden)
        w1 = torch.zeros(g_n, n_in, h_max, dtype=torch.float64)
        b1 = torch.zeros(g_n, h_max, dtype=torch.float64)
        w2 = torch.zeros(g_n, h_max, n_out, dtype=torch.float64)
        b2 = torch.zeros(g_n, n_out, dtype=torch.float64)
        mask = torch.zeros(g_n, h_max, dtype=torch.float64)
        for g, (h, seed) in enumerate(zip(hidden, seeds, strict=True)):
            gen = torch.Generator().manual_seed(int(seed))
            k1, k2 = 1.0 / math.sqrt(n_in), 1.0 / math.sqrt(h)

            def uni(shape: tuple[int, ...], k: float, gen: torch.Generator = gen) -> torch.Tensor:
                return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * k

            w1[g, :, :h] = uni((n_in, h), k1)
            b1[g, :h] = uni((h,), k1)
            w2[g, :h, :] = uni((h, n_out), k2)
            b2[g] = uni((n_out,), k2)
            mask[g, :h] = 1.0
        self.w1 = torch.nn.Parameter(w1)
        self.b1 = torch.nn.Parameter(b1)
        self.w2 = torch.nn.Parameter(w2)
        self.b2 = torch.nn.Parameter(b2)
        self.register_buffer("mask", mask)
        act = list(act)
        if act != sorted(act):
            raise ValueError("models must be ordered by activation (contiguous groups)")
        #: (activation index, first model, end) of each contiguous group
        self.groups = [
            (k, act.index(k), len(act) - act[::-1].index(k)) for k in sorted(set(act))
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("sf,gfh->gsh", x, self.w1) + self.b1[:, None, :]
        a = torch.cat([_ACT_FN[k](z[lo:hi]) for k, lo, hi in self.groups])
        a = a * self.mask[:, None, :]
        return torch.einsum("gsh,gho->gso", a, self.w2) + self.b2[:, None, :]


class VectorAdam:
    """Adam with one learning rate per model (the leading dimension of every parameter)."""

    def __init__(
        self, params: Sequence[torch.nn.Parameter], lr: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
    ) -> None:
        self.params = list(params)
        self.lr = lr
        self.b1, self.b2 = betas
        self.eps = eps
        self.wd = weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if self.wd:
                g = g + self.wd * p
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            lr = self.lr.view(-1, *([1] * (p.dim() - 1)))
            p.sub_(lr * (m / c1) / ((v / c2).sqrt() + self.eps))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


@dataclass
class GridFit:
    """Result of one market configuration's grid."""

    config: str
    samples: Samples
    grid: list[GridPoint]
    betas: np.ndarray  #: (P, S, d) replicate-mean betas at each model's best epoch
    history: np.ndarray  #: (P, R, E+1, 2) train / val RMSE per epoch, per replicate
    best_epoch: np.ndarray  #: (P, R)
    scale: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def rmse(self, split: str, p: int | None = None) -> np.ndarray:
        """Hedging RMSE of each grid point's (replicate-mean) betas on ``split``."""
        s = self.samples
        m = s.mask(split)
        betas = self.betas if p is None else self.betas[p : p + 1]
        err = s.y_next[m][None, :] - (betas[:, m, :] * s.x_next[m][None, :, :]).sum(-1)
        return np.sqrt(np.mean(err**2, axis=1)) if m.any() else np.full(len(betas), np.nan)

    def table(self) -> pd.DataFrame:
        """One row per grid point: settings, train / val RMSE and best epoch."""
        train, val = self.rmse("train"), self.rmse("val")
        return pd.DataFrame(
            {
                "config": self.config,
                "lookback": self.samples.window,
                "hidden": [g.hidden for g in self.grid],
                "lr": [g.lr for g in self.grid],
                "activation": [g.activation for g in self.grid],
                "train_rmse": train,
                "val_rmse": val,
                "best_epoch": np.median(self.best_epoch, axis=1),
            }
        )

    @property
    def best(self) -> int:
        """Index of the grid point with the lowest validation RMSE (ties: first)."""
        val = self.rmse("val")
        return int(np.nanargmin(val))


def _init_seed(seed: int, replicate: int, hidden: int) -> int:
    """A model's initial weights depend on (seed, replicate, hidden) only: grid points
    with the same hidden size start from the same weights, whatever lr and activation."""
    return (seed * 1_000_003 + replicate * 10_007 + hidden * 101) % (2**31 - 1)


def fit_grid(
    samples: Samples,
    grid: Sequence[GridPoint],
    options: TrainOptions | None = None,
    config: str = "",
) -> GridFit:
    """Train every grid point (x replicates) of one configuration as one batched model."""
    opt = options or TrainOptions()
    t0 = time.perf_counter()
    grid = list(grid)
    s = samples
    train_m, val_m = s.mask("train"), s.mask("val")
    if not train_m.any() or not val_m.any():
        raise ValueError(
            f"{config}: {int(train_m.sum())} training and {int(val_m.sum())} validation "
            "samples; need at least one of each (more months of data?)"
        )
    mu = s.features[train_m].mean(axis=0)
    sd = s.features[train_m].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    sd_y = float(np.std(s.y_next[train_m]))
    sd_x = np.std(s.x_next[train_m], axis=0)
    sd_x = np.where(sd_x > 0, sd_x, 1.0)
    out_scale = sd_y / sd_x  # (d,)
    reps = opt.replicates
    models = [(g, r) for g in grid for r in range(reps)]  # grid-major, replicate-minor
    act_all = np.array([ACTIVATIONS.index(g.activation) for g, _ in models])
    order = np.argsort(act_all, kind="stable")  # the batched model groups by activation
    hidden = [models[i][0].hidden for i in order]
    lrs = [models[i][0].lr for i in order]
    seeds = [_init_seed(opt.seed, models[i][1], models[i][0].hidden) for i in order]
    act = act_all[order].tolist()
    n_models = len(hidden)
    with torch_threads(1):
        torch.manual_seed(opt.seed)
        feats = torch.as_tensor((s.features - mu) / sd)
        y = torch.as_tensor(np.nan_to_num(s.y_next))
        x = torch.as_tensor(np.nan_to_num(s.x_next))
        scale = torch.as_tensor(out_scale)
        train_idx = np.flatnonzero(train_m)
        val_t = torch.as_tensor(val_m)
        train_t = torch.as_tensor(train_m)
        model = GridMLP(feats.shape[1], len(s.markets), hidden, act, seeds)
        adam = VectorAdam(
            list(model.parameters()), torch.as_tensor(lrs, dtype=torch.float64),
            weight_decay=opt.weight_decay,
        )
        rng = np.random.default_rng(opt.seed)
        history = np.zeros((n_models, opt.epochs + 1, 2))
        best_val = torch.full((n_models,), float("inf"), dtype=torch.float64)
        best_epoch = np.zeros(n_models, dtype=int)
        best_beta = torch.zeros(n_models, len(y), len(s.markets), dtype=torch.float64)
        for epoch in range(opt.epochs + 1):
            with torch.no_grad():
                beta = model(feats) * scale
                err2 = (y - (beta * x).sum(-1)) ** 2  # (G, S)
                tr = err2[:, train_t].mean(1)
                va = err2[:, val_t].mean(1)
                history[:, epoch, 0] = tr.sqrt().numpy()
                history[:, epoch, 1] = va.sqrt().numpy()
                if epoch >= 1:  # checkpoints from epoch 1: never the untrained network
                    better = va < best_val
                    best_val = torch.where(better, va, best_val)
                    best_beta[better] = beta[better]
                    best_epoch[better.numpy()] = epoch
            if epoch == opt.epochs:
                break
            shuffled = rng.permutation(train_idx)
            for i in range(0, len(shuffled), opt.batch_size):
                idx = torch.as_tensor(shuffled[i : i + opt.batch_size])
                beta_b = model(feats[idx]) * scale
                err = (y[idx] - (beta_b * x[idx]).sum(-1)) / sd_y
                loss = (err**2).mean(1).sum()  # independent models: sum of their losses
                adam.zero_grad()
                loss.backward()
                adam.step()
    p_n = len(grid)
    inv = np.argsort(order)  # back to grid order
    history, best_epoch = history[inv], best_epoch[inv]
    best_beta = best_beta[torch.as_tensor(inv)]
    betas = best_beta.numpy().reshape(p_n, reps, len(y), len(s.markets)).mean(axis=1)
    return GridFit(
        config=config,
        samples=s,
        grid=grid,
        betas=betas,
        history=history.reshape(p_n, reps, opt.epochs + 1, 2),
        best_epoch=best_epoch.reshape(p_n, reps),
        scale={"sd_y": sd_y, "sd_x": sd_x.tolist()},
        seconds=time.perf_counter() - t0,
    )


def betas_frame(fit: GridFit, p: int, method: str = "mlp") -> pd.DataFrame:
    """Long betas of grid point ``p``: month (hedged), data_end, coin, config, market, ..."""
    s = fit.samples
    parts = []
    for j, market in enumerate(s.markets):
        parts.append(
            pd.DataFrame(
                {
                    "month": s.target,
                    "data_end": s.formed,
                    "coin": s.coin,
                    "config": fit.config,
                    "market": market,
                    "method": method,
                    "beta": fit.betas[p, :, j],
                    "split": s.split,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def learning_curve(fit: GridFit, p: int) -> pd.DataFrame:
    """Train / validation RMSE per epoch of grid point ``p`` (mean over replicates)."""
    hist = fit.history[p].mean(axis=0)
    return pd.DataFrame(
        {
            "config": fit.config,
            "epoch": np.arange(hist.shape[0]),
            "train_rmse": hist[:, 0],
            "val_rmse": hist[:, 1],
        }
    )


def best_row(fit: GridFit) -> dict[str, object]:
    """The chosen configuration with its train / val / test RMSE and split bounds."""
    p = fit.best
    g = fit.grid[p]
    s = fit.samples
    return {
        "config": fit.config,
        "lookback": s.window,
        "hidden": g.hidden,
        "lr": g.lr,
        "activation": g.activation,
        "train_rmse": float(fit.rmse("train", p)[0]),
        "val_rmse": float(fit.rmse("val", p)[0]),
        "test_rmse": float(fit.rmse("test", p)[0]),
        "best_epoch": float(np.median(fit.best_epoch[p])),
        "n_train": int(s.mask("train").sum()),
        "n_val": int(s.mask("val").sum()),
        "n_test": int(s.mask("test").sum()),
        **{k: v for k, v in s.bounds.items() if not k.startswith("live")},
        "seconds": fit.seconds,
    }

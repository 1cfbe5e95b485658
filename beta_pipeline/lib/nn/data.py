"""Window datasets and the Lightning data module of NeuralBeta.

A batch is a dict of float32 tensors: ``x [B, h, d]`` and ``y [B, h]`` (the window, oldest
first), ``x_next [B, d]`` and ``y_next [B]`` (the target step) and, on synthetic data,
``beta_next [B, d]``. Datasets are indexed with a whole batch of indices at once (one gather
per batch instead of B item fetches and a collate).

Market panels: for a target day ``t+1`` the window holds rows ``t-h+1..t`` only, so the inputs
never include the target day's data. Splits are by target date. Missing data: a window is
skipped when any of its inputs or its target (``y`` of that stock or any factor) is missing;
no imputation and no masking (the paper keeps only stocks with complete histories).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from beta_pipeline.lib.neuralbeta.synthetic import SPLIT_FRACTIONS, SyntheticData, split_slices
from beta_pipeline.lib.nn.scaling import Scaler

Batch = dict[str, torch.Tensor]
# Paper: train 2010-17 / val 2018-19 / test 2020-23, i.e. 8/14, 2/14, 4/14 of the period.
MARKET_SPLIT_FRACTIONS: tuple[float, float, float] = (8 / 14, 2 / 14, 4 / 14)


class ArrayWindows(Dataset):
    """Materialised windows: ``x [n, h+1, d]``, ``y [n, h+1]`` (step h = target)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, beta: np.ndarray | None = None) -> None:
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.float32))
        self.beta = None if beta is None else torch.as_tensor(np.asarray(beta, np.float32))
        self.h = self.x.shape[1] - 1

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, idx: Sequence[int] | torch.Tensor) -> Batch:
        idx = torch.as_tensor(idx, dtype=torch.long)
        x, y, h = self.x[idx], self.y[idx], self.h
        out = {"x": x[:, :h], "y": y[:, :h], "x_next": x[:, h], "y_next": y[:, h]}
        if self.beta is not None:
            out["beta_next"] = self.beta[idx, h]
        return out

    def fit_scaler(self) -> Scaler:
        return Scaler.fit(self.y[:, : self.h].numpy(), self.x[:, : self.h].numpy())


class PanelWindows(Dataset):
    """Windows cut on the fly from a panel ``Y [T, N]``, ``X [T, d]``.

    Item k is the window of stock ``stock[k]`` whose last input row is ``last[k]``; its target
    is row ``last[k] + 1``. ``keys()`` gives the target date and symbol of every item.
    """

    def __init__(
        self,
        y: np.ndarray,
        x: np.ndarray,
        last: np.ndarray,
        stock: np.ndarray,
        h: int,
        dates: pd.DatetimeIndex,
        symbols: Sequence[str],
    ) -> None:
        self.Y = torch.as_tensor(np.asarray(y, dtype=np.float32))
        self.X = torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.last = torch.as_tensor(np.asarray(last, dtype=np.int64))
        self.stock = torch.as_tensor(np.asarray(stock, dtype=np.int64))
        self.h = h
        self.dates = dates
        self.symbols = list(symbols)
        self._offsets = torch.arange(-h + 1, 1)

    def __len__(self) -> int:
        return int(self.last.shape[0])

    def __getitem__(self, idx: Sequence[int] | torch.Tensor) -> Batch:
        idx = torch.as_tensor(idx, dtype=torch.long)
        t, i = self.last[idx], self.stock[idx]
        rows = t[:, None] + self._offsets[None, :]
        return {
            "x": self.X[rows],
            "y": self.Y[rows, i[:, None]],
            "x_next": self.X[t + 1],
            "y_next": self.Y[t + 1, i],
        }

    def keys(self) -> pd.DataFrame:
        """``date`` (the target day t+1) and ``symbol`` of every window, in item order."""
        return pd.DataFrame(
            {
                "date": self.dates[self.last.numpy() + 1],
                "symbol": np.asarray(self.symbols, dtype=object)[self.stock.numpy()],
            }
        )

    def fit_scaler(self) -> Scaler:
        """RMS over the panel rows used as inputs by these windows."""
        t_max = int(self.last.max()) + 1 if len(self) else self.h
        t_min = max(int(self.last.min()) - self.h + 1, 0) if len(self) else 0
        return Scaler.fit(self.Y[t_min:t_max].numpy(), self.X[t_min:t_max].numpy())


def window_ols_moments(
    data: ArrayWindows | PanelWindows, max_windows: int = 20_000
) -> dict[str, list[float] | float]:
    """Empirical-Bayes moments of a window set (raw units), used to initialise the NBI prior.

    OLS (no intercept) on up to ``max_windows`` evenly spaced windows: the mean and variance
    of the betas per factor and the mean residual variance.
    """
    n = len(data)
    idx = torch.linspace(0, n - 1, min(n, max_windows)).round().long().unique()
    batch = data[idx]
    x, y = batch["x"].double(), batch["y"].double()
    d = x.shape[-1]
    xtx = x.transpose(1, 2) @ x + 1e-8 * torch.eye(d, dtype=x.dtype)
    beta = torch.linalg.solve(xtx, (x * y.unsqueeze(-1)).sum(1))
    resid = y - (x * beta.unsqueeze(1)).sum(-1)
    dof = max(x.shape[1] - d, 1)
    return {
        "beta_mean": beta.mean(0).tolist(),
        "beta_var": beta.var(0).tolist(),
        "resid_var": float((resid.pow(2).sum(1) / dof).mean()),
    }


def _wide(frame: pd.DataFrame, name_col: str, value_col: str | None) -> pd.DataFrame:
    """Long ``(date, name, value)`` to wide (dates x names); wide frames pass through."""
    if "date" not in frame.columns or name_col not in frame.columns:
        out = frame.copy()
        out.index = pd.DatetimeIndex(out.index)
        return out.sort_index()
    if value_col is None:
        rest = [c for c in frame.columns if c not in ("date", name_col)]
        if len(rest) != 1:
            raise ValueError(f"long frame needs value_col; candidates: {rest}")
        value_col = rest[0]
    out = frame.pivot(index="date", columns=name_col, values=value_col)
    out.index = pd.DatetimeIndex(out.index)
    return out.sort_index()


def market_windows(
    y: pd.DataFrame,
    x: pd.DataFrame,
    window: int = 64,
    train_end: str | pd.Timestamp | None = None,
    val_end: str | pd.Timestamp | None = None,
    y_value: str | None = None,
    x_value: str | None = None,
) -> dict[str, PanelWindows]:
    """Train/val/test windows from a stock panel ``y`` and factor panel ``x``.

    ``y``: wide (DatetimeIndex x symbols) or long with columns ``date, symbol, <value>``;
    ``x``: wide (DatetimeIndex x factors) or long ``date, series, <value>``. Only dates present
    in ``x`` are used (in order). A window is assigned to a split by its target date:
    train ``<= train_end`` < val ``<= val_end`` < test. Defaults split the target dates 8/2/4
    (the paper's 2010-17 / 2018-19 / 2020-23).
    """
    yw = _wide(y, "symbol", y_value)
    xw = _wide(x, "series", x_value)
    dates = xw.index
    yw = yw.reindex(dates)
    ya = yw.to_numpy(dtype=float)
    xa = xw.to_numpy(dtype=float)
    n_t, n_s = ya.shape
    h = window
    if n_t <= h:
        raise ValueError(f"panel has {n_t} dates, needs more than the window {h}")
    # bad[t, i]: stock i or a factor missing on row t. A window with last input row t is valid
    # iff rows t-h+1 .. t+1 are all good (inputs plus target).
    bad = ~np.isfinite(ya) | ~np.isfinite(xa).all(axis=1, keepdims=True)
    csum = np.vstack([np.zeros((1, n_s)), np.cumsum(bad, axis=0)])
    last = np.arange(h - 1, n_t - 1)
    n_bad = csum[last + 2] - csum[last - h + 1]
    ok_t, ok_i = np.nonzero(n_bad == 0)
    last_ok = last[ok_t]
    target_dates = dates[last_ok + 1]
    tr_end, va_end = _split_dates(dates[h:], train_end, val_end)
    parts = {
        "train": target_dates <= tr_end,
        "val": (target_dates > tr_end) & (target_dates <= va_end),
        "test": target_dates > va_end,
    }
    y32, x32 = ya.astype(np.float32), xa.astype(np.float32)  # shared by the three splits
    return {
        k: PanelWindows(y32, x32, last_ok[m], ok_i[m], h, dates, list(yw.columns))
        for k, m in parts.items()
    }


def _split_dates(
    target_dates: pd.DatetimeIndex,
    train_end: str | pd.Timestamp | None,
    val_end: str | pd.Timestamp | None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Explicit split dates, or the 8/2/4 proportional defaults over the target dates."""
    n = len(target_dates)
    f_train, f_val, _ = MARKET_SPLIT_FRACTIONS
    tr = (
        pd.Timestamp(train_end)
        if train_end is not None
        else target_dates[max(int(round(f_train * n)) - 1, 0)]
    )
    va = (
        pd.Timestamp(val_end)
        if val_end is not None
        else target_dates[min(max(int(round((f_train + f_val) * n)) - 1, 0), n - 1)]
    )
    if va < tr:
        raise ValueError(f"val_end {va} precedes train_end {tr}")
    return tr, va


class BatchShard:
    """Slice ``rank`` of ``world`` equal slices of every batch of a batch sampler (DDP)."""

    def __init__(self, batches: BatchSampler, rank: int, world: int) -> None:
        if batches.batch_size % world:
            raise ValueError(
                f"batch size {batches.batch_size} is not divisible by the {world} processes"
            )
        self.batches, self.rank, self.size = batches, rank, batches.batch_size // world

    def __iter__(self) -> Iterator[list[int]]:
        lo, hi = self.rank * self.size, (self.rank + 1) * self.size
        for batch in self.batches:
            yield batch[lo:hi]

    def __len__(self) -> int:
        return len(self.batches)


class NeuralBetaDataModule(L.LightningDataModule):
    """Train/val/test window sets, batch sampling and the input scaler (fitted on train)."""

    def __init__(
        self,
        train: ArrayWindows | PanelWindows,
        val: ArrayWindows | PanelWindows,
        test: ArrayWindows | PanelWindows | None = None,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        val_limit: int | None = None,
        seed: int = 0,
        scaler: Scaler | None = None,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set, self.test_set = train, val, test
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_limit = val_limit
        self.seed = seed
        self.scaler = scaler if scaler is not None else train.fit_scaler()
        self.prior = window_ols_moments(train)

    @classmethod
    def from_synthetic(
        cls,
        data: SyntheticData,
        fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
        **kwargs: object,
    ) -> NeuralBetaDataModule:
        """70/20/10 (default) split of a synthetic scenario; true betas go into the batches."""
        sl = split_slices(data.n, fractions)
        sets = [ArrayWindows(data.x[s], data.y[s], data.beta[s]) for s in sl.values()]
        return cls(*sets, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_market(
        cls,
        y: pd.DataFrame,
        x: pd.DataFrame,
        window: int = 64,
        train_end: str | pd.Timestamp | None = None,
        val_end: str | pd.Timestamp | None = None,
        **kwargs: object,
    ) -> NeuralBetaDataModule:
        """Joint windows over all stocks of a market panel (see :func:`market_windows`)."""
        sets = market_windows(y, x, window, train_end, val_end)
        return cls(sets["train"], sets["val"], sets["test"], **kwargs)  # type: ignore[arg-type]

    def configure(
        self,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        val_limit: int | None = None,
        seed: int | None = None,
    ) -> None:
        """Override batch sizes, validation subset and sampling seed (used by ``train``)."""
        if batch_size is not None:
            self.batch_size = batch_size
        if eval_batch_size is not None:
            self.eval_batch_size = eval_batch_size
        self.val_limit = val_limit
        if seed is not None:
            self.seed = seed

    def _shard(self) -> tuple[int, int]:
        """``(rank, world size)`` of this process: ``(0, 1)`` outside a multi-process Trainer."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        """Seeded random batches of ``batch_size``. With ``W`` processes (DDP) every process
        draws the same global batches and keeps its ``batch_size / W`` slice, so the averaged
        gradient is the one-process gradient of the whole batch."""
        gen = torch.Generator().manual_seed(self.seed)
        sampler = BatchSampler(
            RandomSampler(self.train_set, generator=gen), self.batch_size, drop_last=True
        )
        rank, world = self._shard()
        if world > 1:
            return DataLoader(
                self.train_set, sampler=BatchShard(sampler, rank, world), batch_size=None
            )
        return DataLoader(self.train_set, sampler=sampler, batch_size=None)

    def _eval_loader(self, data: Dataset, limit: int | None = None) -> DataLoader:
        """The first ``limit`` items in order; with ``W`` processes, contiguous shard ``rank``
        (the system sums the per-shard errors over processes)."""
        n = len(data) if limit is None else min(limit, len(data))  # type: ignore[arg-type]
        rank, world = self._shard()
        if world > 1:
            lo, hi = n * rank // world, n * (rank + 1) // world
            if hi <= lo:
                raise ValueError(f"{n} evaluation windows cannot be split over {world} processes")
            shard = BatchSampler(range(lo, hi), self.eval_batch_size, drop_last=False)
            return DataLoader(data, sampler=shard, batch_size=None)
        sampler = BatchSampler(SequentialSampler(range(n)), self.eval_batch_size, drop_last=False)
        return DataLoader(data, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set, self.val_limit)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ValueError("this data module has no test split")
        return self._eval_loader(self.test_set)

"""Settings, grid and samples of the crypto neural beta (no torch: the Dagster definitions
import these for their config defaults; :mod:`.model` trains)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ACTIVATIONS: tuple[str, ...] = ("linear", "sigmoid", "tanh", "relu")
HIDDEN: tuple[int, ...] = (4, 8, 16)
LEARNING_RATES: tuple[float, ...] = (0.001, 0.01, 0.1)
#: Market configurations of the report, by name.
MARKET_CONFIGS: dict[str, tuple[str, ...]] = {
    "FIAT": ("FIAT",),
    "EQUITY": ("EQUITY",),
    "GOLD": ("GOLD",),
    "ENERGY": ("ENERGY",),
    "FIAT+EQUITY": ("FIAT", "EQUITY"),
    "FIAT+GOLD": ("FIAT", "GOLD"),
    "FIAT+EQUITY+GOLD+ENERGY": ("FIAT", "EQUITY", "GOLD", "ENERGY"),
}
SPLITS: tuple[str, ...] = ("train", "val", "test", "live")


def config_markets(name: str) -> tuple[str, ...]:
    """Markets of a configuration name such as ``FIAT+GOLD``."""
    if name in MARKET_CONFIGS:
        return MARKET_CONFIGS[name]
    parts = tuple(p.strip().upper() for p in name.split("+") if p.strip())
    if not parts:
        raise ValueError(f"empty market configuration {name!r}")
    return parts


@dataclass(frozen=True)
class TrainOptions:
    """Training settings shared by every grid point."""

    window: int = 12
    epochs: int = 200
    batch_size: int = 32
    replicates: int = 3
    seed: int = 0
    train: float = 0.6
    val: float = 0.2
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.epochs < 1 or self.batch_size < 1 or self.replicates < 1:
            raise ValueError("window, epochs, batch_size and replicates must be >= 1")
        if not (0 < self.train < 1 and 0 < self.val < 1 and self.train + self.val < 1):
            raise ValueError("need 0 < train, val and train + val < 1")


@dataclass(frozen=True)
class GridPoint:
    hidden: int
    lr: float
    activation: str

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: use one of {ACTIVATIONS}")
        if self.hidden < 1 or self.lr <= 0:
            raise ValueError("hidden >= 1 and lr > 0")


def make_grid(
    hidden: Sequence[int] = HIDDEN,
    lrs: Sequence[float] = LEARNING_RATES,
    activations: Sequence[str] = ACTIVATIONS,
) -> list[GridPoint]:
    return [GridPoint(int(h), float(lr), str(a)) for h, lr, a in itertools.product(
        hidden, lrs, activations
    )]


# --- samples -----------------------------------------------------------------------------------


@dataclass
class Samples:
    """Every (formation month, coin) with a complete input window."""

    features: np.ndarray  #: (S, window * channels) raw inputs, oldest month first
    y_next: np.ndarray  #: (S,) next-month coin return (NaN for live samples)
    x_next: np.ndarray  #: (S, d) next-month market returns (NaN for live samples)
    formed: pd.DatetimeIndex  #: (S,) formation month t (last month of data used)
    target: pd.DatetimeIndex  #: (S,) month t+1 the beta hedges
    coin: np.ndarray  #: (S,) coin names
    split: np.ndarray  #: (S,) train | val | test | live
    markets: tuple[str, ...]
    channels: tuple[str, ...]  #: input channels per month ("y", markets..., extras...)
    window: int

    def mask(self, split: str) -> np.ndarray:
        return self.split == split

    @property
    def bounds(self) -> dict[str, str | None]:
        """First and last target month of each split."""
        out: dict[str, str | None] = {}
        for s in SPLITS:
            months = self.target[self.split == s]
            out[f"{s}_start"] = f"{months.min():%Y-%m}" if len(months) else None
            out[f"{s}_end"] = f"{months.max():%Y-%m}" if len(months) else None
        return out


def split_targets(
    target_months: Sequence[pd.Timestamp], train: float, val: float
) -> dict[pd.Timestamp, str]:
    """train / val / test label of each distinct target month, by time."""
    months = sorted(set(pd.DatetimeIndex(target_months)))
    n = len(months)
    n_train = int(round(train * n))
    n_val = int(round(val * n))
    if min(n_train, n_val, n - n_train - n_val) < 1:
        raise ValueError(
            f"{n} target months cannot be split {train:.0%}/{val:.0%}/rest into non-empty "
            "train, validation and test spans: configure a longer history"
        )
    labels = {}
    for i, m in enumerate(months):
        labels[m] = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
    return labels


def build_samples(
    wide: pd.DataFrame,
    coins: Sequence[str],
    markets: Sequence[str],
    options: TrainOptions | None = None,
    extra: pd.DataFrame | None = None,
) -> Samples:
    """Windows of ``wide`` (months x assets log returns, gap-free monthly index).

    ``extra``: months x columns of additional inputs (e.g. Fama-French factors), aligned on
    the same months; windows must be complete in every column used. A sample with a
    complete window but no next-month coin or market return is ``live``.
    """
    opt = options or TrainOptions()
    h = opt.window
    markets = tuple(markets)
    missing = [c for c in (*coins, *markets) if c not in wide.columns]
    if missing:
        raise ValueError(f"the monthly panel has no column(s) {missing}")
    months = pd.DatetimeIndex(wide.index)
    x = wide.loc[:, list(markets)].to_numpy(dtype="float64")  # (T, d)
    ex = (
        extra.reindex(months).to_numpy(dtype="float64")
        if extra is not None and extra.shape[1]
        else np.zeros((len(months), 0))
    )
    extra_names = tuple(extra.columns) if extra is not None else ()
    feats, y_next, x_next, formed, target, coin_col = [], [], [], [], [], []
    for coin in coins:
        y = wide[coin].to_numpy(dtype="float64")
        per_month = np.column_stack([y, x, ex])  # (T, channels)
        for t in range(h - 1, len(months)):
            win = per_month[t - h + 1 : t + 1]
            if not np.isfinite(win).all():
                continue
            feats.append(win.reshape(-1))
            if t + 1 < len(months):
                y_next.append(y[t + 1])
                x_next.append(x[t + 1])
                target.append(months[t + 1])
            else:
                y_next.append(np.nan)
                x_next.append(np.full(len(markets), np.nan))
                target.append(months[t] + pd.offsets.MonthBegin(1))
            formed.append(months[t])
            coin_col.append(coin)
    n_ch = 1 + len(markets) + len(extra_names)
    features = np.asarray(feats, dtype="float64").reshape(-1, h * n_ch)
    yn = np.asarray(y_next, dtype="float64")
    xn = np.asarray(x_next, dtype="float64").reshape(-1, len(markets))
    has_target = np.isfinite(yn) & np.isfinite(xn).all(axis=1)
    target_idx = pd.DatetimeIndex(target)
    labels = split_targets(target_idx[has_target], opt.train, opt.val)
    split = np.array(
        [labels[m] if ok else "live" for m, ok in zip(target_idx, has_target, strict=True)],
        dtype=object,
    )
    yn[~has_target] = np.nan
    xn[~has_target] = np.nan
    return Samples(
        features=features,
        y_next=yn,
        x_next=xn,
        formed=pd.DatetimeIndex(formed),
        target=target_idx,
        coin=np.asarray(coin_col, dtype=object),
        split=split,
        markets=markets,
        channels=("y", *markets, *extra_names),
        window=h,
    )

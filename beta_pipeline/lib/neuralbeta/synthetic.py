"""Seeded synthetic beta scenarios of the NeuralBeta paper (docs/methods.md, Synthetic scenarios).

Every generator returns arrays ``x [n, h+1, d]``, ``y [n, h+1]`` and ``beta [n, h+1, d]``:
steps ``0..h-1`` are the lookback window, step ``h`` is the target (the hedge is evaluated on
``y[:, h] - <beta_hat, x[:, h]>``). ``y_t = <beta_t, x_t> + eps_t`` with ``x ~ Student-t(10)``
and ``eps ~ N(0, 1)``.

Scenarios
- ``constant``: ``beta_t = c``, ``c ~ N(1, 1)`` per sample (and per factor).
- ``stepwise``: two levels ``~ N(1, 1)``; the new level starts at step ``k ~ U{1, .., h-1}``
  (``meta['jump']``), so the window always holds at least one step of each level and the target
  is on the new level. Exactly one jump per sample.
- ``cyclical``: ``beta_t = sin(beta0 + t / c)``, ``t = 0..h`` (integer), ``beta0 ~ N(0, 1)``,
  ``c ~ U(4, 32)`` (period ``2 pi c`` = 25..201 steps). METHODS §4 fixes ``t / c``.
- ``jump_probe`` (Fig. 6): beta 2 before and 0 from a given step on, ``n`` samples per position.
- ``kalman_step``: one series of 1,000 steps, beta 3 then 6 from step 500, ``x, eps ~ N(0, 1)``.

Random streams come from ``numpy.random.default_rng(seed)``, so a seed reproduces a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIOS: tuple[str, ...] = ("constant", "stepwise", "cyclical")
DEFAULT_WINDOW = 64
DEFAULT_SAMPLES = 100_000
SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.2, 0.1)
T_DOF = 10


@dataclass
class SyntheticData:
    """Arrays of one scenario: ``x [n, h+1, d]``, ``y [n, h+1]``, ``beta [n, h+1, d]``."""

    scenario: str
    x: np.ndarray
    y: np.ndarray
    beta: np.ndarray
    seed: int | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def window(self) -> int:
        return int(self.x.shape[1] - 1)

    @property
    def d(self) -> int:
        return int(self.x.shape[2])

    def subset(self, idx: slice | np.ndarray) -> SyntheticData:
        """Rows ``idx`` of every array (meta included)."""
        return SyntheticData(
            self.scenario,
            self.x[idx],
            self.y[idx],
            self.beta[idx],
            self.seed,
            {k: v[idx] for k, v in self.meta.items()},
        )

    def windows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_win [n,h,d], y_win [n,h], x_next [n,d], y_next [n], beta_next [n,d])``."""
        h = self.window
        return self.x[:, :h], self.y[:, :h], self.x[:, h], self.y[:, h], self.beta[:, h]

    def split(
        self, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    ) -> dict[str, SyntheticData]:
        """Contiguous train/val/test split (samples are i.i.d., so order does not matter)."""
        return {k: self.subset(s) for k, s in split_slices(self.n, fractions).items()}


def split_slices(
    n: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> dict[str, slice]:
    """Slices of a 70/20/10 (default) train/val/test split of ``n`` samples."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {
        "train": slice(0, n_train),
        "val": slice(n_train, n_train + n_val),
        "test": slice(n_train + n_val, n),
    }


def _finish(
    scenario: str,
    beta: np.ndarray,
    rng: np.random.Generator,
    seed: int | None,
    meta: dict[str, np.ndarray],
    x_dist: str = "t",
) -> SyntheticData:
    """Draw x and eps for a given beta path and assemble ``y = <beta, x> + eps``."""
    if x_dist == "t":
        x = rng.standard_t(T_DOF, size=beta.shape)
    else:
        x = rng.standard_normal(size=beta.shape)
    eps = rng.standard_normal(size=beta.shape[:2])
    y = np.einsum("ntd,ntd->nt", beta, x) + eps
    return SyntheticData(scenario, x, y, beta, seed, meta)


def constant(
    n: int = DEFAULT_SAMPLES, h: int = DEFAULT_WINDOW, d: int = 1, seed: int = 0
) -> SyntheticData:
    """Constant beta ``c ~ N(1, 1)`` per sample."""
    rng = np.random.default_rng(seed)
    c = rng.normal(1.0, 1.0, size=(n, 1, d))
    beta = np.broadcast_to(c, (n, h + 1, d)).copy()
    return _finish("constant", beta, rng, seed, {"c": c[:, 0, :]})


def stepwise(
    n: int = DEFAULT_SAMPLES, h: int = DEFAULT_WINDOW, d: int = 1, seed: int = 0
) -> SyntheticData:
    """Two levels ``~ N(1, 1)``; the new level starts at ``k ~ U{1..h-1}`` (target on it)."""
    rng = np.random.default_rng(seed)
    b1 = rng.normal(1.0, 1.0, size=(n, 1, d))
    b2 = rng.normal(1.0, 1.0, size=(n, 1, d))
    jump = rng.integers(1, h, size=n)
    after = (np.arange(h + 1)[None, :] >= jump[:, None])[:, :, None]
    beta = np.where(after, b2, b1)
    return _finish("stepwise", beta, rng, seed, {"jump": jump})


def cyclical(
    n: int = DEFAULT_SAMPLES, h: int = DEFAULT_WINDOW, d: int = 1, seed: int = 0
) -> SyntheticData:
    """``beta_t = sin(beta0 + t / c)``, ``t = 0..h``, ``beta0 ~ N(0,1)``, ``c ~ U(4,32)``."""
    rng = np.random.default_rng(seed)
    beta0 = rng.normal(0.0, 1.0, size=(n, 1, d))
    c = rng.uniform(4.0, 32.0, size=(n, 1, d))
    t = np.arange(h + 1, dtype=float)[None, :, None]
    beta = np.sin(beta0 + t / c)
    return _finish("cyclical", beta, rng, seed, {"beta0": beta0[:, 0, :], "c": c[:, 0, :]})


GENERATORS = {"constant": constant, "stepwise": stepwise, "cyclical": cyclical}


def generate(
    scenario: str, n: int = DEFAULT_SAMPLES, h: int = DEFAULT_WINDOW, d: int = 1, seed: int = 0
) -> SyntheticData:
    """Dispatch to the generator of ``scenario`` (one of :data:`SCENARIOS`)."""
    try:
        gen = GENERATORS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {SCENARIOS}") from None
    return gen(n=n, h=h, d=d, seed=seed)


def jump_probe(
    positions: list[int] | np.ndarray | None = None,
    n_per_position: int = 1000,
    h: int = DEFAULT_WINDOW,
    before: float = 2.0,
    after: float = 0.0,
    seed: int = 0,
) -> SyntheticData:
    """Fig. 6 probe: beta ``before`` up to step ``k-1`` and ``after`` from step ``k`` on.

    ``positions`` are window steps ``k`` (1..h-1; default 8, 16, .., 56); ``meta['jump']`` holds
    each sample's ``k``. Samples are grouped by position in the given order.
    """
    if positions is None:
        positions = np.arange(8, h, 8)
    pos = np.repeat(np.asarray(positions, dtype=int), n_per_position)
    if np.any((pos < 1) | (pos > h)):
        raise ValueError("jump positions must lie in 1..h")
    rng = np.random.default_rng(seed)
    new = (np.arange(h + 1)[None, :] >= pos[:, None])[:, :, None]
    beta = np.where(new, after, before).astype(float)
    return _finish("jump_probe", beta, rng, seed, {"jump": pos})


@dataclass
class KalmanStepSeries:
    """One series for the Kalman study: ``y_t = beta_t x_t + eps_t`` (no intercept drawn)."""

    x: np.ndarray
    y: np.ndarray
    beta: np.ndarray
    seed: int


def kalman_step(
    n: int = 1000,
    break_at: int = 500,
    beta_before: float = 3.0,
    beta_after: float = 6.0,
    seed: int = 0,
) -> KalmanStepSeries:
    """Renzi-Ricci's series: beta 3 for steps ``0..break_at-1``, 6 after; ``x, eps ~ N(0, 1)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    eps = rng.standard_normal(n)
    beta = np.where(np.arange(n) < break_at, beta_before, beta_after).astype(float)
    return KalmanStepSeries(x=x, y=beta * x + eps, beta=beta, seed=seed)


# ---------------------------------------------------------------------------------- parquet


def to_frame(data: SyntheticData, dtype: str = "float64") -> pd.DataFrame:
    """Fixed-width frame: one row per sample, columns ``y_{s}``, ``x{j}_{s}``, ``b{j}_{s}``.

    ``s`` runs over ``0..h`` (``h`` = target step), ``j`` over factors. Also ``sample`` (row
    number), ``split`` (train/val/test of the default 70/20/10 split) and the scenario's meta
    columns (``meta_<name>`` or ``meta_<name>_{j}``).
    """
    n, steps, d = data.x.shape
    cols: dict[str, np.ndarray] = {"sample": np.arange(n)}
    split = np.empty(n, dtype=object)
    for name, sl in split_slices(n).items():
        split[sl] = name
    cols["split"] = split
    for s in range(steps):
        cols[f"y_{s}"] = data.y[:, s].astype(dtype)
    for j in range(d):
        for s in range(steps):
            cols[f"x{j}_{s}"] = data.x[:, s, j].astype(dtype)
    for j in range(d):
        for s in range(steps):
            cols[f"b{j}_{s}"] = data.beta[:, s, j].astype(dtype)
    for key, val in data.meta.items():
        val = np.asarray(val)
        if val.ndim == 1:
            cols[f"meta_{key}"] = val
        else:
            for j in range(val.shape[1]):
                cols[f"meta_{key}_{j}"] = val[:, j]
    frame = pd.DataFrame(cols)
    frame.attrs = {"scenario": data.scenario, "seed": data.seed}
    return frame


def from_frame(frame: pd.DataFrame, scenario: str | None = None) -> SyntheticData:
    """Inverse of :func:`to_frame` (rows ordered by ``sample``)."""
    frame = frame.sort_values("sample")
    y_cols = [c for c in frame.columns if c.startswith("y_")]
    steps = len(y_cols)
    d = sum(1 for c in frame.columns if c.startswith("x") and c.endswith("_0"))
    y = frame[[f"y_{s}" for s in range(steps)]].to_numpy(dtype=float)
    x = np.stack(
        [frame[[f"x{j}_{s}" for s in range(steps)]].to_numpy(dtype=float) for j in range(d)], -1
    )
    beta = np.stack(
        [frame[[f"b{j}_{s}" for s in range(steps)]].to_numpy(dtype=float) for j in range(d)], -1
    )
    meta: dict[str, list[np.ndarray]] = {}
    for c in frame.columns:
        if c.startswith("meta_"):
            name = c[5:]
            base, _, tail = name.rpartition("_")
            key = base if tail.isdigit() and base else name
            meta.setdefault(key, []).append(frame[c].to_numpy())
    meta_arr = {k: v[0] if len(v) == 1 else np.stack(v, -1) for k, v in meta.items()}
    seed = frame.attrs.get("seed")
    name = scenario or frame.attrs.get("scenario", "unknown")
    return SyntheticData(name, x, y, beta, seed, meta_arr)


def save_parquet(data: SyntheticData, path: str | Path, dtype: str = "float64") -> Path:
    """Write ``data`` to ``path`` as fixed-width Parquet (scenario and seed in the metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(to_frame(data, dtype), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"beta_pipeline.scenario"] = data.scenario.encode()
    meta[b"beta_pipeline.seed"] = str(data.seed).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def load_parquet(path: str | Path) -> SyntheticData:
    """Read a file written by :func:`save_parquet`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    frame = table.to_pandas()
    scenario = meta.get(b"beta_pipeline.scenario", b"unknown").decode()
    seed_txt = meta.get(b"beta_pipeline.seed", b"None").decode()
    frame.attrs["seed"] = None if seed_txt == "None" else int(seed_txt)
    return from_frame(frame, scenario)

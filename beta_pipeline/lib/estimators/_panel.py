"""Input normalisation and the result container shared by the panel estimators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RegressionResult:
    """Per (date, asset) output of a rolling / expanding / weighted regression.

    Row ``t`` uses data up to and including row ``t`` only; NaN where the window has
    fewer than ``min_obs`` usable observations or a singular design.
    """

    beta: np.ndarray  #: (T, N, k) slopes
    alpha: np.ndarray  #: (T, N) intercept (NaN without intercept)
    r2: np.ndarray  #: (T, N) R² (centred with intercept, uncentred without, as statsmodels)
    resid_std: np.ndarray  #: (T, N) residual standard deviation, ddof = n - params
    beta_se: np.ndarray  #: (T, N, k) standard error of each slope
    n_obs: np.ndarray  #: (T, N) int32 usable observations in the window

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(T, N, k)``."""
        return self.beta.shape  # type: ignore[return-value]


def as_y(y: np.ndarray) -> np.ndarray:
    """``y`` as a float64 (T, N) array (a 1-d series becomes one column)."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"y must be (T,) or (T, N), got shape {arr.shape}")
    return arr


def as_x(x: np.ndarray, t: int, n: int) -> np.ndarray:
    """Factors as a float64 (T, 1 or N, k) array.

    Accepts (T,) (one factor), (T, k) (shared by all assets) or (T, N, k) (per asset).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None, None]
    elif arr.ndim == 2:
        arr = arr[:, None, :]
    elif arr.ndim != 3:
        raise ValueError(f"X must be (T,), (T, k) or (T, N, k), got shape {arr.shape}")
    if arr.shape[0] != t:
        raise ValueError(f"X has {arr.shape[0]} rows, y has {t}")
    if arr.shape[1] not in (1, n):
        raise ValueError(f"per-asset X must have N={n} columns, got {arr.shape[1]}")
    if arr.shape[2] < 1:
        raise ValueError("X needs at least one factor")
    return arr

"""Half-life tuning of the EW-WLS beta on a validation span (next-day hedging RMSE)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators.hedging import hedge_errors_wide
from beta_pipeline.lib.estimators.regression import ew_wls

DEFAULT_GRID: tuple[float, ...] = (0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)


def tune_half_life(
    y: np.ndarray,
    x: np.ndarray,
    val_rows: slice,
    half_lives: Sequence[float] = DEFAULT_GRID,
    *,
    window: int | None = None,
    min_obs: int | None = None,
    intercept: bool = True,
) -> tuple[float, pd.DataFrame]:
    """Pick the half-life minimising ``RMSE(y_{t+1} - <beta_t, x_{t+1}>)`` on ``val_rows``.

    Errors are scored for target rows in ``val_rows`` (betas from the row before, using all
    data up to it, so training rows serve as warm-up); every half-life is scored on the
    same (row, asset) pairs: those where all of them have an error. Returns the best
    half-life and a table (half_life, rmse, n).
    """
    stop = val_rows.stop if val_rows.stop is not None else np.asarray(y).shape[0]
    start = val_rows.start or 0
    yy = np.asarray(y, dtype=np.float64)[:stop]
    xx = np.asarray(x, dtype=np.float64)[:stop]
    errs = []
    for hl in half_lives:
        res = ew_wls(yy, xx, hl, window=window, min_obs=min_obs, intercept=intercept)
        errs.append(hedge_errors_wide(res.beta, yy if yy.ndim == 2 else yy[:, None], xx)[start:])
    stack = np.stack(errs)
    common = np.isfinite(stack).all(axis=0)
    n = int(common.sum())
    rmse = [float(np.sqrt(np.mean(e[common] ** 2))) if n else np.nan for e in errs]
    table = pd.DataFrame({"half_life": list(half_lives), "rmse": rmse, "n": n})
    best = float(table.loc[table["rmse"].idxmin(), "half_life"]) if n else float("nan")
    return best, table

"""Long-format wrapper: (date, symbol, y) rows and wide factors in, long beta rows out.

Pivoting works on integer codes (factorised dates mapped onto the factors' calendar,
factorised symbols), so a 30 M-row panel costs a few scatter/gather passes, not a
``pivot_table``. The calendar is the factors' index: a window of h rows is h factor dates;
returns dated outside it are ignored. (date, symbol) pairs must be unique.

Output columns: ``date, symbol, estimator, factor, beta, alpha, r2, resid_std, n_obs``
(``beta_se`` too with ``with_se=True``), one row per factor, rows with a NaN beta dropped,
sorted by date, symbol, factor. ``date`` is the last day of data used (the beta hedges the
next row). ``symbol``, ``estimator`` and ``factor`` are pandas Categoricals (cheap at 30 M
rows); ``n_obs`` is int32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators._panel import RegressionResult
from beta_pipeline.lib.estimators.adjusted import blume, dimson, vasicek, welch
from beta_pipeline.lib.estimators.kalman import kalman_filter
from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_panel
from beta_pipeline.lib.estimators.regression import ew_wls, expanding_ols, rolling_ols

LONG_COLUMNS: tuple[str, ...] = (
    "date",
    "symbol",
    "estimator",
    "factor",
    "beta",
    "alpha",
    "r2",
    "resid_std",
    "n_obs",
)


def _date_positions(values: pd.Series | np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """Row of each value in ``dates`` (-1 when absent), via factorisation of the values."""
    codes, uniq = pd.factorize(values)
    pos = dates.get_indexer(pd.DatetimeIndex(uniq))
    return pos[codes] if len(codes) else np.empty(0, dtype=np.intp)


def _symbol_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and sorted categories of a symbol column (Categorical-aware)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if cats.is_monotonic_increasing:
            return values.cat.codes.to_numpy(), cats
    codes, uniq = pd.factorize(values, sort=True)
    return codes, pd.Index(uniq)


def pivot_returns(
    returns: pd.DataFrame, dates: pd.DatetimeIndex, y_col: str = "y"
) -> tuple[np.ndarray, pd.Index]:
    """Long (date, symbol, y) to a (T, N) array on ``dates``; returns it and the symbols."""
    codes, symbols = _symbol_codes(returns["symbol"])
    rows = _date_positions(returns["date"], dates)
    keep = (rows >= 0) & (codes >= 0)
    out = np.full((len(dates), len(symbols)), np.nan)
    out[rows[keep], codes[keep]] = returns[y_col].to_numpy(dtype=np.float64)[keep]
    return out, symbols


def pivot_betas(
    betas: pd.DataFrame,
    dates: pd.DatetimeIndex,
    symbols: pd.Index,
    factors: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Long betas of one estimator to ``beta`` (T, N, k) and ``alpha`` (T, N) arrays."""
    t_len, n, k = len(dates), len(symbols), len(factors)
    beta = np.full((t_len, n, k), np.nan)
    alpha = np.full((t_len, n), np.nan)
    rows = _date_positions(betas["date"], dates)
    scodes, suniq = pd.factorize(betas["symbol"])
    cols = symbols.get_indexer(pd.Index(suniq))[scodes]
    fcodes, funiq = pd.factorize(betas["factor"])
    fidx = pd.Index(factors).get_indexer(pd.Index(funiq))[fcodes]
    keep = (rows >= 0) & (cols >= 0) & (fidx >= 0)
    r, c, f = rows[keep], cols[keep], fidx[keep]
    beta[r, c, f] = betas["beta"].to_numpy(dtype=np.float64)[keep]
    alpha[r, c] = betas["alpha"].to_numpy(dtype=np.float64)[keep]
    return beta, alpha


def unpivot(
    res: RegressionResult,
    dates: pd.DatetimeIndex,
    symbols: pd.Index,
    factors: list[str],
    estimator: str,
    valid: np.ndarray | None = None,
    with_se: bool = False,
) -> pd.DataFrame:
    """Result arrays to long rows (one per factor) where every beta is finite."""
    t_len, n, k = res.beta.shape
    ok = np.isfinite(res.beta[:, :, 0]) if k == 1 else np.isfinite(res.beta).all(axis=2)
    if valid is not None:
        ok &= valid
    per_date = ok.sum(axis=1)
    m = int(per_date.sum())
    code_type = np.int16 if n < 2**15 else np.int32
    okk = np.repeat(ok[:, :, None], k, axis=2) if k > 1 else ok

    ok_flat = ok.reshape(-1)

    def pick(a: np.ndarray) -> np.ndarray:
        """``a[ok]`` through the fast 1-d boolean path."""
        return np.broadcast_to(a, ok.shape).reshape(-1)[ok_flat]

    def per_row(a: np.ndarray) -> np.ndarray:
        v = pick(a)
        return np.repeat(v, k) if k > 1 else v

    s_idx = pick(np.arange(n, dtype=code_type))
    data: dict[str, Any] = {
        "date": np.repeat(dates.to_numpy(), per_date * k),
        "symbol": pd.Categorical.from_codes(
            np.repeat(s_idx, k) if k > 1 else s_idx, categories=symbols, validate=False
        ),
        "estimator": pd.Categorical.from_codes(
            np.zeros(m * k, dtype=np.int8), categories=[estimator], validate=False
        ),
        "factor": pd.Categorical.from_codes(
            np.tile(np.arange(k, dtype=np.int8), m), categories=list(factors), validate=False
        ),
        "beta": res.beta[okk] if k > 1 else pick(res.beta[:, :, 0]),
        "alpha": per_row(res.alpha),
        "r2": per_row(res.r2),
        "resid_std": per_row(res.resid_std),
        "n_obs": per_row(res.n_obs),
    }
    if with_se:
        data["beta_se"] = res.beta_se[okk] if k > 1 else pick(res.beta_se[:, :, 0])
    return pd.DataFrame(data, copy=False)


def kalman_regression(
    y: np.ndarray, x: np.ndarray, dates: pd.DatetimeIndex, **p: Any
) -> tuple[RegressionResult, np.ndarray]:
    """Kalman betas (hedge = predicted state) as a RegressionResult plus a validity mask."""
    if x.shape[1] != 1:
        raise ValueError("the Kalman estimator takes exactly one factor")
    xs = x[:, 0]
    min_obs = int(p.pop("min_obs", 1))
    if "train_end" in p:
        train_rows = int(dates.searchsorted(pd.Timestamp(p.pop("train_end")), side="right"))
        params = fit_kalman_panel(y, xs, train_rows, **p)
        kw: dict[str, Any] = params.as_kwargs()
    else:
        kw = {key: p[key] for key in ("q", "h", "alpha", "phi", "mu", "beta0", "p0") if key in p}
    out, valid, _ = kalman_rows(y, xs, kw, min_obs)
    return out, valid


def kalman_rows(
    y: np.ndarray,
    xs: np.ndarray,
    kw: dict[str, Any],
    min_obs: int = 1,
    n_obs0: np.ndarray | None = None,
) -> tuple[RegressionResult, np.ndarray, Any]:
    """:func:`kalman_regression`'s result and validity mask from filter parameters ``kw``,
    plus the raw :class:`KalmanResult`. A resumed filter passes the stored predicted state as
    ``beta0``/``p0`` and the observations counted before its first row as ``n_obs0``:
    ``kalman_filter`` starts from its prior with the same operations as the row after the
    stored one, so the rows are bit-identical to the filter run from the first row."""
    res = kalman_filter(y, xs, loglike=False, **kw)
    n_obs = res.n_obs if n_obs0 is None else res.n_obs + np.asarray(n_obs0, dtype=np.int32)
    t_len, n = y.shape
    h = np.broadcast_to(np.asarray(kw["h"], dtype=np.float64), (n,))
    alpha = np.broadcast_to(np.asarray(kw.get("alpha", 0.0), dtype=np.float64), (n,))
    out = RegressionResult(
        beta=res.predicted[:, :, None],
        alpha=np.broadcast_to(alpha, (t_len, n)),
        r2=np.full((t_len, n), np.nan),
        resid_std=np.broadcast_to(np.sqrt(h), (t_len, n)),
        beta_se=np.sqrt(res.predicted_var)[:, :, None],
        n_obs=n_obs,
    )
    observed = np.isfinite(y) & np.isfinite(xs)[:, None]
    return out, observed & (n_obs >= min_obs), res


def _ols_then(
    adjust: Callable[[RegressionResult, dict[str, Any]], np.ndarray],
) -> Callable[..., RegressionResult]:
    """Rolling OLS followed by an adjustment of the betas."""

    def run(y: np.ndarray, x: np.ndarray, **p: Any) -> RegressionResult:
        extra = {key: p.pop(key) for key in ("weight", "prior", "ddof") if key in p}
        res = rolling_ols(y, x, **p)
        return RegressionResult(
            beta=adjust(res, extra),
            alpha=res.alpha,
            r2=res.r2,
            resid_std=res.resid_std,
            beta_se=res.beta_se,
            n_obs=res.n_obs,
        )

    return run


def _blume(res: RegressionResult, p: dict[str, Any]) -> np.ndarray:
    k = res.beta.shape[2]
    prior = p.get("prior")
    if prior is None:  # the market (first factor) toward 1, other factors toward 0
        prior = np.r_[1.0, np.zeros(k - 1)]
    return blume(res.beta, p.get("weight", 0.67), prior)


def _vasicek(res: RegressionResult, p: dict[str, Any]) -> np.ndarray:
    return vasicek(res.beta, res.beta_se, p.get("ddof", 1))


ESTIMATORS: dict[str, Callable[..., RegressionResult]] = {
    "ols": rolling_ols,
    "expanding": expanding_ols,
    "ewm": ew_wls,
    "dimson": dimson,
    "welch": welch,
    "blume": _ols_then(_blume),
    "vasicek": _ols_then(_vasicek),
}


def estimate_betas_long(
    returns: pd.DataFrame,
    factors: pd.DataFrame,
    estimator: str,
    *,
    y_col: str = "y",
    name: str | None = None,
    with_se: bool = False,
    **params: Any,
) -> pd.DataFrame:
    """Estimate betas for every symbol of a long return frame.

    ``returns``: columns date, symbol and ``y_col`` (the stock excess return); ``factors``:
    index date, one column per factor. ``estimator``: ``ols`` (window, min_obs,
    intercept), ``expanding``, ``ewm`` (half_life, window), ``blume`` (weight, prior),
    ``vasicek``, ``dimson`` (lags, leads), ``welch`` (delta, half_life) or ``kalman`` (one
    factor; ``q``, ``h``, ``alpha``, ... or ``train_end`` plus :func:`fit_kalman_panel`
    options; the beta is the one-step-ahead predicted state, rows only where the asset is
    observed and ``n_obs >= min_obs``). ``name`` overrides the estimator column.
    """
    fac = factors.sort_index()
    dates = pd.DatetimeIndex(fac.index)
    if not dates.is_unique:
        raise ValueError("factor dates must be unique")
    y, symbols = pivot_returns(returns, dates, y_col)
    x = fac.to_numpy(dtype=np.float64)
    names = [str(c) for c in fac.columns]
    valid = None
    if estimator == "kalman":
        res, valid = kalman_regression(y, x, dates, **params)
    elif estimator in ESTIMATORS:
        res = ESTIMATORS[estimator](y, x, **params)
    else:
        raise ValueError(
            f"unknown estimator {estimator!r}; use one of {sorted([*ESTIMATORS, 'kalman'])}"
        )
    return unpivot(res, dates, symbols, names, name or estimator, valid, with_se)

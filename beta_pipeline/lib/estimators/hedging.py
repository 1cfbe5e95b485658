"""Next-day hedging errors and their RMSE (the headline metric, docs/methods.md).

``e_{t+1} = y_{t+1} - <beta_t, x_{t+1}>``: the beta dated t (estimated with data up to t) is
applied to the factor returns of the NEXT row of the date index (the factors' calendar, not
calendar day + 1). If the asset has no return on that row, there is no error for it.

Convention: no alpha in the hedge (as in NeuralBeta: hedge = <beta, x>); pass
``include_alpha=True`` to subtract ``alpha_t`` as well.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators.long import pivot_betas, pivot_returns


def hedge_errors_wide(
    beta: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    alpha: np.ndarray | None = None,
) -> np.ndarray:
    """(T, N) errors: row t+1 holds ``y[t+1] - <beta[t], x[t+1]>`` (row 0 is NaN).

    ``beta``: (T, N) or (T, N, k); ``y``: (T, N); ``x``: (T,), (T, k) or (T, N, k);
    ``alpha``: optional (T, N) intercepts dated like ``beta``.
    """
    b = np.asarray(beta, dtype=np.float64)
    b = b[:, :, None] if b.ndim == 2 else b
    yy = np.asarray(y, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)
    if xx.ndim == 1:
        xx = xx[:, None, None]
    elif xx.ndim == 2:
        xx = xx[:, None, :]
    err = np.full(yy.shape, np.nan)
    hedge = np.einsum("tnk,tnk->tn", b[:-1], np.broadcast_to(xx[1:], b[:-1].shape))
    if alpha is not None:
        hedge = hedge + np.asarray(alpha, dtype=np.float64)[:-1]
    err[1:] = yy[1:] - hedge
    return err


def hedging_errors(
    betas: pd.DataFrame,
    returns: pd.DataFrame,
    factors: pd.DataFrame,
    include_alpha: bool = False,
    y_col: str = "y",
) -> pd.DataFrame:
    """Long hedging errors for every estimator in ``betas``.

    ``betas``: long output of :func:`.long.estimate_betas_long` (date, symbol, estimator,
    factor, beta, alpha, ...); ``returns``: long (date, symbol, ``y_col``); ``factors``: wide, index
    date. Returns (date, symbol, estimator, y, hedge, error), ``date`` being the date of the
    hedged return (the row after the beta's date).
    """
    dates = pd.DatetimeIndex(factors.index)
    y, symbols = pivot_returns(returns, dates, y_col)
    x = factors.to_numpy(dtype=np.float64)
    frames = []
    for est in pd.unique(betas["estimator"]):
        sub = betas[betas["estimator"] == est]
        beta, alpha = pivot_betas(sub, dates, symbols, list(factors.columns))
        err = hedge_errors_wide(beta, y, x, alpha if include_alpha else None)
        t_idx, s_idx = np.nonzero(np.isfinite(err))
        yv = y[t_idx, s_idx]
        ev = err[t_idx, s_idx]
        frames.append(
            pd.DataFrame(
                {
                    "date": dates[t_idx],
                    "symbol": pd.Categorical.from_codes(s_idx, categories=symbols),
                    "estimator": est,
                    "y": yv,
                    "hedge": yv - ev,
                    "error": ev,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["date", "symbol", "estimator", "y", "hedge", "error"])
    return pd.concat(frames, ignore_index=True)


def hedging_report(
    errors: pd.DataFrame,
    reference: str,
    common: str = "all",
) -> dict[str, pd.DataFrame]:
    """RMSE of the hedging errors overall and by year, with
    ``improvement_pct = 100 (1 - RMSE_model / RMSE_reference)``.

    ``common="all"``: every estimator is scored on the (symbol, date) pairs that all
    estimators (the reference included) have; ``"pair"``: each on the pairs it shares with
    the reference. Returns ``{"overall": ..., "by_year": ...}``.
    """
    if reference not in set(errors["estimator"]):
        raise ValueError(f"reference estimator {reference!r} not in errors")
    dcode, dates = pd.factorize(errors["date"], sort=True)
    scode, _ = pd.factorize(errors["symbol"])
    ecode, names = pd.factorize(errors["estimator"])
    names = list(names)
    key = dcode.astype(np.int64) * (int(scode.max()) + 1) + scode
    ukey, inv = np.unique(key, return_inverse=True)
    sq = np.full((ukey.size, len(names)), np.nan)
    sq[inv, ecode] = errors["error"].to_numpy(dtype=np.float64) ** 2
    ref = names.index(reference)
    n_sym = int(scode.max()) + 1
    years = pd.DatetimeIndex(dates).year.to_numpy()[ukey // n_sym]
    if common == "all":
        masks = {name: np.isfinite(sq).all(axis=1) for name in names}
    elif common == "pair":
        masks = {
            name: np.isfinite(sq[:, i]) & np.isfinite(sq[:, ref]) for i, name in enumerate(names)
        }
    else:
        raise ValueError("common must be 'all' or 'pair'")
    rows, yrows = [], []
    for i, name in enumerate(names):
        m = masks[name]
        rm = float(np.sqrt(sq[m, i].mean())) if m.any() else np.nan
        rr = float(np.sqrt(sq[m, ref].mean())) if m.any() else np.nan
        rows.append(
            {
                "estimator": name,
                "n": int(m.sum()),
                "rmse": rm,
                "rmse_ref": rr,
                "improvement_pct": 100.0 * (1.0 - rm / rr),
            }
        )
        for yr in np.unique(years[m]):
            my = m & (years == yr)
            rm = float(np.sqrt(sq[my, i].mean()))
            rr = float(np.sqrt(sq[my, ref].mean()))
            yrows.append(
                {
                    "year": int(yr),
                    "estimator": name,
                    "n": int(my.sum()),
                    "rmse": rm,
                    "rmse_ref": rr,
                    "improvement_pct": 100.0 * (1.0 - rm / rr),
                }
            )
    return {"overall": pd.DataFrame(rows), "by_year": pd.DataFrame(yrows)}

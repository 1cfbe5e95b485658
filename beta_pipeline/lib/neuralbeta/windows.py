"""Per-sample beta estimators on lookback windows ``x [n, h, d]``, ``y [n, h]``.

Window convention: index ``h-1`` is the newest observation (age 0). Every estimator returns the
hedge ratio for the next step, ``beta [n, d]``. No intercept (the synthetic model has none),
except :func:`intercept_ols_beta` (market data). The half-life of EW-WLS is tuned by the panel
tuner of :mod:`beta_pipeline.lib.estimators.tuning`, each window being one asset.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from beta_pipeline.lib.estimators.tuning import tune_half_life as tune_panel_half_life

DEFAULT_HALF_LIVES: tuple[float, ...] = (0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


def wls_beta(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    prior_mean: np.ndarray | float | None = None,
    prior_precision: np.ndarray | float | None = None,
) -> np.ndarray:
    """``(Lambda0 + X'WX)^-1 (Lambda0 mu0 + X'Wy)`` per sample.

    ``weights`` is ``[h]`` or ``[n, h]`` (None = ones); without a prior this is (W)LS.
    ``prior_precision`` is a scalar, a vector (diagonal) or a ``[d, d]`` matrix.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, h, d = x.shape
    w = np.ones((1, h)) if weights is None else np.broadcast_to(np.asarray(weights, float), (n, h))
    a = np.einsum("nh,nhi,nhj->nij", w, x, x)
    b = np.einsum("nh,nhi,nh->ni", w, x, y)
    if prior_precision is not None:
        lam = np.asarray(prior_precision, dtype=float)
        lam = lam * np.eye(d) if lam.ndim < 2 else lam
        mu = np.broadcast_to(np.asarray(0.0 if prior_mean is None else prior_mean, float), (d,))
        a = a + lam
        b = b + lam @ mu
    return np.linalg.solve(a, b[..., None])[..., 0]


def ols_beta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rolling OLS without intercept on the window."""
    return wls_beta(x, y)


def ew_weights(h: int, half_life: float) -> np.ndarray:
    """``0.5 ** (age / half_life)`` with age 0 for the newest step (the last index)."""
    age = np.arange(h - 1, -1, -1, dtype=float)
    if np.isinf(half_life):
        return np.ones(h)
    return 0.5 ** (age / half_life)


def ewls_beta(x: np.ndarray, y: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially weighted least squares with the given half-life."""
    return wls_beta(x, y, ew_weights(x.shape[1], half_life))


def bayes_constant_beta(
    x: np.ndarray, y: np.ndarray, mu0: float = 1.0, lambda0: float = 1.0
) -> np.ndarray:
    """Posterior mean for constant beta ~ N(mu0, 1/lambda0) and unit noise (paper eq. 10)."""
    return wls_beta(x, y, prior_mean=mu0, prior_precision=lambda0)


def bayes_stepwise_beta(
    x: np.ndarray, y: np.ndarray, mu0: float = 1.0, lambda0: float = 1.0
) -> np.ndarray:
    """Exact posterior mean of the new level for the ``stepwise`` scenario (a reference ceiling).

    Model: one jump at ``k ~ U{1..h-1}`` (first step on the new level), both levels
    ``~ N(mu0, I / lambda0)`` independently, unit noise. ``E[b2 | window]`` is the
    ``p(k | window)``-weighted mean of the conjugate posterior means of the segment ``k..h-1``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, h, d = x.shape
    zero = np.zeros((n, 1))
    xx = x[..., :, None] * x[..., None, :]
    cxx = np.concatenate([np.zeros((n, 1, d, d)), np.cumsum(xx, 1)], 1)
    cxy = np.concatenate([np.zeros((n, 1, d)), np.cumsum(x * y[..., None], 1)], 1)
    cyy = np.concatenate([zero, np.cumsum(y * y, 1)], 1)
    m0 = np.full(d, mu0)

    def segment(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prec = cxx[:, b] - cxx[:, a] + lambda0 * np.eye(d)
        rhs = cxy[:, b] - cxy[:, a] + lambda0 * m0
        mean = np.linalg.solve(prec, rhs[..., None])[..., 0]
        quad = np.einsum("nkd,nkd->nk", mean, rhs)
        logml = -0.5 * (cyy[:, b] - cyy[:, a] - quad) - 0.5 * np.linalg.slogdet(prec)[1]
        return logml, mean

    k = np.arange(1, h)
    l1, _ = segment(np.zeros_like(k), k)
    l2, m2 = segment(k, np.full_like(k, h))
    logp = l1 + l2
    p = np.exp(logp - logp.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.einsum("nk,nkd->nd", p, m2)


def bayes_cyclical_beta(
    x: np.ndarray, y: np.ndarray, n_phase: int = 121, n_speed: int = 81, chunk: int = 2000
) -> np.ndarray:
    """Grid posterior mean of ``beta_h`` for the ``cyclical`` scenario (a reference ceiling).

    ``beta_t = sin(beta0 + t / c)``, ``beta0 ~ N(0, 1)`` (grid on [-4.5, 4.5]),
    ``c ~ U(4, 32)`` (midpoint grid), unit noise; univariate (uses factor 0).
    """
    x = np.asarray(x, dtype=float)[..., 0]
    y = np.asarray(y, dtype=float)
    h = x.shape[1]
    b0 = np.linspace(-4.5, 4.5, n_phase)
    c = 4.0 + (np.arange(n_speed) + 0.5) * 28.0 / n_speed
    g0, gc = (v.ravel() for v in np.meshgrid(b0, c, indexing="ij"))
    paths = np.sin(g0[:, None] + np.arange(h + 1)[None, :] / gc[:, None])
    p_win, target, log_prior = paths[:, :h], paths[:, h], -0.5 * g0**2
    out = []
    for i in range(0, x.shape[0], chunk):
        xs, ys = x[i : i + chunk], y[i : i + chunk]
        ll = (xs * ys) @ p_win.T - 0.5 * (xs * xs) @ (p_win * p_win).T + log_prior
        w = np.exp(ll - ll.max(1, keepdims=True))
        out.append((w @ target) / w.sum(1))
    return np.concatenate(out)[:, None]


def oracle_beta(beta_next: np.ndarray) -> np.ndarray:
    """The true ``beta_{t+1}`` (best attainable hedge on synthetic data)."""
    return np.asarray(beta_next, dtype=float)


def intercept_ols_beta(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """(W)LS slopes of ``y`` on ``[1, x]`` per window (market data: CAPM with an alpha)."""
    ones = np.ones(x.shape[:2] + (1,), dtype=float)
    coef = wls_beta(np.concatenate([ones, np.asarray(x, float)], axis=-1), y, weights)
    return coef[:, 1:]


def sliding_windows(x: np.ndarray, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of one long series: ``x [T, d]`` -> ``[T-h+1, h, d]``, ``y [T]`` ->
    ``[T-h+1, h]``; window i ends at step ``i + h - 1`` (its beta hedges step ``i + h``)."""
    xw = np.lib.stride_tricks.sliding_window_view(x, h, axis=0).transpose(0, 2, 1)
    yw = np.lib.stride_tricks.sliding_window_view(y, h)
    return np.ascontiguousarray(xw), np.ascontiguousarray(yw)


def as_panel(
    x: np.ndarray, y: np.ndarray, x_next: np.ndarray, y_next: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Windows as a panel with one asset per window: ``y (h+1, n)`` and ``x (h+1, n, d)``,
    rows ``0..h-1`` the window and row ``h`` its next step."""
    yp = np.concatenate([np.asarray(y, float), np.asarray(y_next, float)[:, None]], axis=1)
    xp = np.concatenate([np.asarray(x, float), np.asarray(x_next, float)[:, None]], axis=1)
    return yp.T, xp.transpose(1, 0, 2)


def tune_half_life(
    x: np.ndarray,
    y: np.ndarray,
    x_next: np.ndarray,
    y_next: np.ndarray,
    grid: Iterable[float] = DEFAULT_HALF_LIVES,
    intercept: bool = False,
) -> tuple[float, dict[float, float]]:
    """Half-life with the lowest RMSE(y) of the next-step hedge on (validation) windows, and
    every half-life's RMSE: the panel tuner on :func:`as_panel` (EW-WLS over each whole
    window, scored on its next step; ``intercept``: slopes of a fit with an alpha)."""
    yp, xp = as_panel(x, y, x_next, y_next)
    h = yp.shape[0] - 1
    best, table = tune_panel_half_life(yp, xp, slice(h, h + 1), list(grid), intercept=intercept)
    scores = {float(hl): float(r) for hl, r in zip(table["half_life"], table["rmse"], strict=True)}
    return best, scores

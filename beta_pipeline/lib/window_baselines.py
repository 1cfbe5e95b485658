"""Per-sample beta estimators on lookback windows ``x [n, h, d]``, ``y [n, h]`` and their metrics.

Window convention: index ``h-1`` is the newest observation (age 0). Every estimator returns the
hedge ratio for the next step, ``beta [n, d]``. No intercept (the synthetic model has none).
Also a small random-walk-beta Kalman filter (with a constant intercept) for one long series,
used by the ``kalman_step`` study.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

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


# ---------------------------------------------------------------------------------- metrics


def hedge_errors(beta: np.ndarray, x_next: np.ndarray, y_next: np.ndarray) -> np.ndarray:
    """``y_{t+1} - <beta, x_{t+1}>``."""
    return np.asarray(y_next) - np.einsum("nd,nd->n", np.asarray(beta), np.asarray(x_next))


def rmse_y(beta: np.ndarray, x_next: np.ndarray, y_next: np.ndarray) -> float:
    """RMSE of the one-step hedging error."""
    return float(np.sqrt(np.mean(hedge_errors(beta, x_next, y_next) ** 2)))


def rmse_beta(beta: np.ndarray, beta_true: np.ndarray) -> float:
    """RMSE of the beta estimate against the true ``beta_{t+1}`` (over samples and factors)."""
    return float(np.sqrt(np.mean((np.asarray(beta) - np.asarray(beta_true)) ** 2)))


def improvement_pct(rmse_model: float, rmse_ols: float) -> float:
    """``100 (1 - RMSE_model / RMSE_OLS)`` (Table 1)."""
    return 100.0 * (1.0 - rmse_model / rmse_ols)


def oracle_gap_share(rmse_model: float, rmse_ols: float, rmse_oracle: float) -> float:
    """``(RMSE_OLS - RMSE_model) / (RMSE_OLS - RMSE_oracle)``: 0 = OLS, 1 = oracle."""
    return (rmse_ols - rmse_model) / (rmse_ols - rmse_oracle)


def tune_half_life(
    x: np.ndarray,
    y: np.ndarray,
    x_next: np.ndarray,
    y_next: np.ndarray,
    grid: Iterable[float] = DEFAULT_HALF_LIVES,
) -> tuple[float, dict[float, float]]:
    """Half-life with the lowest RMSE(y) on (validation) windows; also the whole grid's RMSEs."""
    scores = {float(hl): rmse_y(ewls_beta(x, y, hl), x_next, y_next) for hl in grid}
    best = min(scores, key=scores.__getitem__)
    return best, scores


# ---------------------------------------------------------------- single-series estimators


def expanding_ols_series(y: np.ndarray, x: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """Entire-period OLS slope with intercept; ``out[t]`` uses observations ``0..t``."""
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    n = np.arange(1, len(y) + 1)
    sx, sy = np.cumsum(x), np.cumsum(y)
    sxx, sxy = np.cumsum(x * x), np.cumsum(x * y)
    var = sxx - sx * sx / n
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sxy - sx * sy / n) / var
    out[n < min_obs] = np.nan
    return out


def rolling_ols_series(y: np.ndarray, x: np.ndarray, window: int = 30) -> np.ndarray:
    """Rolling OLS slope with intercept; ``out[t]`` uses ``t-window+1..t`` (NaN before)."""
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    out = np.full(len(y), np.nan)
    if len(y) < window:
        return out
    k = np.ones(window)

    def roll(v: np.ndarray) -> np.ndarray:
        return np.convolve(v, k, mode="valid")

    sx, sy, sxx, sxy = roll(x), roll(y), roll(x * x), roll(x * y)
    out[window - 1 :] = (sxy - sx * sy / window) / (sxx - sx * sx / window)
    return out


def kalman_rw_beta(
    y: np.ndarray,
    x: np.ndarray,
    state_var: float,
    obs_var: float,
    init_var: float = 1e6,
) -> np.ndarray:
    """Predicted beta ``E[beta_{t+1} | data 0..t]`` of ``y = alpha + beta_t x + e``.

    ``beta`` is a random walk with variance ``state_var``, ``alpha`` a constant (state without
    noise), ``e ~ N(0, obs_var)``; diffuse-ish start (``init_var``). ``out[t]`` uses data to t.
    """
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    a = np.zeros(2)
    p = np.eye(2) * init_var
    q = np.diag([0.0, state_var])
    out = np.empty(len(y))
    for t in range(len(y)):
        z = np.array([1.0, x[t]])
        f = z @ p @ z + obs_var
        k = p @ z / f
        a = a + k * (y[t] - z @ a)
        p = p - np.outer(k, z @ p)
        p = p + q  # random-walk prediction step: a_{t+1|t} = a_{t|t}
        out[t] = a[1]
    return out


def fit_kalman_rw(y: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """MLE of ``(state_var, obs_var)`` with statsmodels; returns them and the predicted betas.

    A custom ``MLEModel`` (state = [alpha, beta], alpha constant, beta a random walk); the
    predicted betas are statsmodels' ``predicted_state`` shifted so ``out[t]`` uses data to t.
    """
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    y = np.asarray(y, float)
    x = np.asarray(x, float)

    class _RandomWalkBeta(MLEModel):
        def __init__(self, endog: np.ndarray, exog: np.ndarray) -> None:
            super().__init__(endog, k_states=2, k_posdef=1, initialization="approximate_diffuse")
            design = np.zeros((1, 2, len(endog)))
            design[0, 0] = 1.0
            design[0, 1] = exog
            self["design"] = design
            self["transition"] = np.eye(2)
            self["selection"] = np.array([[0.0], [1.0]])

        @property
        def param_names(self) -> list[str]:
            return ["obs_var", "state_var"]

        @property
        def start_params(self) -> np.ndarray:
            return np.array([np.var(self.endog) / 2, 1e-2])

        def transform_params(self, unconstrained: np.ndarray) -> np.ndarray:
            return unconstrained**2

        def untransform_params(self, constrained: np.ndarray) -> np.ndarray:
            return constrained**0.5

        def update(self, params: np.ndarray, **kwargs: object) -> None:
            params = super().update(params, **kwargs)
            self["obs_cov", 0, 0] = params[0]
            self["state_cov", 0, 0] = params[1]

    res = _RandomWalkBeta(y, x).fit(disp=False)
    obs_var, state_var = (float(v) for v in res.params)
    return state_var, obs_var, np.asarray(res.predicted_state[1, 1:])

"""Maximum likelihood of the time-varying-beta state space model with statsmodels.

:class:`.kalman_statsmodels.TimeVaryingBetaModel` is a custom ``MLEModel`` with exactly the
model of :func:`.kalman.kalman_filter`: ``alpha`` is a parameter (the observation intercept),
beta the single state, known initialisation ``N(beta0, p0)``. With the same parameters both filters
give the same states (see the tests). Variances are optimised on the log scale.

For a panel, :func:`fit_kalman_panel` fits once on a training span and returns per-asset
parameters for the batched filter; :func:`kalman_betas` does both steps.
:func:`fit_kalman_pooled` fits one ``(q, h)`` to many short series (NeuralBeta's windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from beta_pipeline.lib.estimators._panel import as_y
from beta_pipeline.lib.estimators.kalman import KalmanResult, kalman_filter
from beta_pipeline.lib.estimators.regression import expanding_ols


@dataclass(frozen=True)
class KalmanParams:
    """Per-asset parameters for :func:`.kalman.kalman_filter` (each an (N,) array)."""

    q: np.ndarray
    h: np.ndarray
    alpha: np.ndarray
    phi: np.ndarray
    mu: np.ndarray
    beta0: float = 1.0
    p0: float = 1.0

    def as_kwargs(self) -> dict[str, object]:
        """Keyword arguments of :func:`.kalman.kalman_filter`."""
        return {
            "q": self.q,
            "h": self.h,
            "alpha": self.alpha,
            "phi": self.phi,
            "mu": self.mu,
            "beta0": self.beta0,
            "p0": self.p0,
        }


def fit_kalman_mle(
    y: np.ndarray,
    x: np.ndarray,
    *,
    ar1: bool = False,
    fit_alpha: bool = True,
    beta0: float = 1.0,
    p0: float = 1.0,
    maxiter: int = 500,
    alpha_state: bool = False,
) -> dict[str, float]:
    """MLE of one series' parameters with statsmodels; returns ``{name: value}`` plus
    ``loglike`` (the maximised log-likelihood).

    ``alpha_state``: alpha is a constant state instead of a parameter, beta a random walk,
    both with a diffuse start (:class:`.kalman_statsmodels.InterceptStateBetaModel`; filter
    with ``kalman_filter(..., alpha_var=DIFFUSE_VAR, beta0=0, p0=DIFFUSE_VAR)``); only
    ``h`` and ``q`` are fitted (``ar1``, ``fit_alpha``, ``beta0`` and ``p0`` do not apply).
    """
    from beta_pipeline.lib.estimators import kalman_statsmodels as sm_models

    if alpha_state:
        if ar1:
            raise ValueError("alpha_state supports the random walk only")
        model = sm_models.InterceptStateBetaModel(y, x)
    else:
        model = sm_models.TimeVaryingBetaModel(
            y, x, ar1=ar1, fit_alpha=fit_alpha, beta0=beta0, p0=p0
        )
    res = model.fit(disp=False, maxiter=maxiter, method="lbfgs")
    out = dict(zip(model.param_names, map(float, res.params), strict=True))
    out["loglike"] = float(res.llf)
    return out


def _train_ols(yt: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-asset OLS (alpha, beta, residual variance) over the whole training span."""
    res = expanding_ols(yt, xt if xt.ndim == 1 else xt[:, :, None], min_obs=3, intercept=True)
    return res.alpha[-1], res.beta[-1, :, 0], res.resid_std[-1] ** 2


def fit_kalman_panel(
    y: np.ndarray,
    x: np.ndarray,
    train_rows: int,
    *,
    method: str = "median_snr",
    n_sample: int = 20,
    seed: int = 0,
    ar1: bool = False,
    fit_alpha: bool = True,
    beta0: float = 1.0,
    p0: float = 1.0,
) -> KalmanParams:
    """Fit the filter's parameters once on the first ``train_rows`` rows of a panel.

    Every asset gets ``alpha`` (0 unless ``fit_alpha``) and ``h`` from its training-span OLS
    (intercept and residual variance; assets without training data get the median ``h``).
    The dynamics are shared:

    * ``"median_snr"`` (default): statsmodels MLE on ``n_sample`` random assets; the median
      signal-to-noise ratio ``q_i / h_i`` is applied to every asset, ``q = snr * h``;
    * ``"median"``: the same MLEs, but the median ``q`` and ``h`` are used for all assets;
    * ``"pooled"``: ``snr`` maximises the summed log-likelihood of the batched filter over
      all training series (random walk only).

    With ``ar1`` the median ``phi`` of the sample MLEs is shared and ``mu`` is each asset's
    training OLS beta.
    """
    yy = as_y(y)
    t_len, n = yy.shape
    xx = np.asarray(x, dtype=np.float64)
    xx = xx[:, 0] if xx.ndim == 2 and xx.shape[1] == 1 else xx
    if not 1 <= train_rows <= t_len:
        raise ValueError(f"train_rows must be in 1..{t_len}")
    yt, xt = yy[:train_rows], xx[:train_rows]
    a_ols, b_ols, h_ols = _train_ols(yt, xt)
    h_med = float(np.nanmedian(h_ols)) if np.isfinite(h_ols).any() else 1.0
    h_i = np.where(np.isfinite(h_ols) & (h_ols > 0), h_ols, h_med)
    alpha = np.where(np.isfinite(a_ols), a_ols, 0.0) if fit_alpha else np.zeros(n)
    mu = np.where(np.isfinite(b_ols), b_ols, beta0)
    phi = np.ones(n)
    if method == "pooled":
        if ar1:
            raise ValueError("method='pooled' supports the random walk only")

        def nll(log_snr: float) -> float:
            res = kalman_filter(yt, xt, 10.0**log_snr * h_i, h_i, alpha, beta0=beta0, p0=p0)
            return -float(res.loglike.sum())

        opt = optimize.minimize_scalar(nll, bounds=(-12.0, 2.0), method="bounded")
        snr = 10.0**opt.x
        return KalmanParams(snr * h_i, h_i, alpha, phi, mu, beta0, p0)
    if method not in ("median_snr", "median"):
        raise ValueError(f"unknown method {method!r}")
    xt2 = xt[:, None] if xt.ndim == 1 else xt
    usable = np.flatnonzero((np.isfinite(yt) & np.isfinite(xt2)).sum(axis=0) >= 30)
    if usable.size == 0:
        raise ValueError("no asset has 30 usable training rows")
    rng = np.random.default_rng(seed)
    pick = rng.choice(usable, size=min(n_sample, usable.size), replace=False)
    fits = []
    for i in pick:
        xi = xt if xt.ndim == 1 else xt[:, i]
        fits.append(fit_kalman_mle(yt[:, i], xi, ar1=ar1, fit_alpha=fit_alpha, beta0=beta0, p0=p0))
    q_s = np.array([f["q"] for f in fits])
    h_s = np.array([f["h"] for f in fits])
    if ar1:
        phi = np.full(n, float(np.median([f["phi"] for f in fits])))
    if method == "median_snr":
        q = float(np.median(q_s / h_s)) * h_i
        h = h_i
    else:
        q = np.full(n, float(np.median(q_s)))
        h = np.full(n, float(np.median(h_s)))
    return KalmanParams(q, h, alpha, phi, mu, beta0, p0)


def fit_kalman_pooled(
    y: np.ndarray,
    x: np.ndarray,
    *,
    alpha: float = 0.0,
    beta0: float = 1.0,
    p0: float = 1.0,
    start: tuple[float, float] = (1e-2, 1.0),
    xatol: float = 1e-3,
) -> dict[str, float]:
    """One ``(q, h)`` for every column of ``y`` (say, independent windows): the maximum of the
    summed log-likelihood of the batched filter (Nelder-Mead on ``log q, log h`` from
    ``start``). Returns ``q``, ``h`` and ``loglike``."""

    def nll(log_params: np.ndarray) -> float:
        q, h = np.exp(log_params)
        res = kalman_filter(y, x, q, h, alpha, beta0=beta0, p0=p0)
        return -float(res.loglike.sum())

    opt = optimize.minimize(nll, np.log(start), method="Nelder-Mead", options={"xatol": xatol})
    q, h = (float(v) for v in np.exp(opt.x))
    return {"q": q, "h": h, "loglike": -float(opt.fun)}


def kalman_betas(
    y: np.ndarray,
    x: np.ndarray,
    train_rows: int,
    **fit_kwargs: object,
) -> tuple[KalmanResult, KalmanParams]:
    """Fit with :func:`fit_kalman_panel` on the first ``train_rows`` rows, then run the
    batched filter over the whole panel."""
    params = fit_kalman_panel(y, x, train_rows, **fit_kwargs)  # type: ignore[arg-type]
    return kalman_filter(y, x, **params.as_kwargs()), params  # type: ignore[arg-type]

"""Batched Kalman filter for time-varying betas over a (dates × assets) panel.

Model, per asset (one factor):

* measurement ``y_t = alpha + beta_t x_t + e_t``, ``e_t ~ N(0, h)``;
* transition ``beta_{t+1} - mu = phi (beta_t - mu) + eta_t``, ``eta_t ~ N(0, q)``
  (random walk: ``phi = 1``; AR(1): ``|phi| < 1``);
* prior ``beta_0 ~ N(beta0, p0)`` for the first row (statsmodels' "known" initialisation).

Intercept convention: ``alpha`` is a fixed parameter, not a state. It is estimated together
with ``q`` and ``h`` by maximum likelihood (:mod:`.kalman_mle`) or taken from a training-span
OLS; the filter runs on ``y - alpha``. A missing y or x skips the update (prediction only).

Outputs, for row t: ``filtered`` = E[beta_t | data to t] and ``predicted`` =
E[beta_{t+1} | data to t], the hedge ratio for row t+1 (equal to ``filtered`` for a random
walk), with their variances. All parameters are scalars or per-asset (N,) arrays.

With ``alpha_var > 0`` the intercept is a second, constant state with prior
``N(alpha, alpha_var)`` instead (statsmodels' approximate diffuse start: ``alpha_var`` and
``p0`` = :data:`DIFFUSE_VAR`), the model of the ``kalman_step`` study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beta_pipeline.lib.estimators._panel import as_y

ArrayLike = float | np.ndarray

#: Prior variance of an approximately diffuse state (statsmodels' ``approximate_diffuse``).
DIFFUSE_VAR = 1e6


@dataclass(frozen=True)
class KalmanResult:
    """Filter output; every (T, N) array's row t uses data up to and including row t."""

    filtered: np.ndarray  #: (T, N) E[beta_t | data to t]
    filtered_var: np.ndarray  #: (T, N)
    predicted: np.ndarray  #: (T, N) E[beta_{t+1} | data to t] (the hedge dated t)
    predicted_var: np.ndarray  #: (T, N)
    loglike: np.ndarray  #: (N,) Gaussian log-likelihood of the observed rows (or NaN)
    n_obs: np.ndarray  #: (T, N) int32 observations used up to t


def kalman_filter(
    y: np.ndarray,
    x: np.ndarray,
    q: ArrayLike,
    h: ArrayLike,
    alpha: ArrayLike = 0.0,
    *,
    phi: ArrayLike = 1.0,
    mu: ArrayLike = 0.0,
    beta0: ArrayLike = 1.0,
    p0: ArrayLike = 1.0,
    loglike: bool = True,
    alpha_var: ArrayLike = 0.0,
) -> KalmanResult:
    """Run the scalar-state filter for all assets at once (vectorised over assets).

    ``y``: (T, N) or (T,); ``x``: (T,) shared or (T, N) per asset; NaN = missing.
    ``q``, ``h``, ``alpha``, ``phi``, ``mu``, ``beta0``, ``p0``: scalars or (N,) arrays.
    ``loglike=False`` skips the log-likelihood (NaN), saving a few passes over the panel.
    ``alpha_var > 0``: the intercept is a constant state with prior ``N(alpha, alpha_var)``
    (:func:`_intercept_state_filter`) instead of a fixed parameter.
    """
    yy = as_y(y)
    t_len, n = yy.shape
    xx = np.asarray(x, dtype=np.float64)
    if xx.ndim == 2 and xx.shape[1] == 1 and n > 1:
        xx = xx[:, 0]
    xx = xx[:, None] if xx.ndim == 1 else xx
    if xx.shape[0] != t_len or xx.shape[1] not in (1, n):
        raise ValueError(f"x must be (T,) or (T, N) matching y {yy.shape}, got {xx.shape}")
    vec = [np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in (q, h, alpha)]
    q_, h_, alpha_ = vec
    phi_, mu_, b0, p0_ = (
        np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in (phi, mu, beta0, p0)
    )
    if np.any(h_ <= 0) or np.any(q_ < 0) or np.any(p0_ < 0):
        raise ValueError("need h > 0, q >= 0 and p0 >= 0")
    obs = np.isfinite(yy) & np.isfinite(xx)
    a_var = np.broadcast_to(np.asarray(alpha_var, dtype=np.float64), (n,))
    if np.any(a_var < 0):
        raise ValueError("need alpha_var >= 0")
    if np.any(a_var > 0):
        states = (alpha_, a_var, b0, p0_, q_, h_, phi_, mu_)
        return _intercept_state_filter(yy, xx, obs, states, loglike)
    x0 = np.where(obs, xx, 0.0)  # a missing row has x = 0: gain 0, state unchanged
    y0 = np.where(obs, yy - alpha_, 0.0)
    x2 = x0 * x0
    random_walk = bool(np.all(phi_ == 1.0))
    c = mu_ * (1.0 - phi_)
    phi2 = phi_ * phi_
    filt = np.empty((t_len, n))
    filt_var = np.empty((t_len, n))
    pred = np.empty((t_len, n)) if not random_walk else filt
    pred_var = np.empty((t_len, n))
    innov = np.empty((t_len, n))
    f_all = np.empty((t_len, n))
    a = b0.copy()
    p = p0_.copy()
    r = np.empty(n)
    gv = np.empty(n)
    rows = zip(x0, x2, y0, f_all, innov, filt, filt_var, pred, pred_var, strict=True)
    for xt, x2t, yt, f, v, af, pf, pa, pv in rows:
        np.multiply(x2t, p, out=f)  # f = x² p + h
        f += h_
        np.divide(p, f, out=r)  # gain = r x
        np.multiply(a, xt, out=v)  # v = y - alpha - a x
        np.subtract(yt, v, out=v)
        np.multiply(r, xt, out=gv)
        gv *= v
        np.add(a, gv, out=af)  # filtered mean and variance p h / f
        np.multiply(r, h_, out=pf)
        if random_walk:
            a = af
        else:
            a = np.multiply(af, phi_, out=pa)
            a += c
            np.multiply(pf, phi2, out=pv)
            pf = pv
        p = np.add(pf, q_, out=pv)
    n_obs = _count_obs(obs)
    if loglike:
        # unobserved rows have v = 0 and f = h: drop their log h instead of masking
        n_used = n_obs[-1] if t_len else np.zeros(n, dtype=np.int32)
        quad = np.divide(innov * innov, f_all).sum(axis=0)
        logdet = np.log(f_all).sum(axis=0) - (t_len - n_used) * np.log(h_)
        ll = -0.5 * (n_used * np.log(2.0 * np.pi) + logdet + quad)
    else:
        ll = np.full(n, np.nan)
    return KalmanResult(
        filtered=filt,
        filtered_var=filt_var,
        predicted=pred,
        predicted_var=pred_var,
        loglike=ll,
        n_obs=n_obs,
    )


def _count_obs(obs: np.ndarray) -> np.ndarray:
    """(T, N) int32 running count of observed rows."""
    t_len, n = obs.shape
    n_obs = np.empty((t_len, n), dtype=np.int32)
    if t_len:
        np.copyto(n_obs[0], obs[0])
    for t in range(1, t_len):  # row loop: a strided cumsum down axis 0 is slower
        np.add(n_obs[t - 1], obs[t], out=n_obs[t])
    return n_obs


def _intercept_state_filter(
    yy: np.ndarray,
    xx: np.ndarray,
    obs: np.ndarray,
    states: tuple[np.ndarray, ...],
    loglike: bool,
) -> KalmanResult:
    """Two states per asset, ``[alpha, beta]`` with measurement row ``[1, x_t]``: alpha is
    constant (prior ``N(alpha, alpha_var)``), beta moves as in :func:`kalman_filter`
    (prior ``N(beta0, p0)``, uncorrelated with alpha). ``states`` = (alpha, alpha_var,
    beta0, p0, q, h, phi, mu), each (N,)."""
    alpha, a_var, b0, p0, q, h, phi, mu = states
    t_len, n = yy.shape
    on = obs.astype(np.float64)  # 1 = update, 0 = prediction only
    x0 = np.where(obs, xx, 0.0)
    y0 = np.where(obs, yy, 0.0)
    c = mu * (1.0 - phi)
    phi2 = phi * phi
    a_a, a_b = alpha.copy(), b0.copy()
    p_aa, p_ab, p_bb = a_var.copy(), np.zeros(n), p0.copy()
    filt, filt_var, pred, pred_var = (np.empty((t_len, n)) for _ in range(4))
    ll = np.zeros(n)
    for t in range(t_len):
        xt, ot = x0[t], on[t]
        m_a = p_aa + xt * p_ab  # (P z)_alpha and (P z)_beta
        m_b = p_ab + xt * p_bb
        f = m_a + xt * m_b + h
        v = (y0[t] - a_a - xt * a_b) * ot
        k_a, k_b = m_a / f * ot, m_b / f * ot
        a_a = a_a + k_a * v
        a_b = a_b + k_b * v
        p_aa = p_aa - k_a * m_a
        p_ab = p_ab - k_a * m_b
        p_bb = p_bb - k_b * m_b
        filt[t], filt_var[t] = a_b, p_bb
        if loglike:
            ll -= 0.5 * ot * (np.log(2.0 * np.pi * f) + v * v / f)
        a_b = phi * a_b + c
        p_ab = phi * p_ab
        p_bb = phi2 * p_bb + q
        pred[t], pred_var[t] = a_b, p_bb
    return KalmanResult(
        filtered=filt,
        filtered_var=filt_var,
        predicted=pred,
        predicted_var=pred_var,
        loglike=ll if loglike else np.full(n, np.nan),
        n_obs=_count_obs(obs),
    )


def kalman_filter_multi(
    y: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    h: np.ndarray,
    alpha: np.ndarray,
    p0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk multi-factor filter for N series sharing the regressors (d betas per
    series; for d = 1 it is :func:`kalman_filter` with ``beta0 = 0``).

    ``y``: (T, N); ``x``: (T, d); ``q``, ``p0``: (N, d) diagonals; ``h``, ``alpha``: (N,).
    Returns the filtered betas (T, N, d) = E[beta_t | data to t] (= the hedge for t+1) and
    the Gaussian log-likelihood (N,). A missing y or x skips the update.
    """
    t_len, n = y.shape
    d = x.shape[1]
    a = np.zeros((n, d))
    p = np.einsum("nd,de->nde", p0, np.eye(d))
    qm = np.einsum("nd,de->nde", q, np.eye(d))
    out = np.empty((t_len, n, d))
    ll = np.zeros(n)
    for t in range(t_len):
        xt = x[t]
        obs = np.isfinite(y[t]) & bool(np.isfinite(xt).all())
        if obs.any():
            px = p @ xt  # (N, d)
            f = px @ xt + h  # (N,)
            v = y[t] - alpha - a @ xt
            k = px / f[:, None]
            upd = obs[:, None]
            a = np.where(upd, a + k * np.nan_to_num(v)[:, None], a)
            p = np.where(upd[:, :, None], p - k[:, :, None] * px[:, None, :], p)
            ll += np.where(obs, -0.5 * (np.log(2 * np.pi * f) + np.nan_to_num(v) ** 2 / f), 0.0)
        out[t] = a
        p = p + qm
    return out, ll

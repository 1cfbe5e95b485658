"""Batched Kalman filter against statsmodels, and the MLE helpers."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from beta_pipeline.lib.estimators import (
    TimeVaryingBetaModel,
    fit_kalman_mle,
    fit_kalman_panel,
    fit_kalman_pooled,
    kalman_betas,
    kalman_filter,
)
from beta_pipeline.lib.estimators.kalman import DIFFUSE_VAR
from beta_pipeline.lib.estimators.kalman_statsmodels import InterceptStateBetaModel


def _series(seed: int, t: int = 400, alpha: float = 0.0003):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(t) * 0.01
    beta = 1.0 + np.cumsum(rng.normal(0, 0.05, t))
    y = alpha + beta * x + rng.normal(0, 0.01, t)
    y[rng.random(t) < 0.05] = np.nan
    x[7] = np.nan
    return y, x, beta


@pytest.mark.parametrize("ar1", [False, True])
def test_batched_filter_matches_statsmodels(ar1):
    ys, xs = [], []
    for s in range(3):
        y, x, _ = _series(s)
        ys.append(y)
        xs.append(x)
    y = np.column_stack(ys)
    x = np.column_stack(xs)
    q = np.array([1e-3, 2e-3, 5e-4])
    h = np.array([1e-4, 2e-4, 1e-4])
    alpha = np.array([3e-4, 0.0, -1e-4])
    extra = {"phi": 0.97, "mu": 1.1} if ar1 else {}
    res = kalman_filter(y, x, q, h, alpha, beta0=0.8, p0=2.0, **extra)
    for i in range(3):
        mod = TimeVaryingBetaModel(y[:, i], x[:, i], ar1=ar1, beta0=0.8, p0=2.0)
        params = [alpha[i], h[i], q[i]] + ([0.97, 1.1] if ar1 else [])
        ref = mod.filter(params)
        np.testing.assert_allclose(res.filtered[:, i], ref.filtered_state[0], atol=1e-10)
        np.testing.assert_allclose(res.predicted[:, i], ref.predicted_state[0, 1:], atol=1e-10)
        np.testing.assert_allclose(
            res.predicted_var[:, i], ref.predicted_state_cov[0, 0, 1:], rtol=1e-9
        )
        np.testing.assert_allclose(res.filtered_var[:, i], ref.filtered_state_cov[0, 0], rtol=1e-9)
        assert res.loglike[i] == pytest.approx(ref.llf, rel=1e-10)
    obs = np.isfinite(y) & np.isfinite(x)
    np.testing.assert_array_equal(res.n_obs[-1], obs.sum(axis=0))


def test_shared_x_and_missing_rows_skip_the_update():
    y, x, _ = _series(4)
    res = kalman_filter(np.column_stack([y, y]), x, 1e-3, 1e-4)
    np.testing.assert_array_equal(res.filtered[:, 0], res.filtered[:, 1])
    miss = np.flatnonzero(~np.isfinite(y))
    t = miss[miss > 0][0]
    assert res.filtered[t, 0] == res.predicted[t - 1, 0]
    assert res.filtered_var[t, 0] == res.predicted_var[t - 1, 0]


def test_mle_matches_sarimax_time_varying_regression():
    rng = np.random.default_rng(11)
    t = 500
    x = rng.standard_normal(t) * 0.01
    beta = 1.0 + np.cumsum(rng.normal(0, 0.06, t))
    y = beta * x + rng.normal(0, 0.01, t)
    ours = fit_kalman_mle(y, x, fit_alpha=False)
    mod = sm.tsa.SARIMAX(
        y, exog=x, order=(0, 0, 0), time_varying_regression=True, mle_regression=False
    )
    mod.ssm.initialize_known(np.array([1.0]), np.array([[1.0]]))
    ref = mod.fit(disp=False)
    names = list(mod.param_names)
    q_ref = ref.params[names.index("var.x1")]
    h_ref = ref.params[names.index("var.measurement_error")]
    assert ours["q"] == pytest.approx(q_ref, rel=1e-2)
    assert ours["h"] == pytest.approx(h_ref, rel=1e-2)


def test_mle_with_alpha_recovers_parameters_and_filter_agrees():
    y, x, _ = _series(5, t=600, alpha=0.002)
    fit = fit_kalman_mle(y, x)
    assert fit["alpha"] == pytest.approx(0.002, abs=0.001)
    assert fit["h"] == pytest.approx(1e-4, rel=0.3)
    mod = TimeVaryingBetaModel(y, x)
    ref = mod.filter([fit["alpha"], fit["h"], fit["q"]])
    ours = kalman_filter(y, x, fit["q"], fit["h"], fit["alpha"])
    np.testing.assert_allclose(ours.predicted[:, 0], ref.predicted_state[0, 1:], atol=1e-8)
    assert ours.loglike[0] == pytest.approx(fit["loglike"], rel=1e-9)


@pytest.mark.parametrize("method", ["median_snr", "median", "pooled"])
def test_panel_fit_then_batched_filter(method):
    rng = np.random.default_rng(2)
    t, n = 300, 6
    x = rng.standard_normal(t) * 0.01
    beta = 1.0 + np.cumsum(rng.normal(0, 0.05, (t, n)), axis=0)
    vol = rng.uniform(0.005, 0.02, n)
    y = beta * x[:, None] + rng.standard_normal((t, n)) * vol
    res, params = kalman_betas(y, x, 200, method=method, n_sample=3)
    assert params.q.shape == (n,) and np.all(params.q > 0)
    if method == "median":  # one h for all assets
        assert np.all(params.h == params.h[0])
    else:  # per-asset h from the training OLS residuals
        np.testing.assert_allclose(np.sqrt(params.h), vol, rtol=0.3)
    # tracks the true beta better than a constant 1
    err = np.sqrt(np.mean((res.predicted[100:-1] - beta[101:]) ** 2))
    assert err < np.sqrt(np.mean((1.0 - beta[101:]) ** 2))


def test_ar1_panel_fit_shares_phi():
    y, x, _ = _series(8, t=300)
    params = fit_kalman_panel(np.column_stack([y, y]), x, 250, ar1=True, n_sample=1)
    assert params.phi[0] == params.phi[1] and -1 < params.phi[0] <= 1


@pytest.mark.parametrize("ar1", [False, True])
def test_intercept_state_filter_matches_statsmodels(ar1):
    """alpha as a constant state: statsmodels' two-state model (AR(1) beta by hand)."""
    y, x, _ = _series(5)
    q, h, phi, mu = 1e-3, 1e-4, (0.97 if ar1 else 1.0), (1.1 if ar1 else 0.0)
    kw = {"phi": phi, "mu": mu, "beta0": 0.8, "p0": 2.0, "alpha_var": 0.5}
    res = kalman_filter(np.column_stack([y, y]), x, q, h, 3e-4, **kw)
    obs = np.isfinite(y) & np.isfinite(x)
    assert not obs[7]  # a missing x skips the update as a missing y does
    mod = InterceptStateBetaModel(np.where(obs, y, np.nan), np.where(obs, x, 0.0))
    mod.ssm.initialize_known(np.array([3e-4, 0.8]), np.diag([0.5, 2.0]))
    mod["transition", 1, 1] = phi
    mod["state_intercept", 1, 0] = mu * (1.0 - phi)
    ref = mod.filter([h, q])
    for i in range(2):
        np.testing.assert_allclose(res.predicted[:, i], ref.predicted_state[1, 1:], atol=1e-10)
        np.testing.assert_allclose(res.filtered[:, i], ref.filtered_state[1], atol=1e-10)
        np.testing.assert_allclose(
            res.predicted_var[:, i], ref.predicted_state_cov[1, 1, 1:], rtol=1e-9
        )
        np.testing.assert_allclose(res.filtered_var[:, i], ref.filtered_state_cov[1, 1], rtol=1e-9)
        assert res.loglike[i] == pytest.approx(ref.llf, rel=1e-10)


def test_intercept_state_mle_is_statsmodels():
    rng = np.random.default_rng(8)
    x = rng.standard_normal(300)
    y = 0.5 + (2 + np.cumsum(rng.normal(0, 0.1, 300))) * x + rng.standard_normal(300)
    fit = fit_kalman_mle(y, x, alpha_state=True)
    ref = InterceptStateBetaModel(y, x).fit(disp=False)
    assert [fit["h"], fit["q"]] == pytest.approx(list(ref.params), rel=1e-12)
    assert fit["loglike"] == pytest.approx(ref.llf, rel=1e-12)
    kw = {"beta0": 0.0, "p0": DIFFUSE_VAR, "alpha_var": DIFFUSE_VAR}
    res = kalman_filter(y, x, fit["q"], fit["h"], 0.0, **kw)
    np.testing.assert_allclose(res.predicted[:, 0], ref.predicted_state[1, 1:], atol=1e-8)
    with pytest.raises(ValueError, match="random walk"):
        fit_kalman_mle(y, x, alpha_state=True, ar1=True)


def test_pooled_fit_recovers_shared_variances():
    rng = np.random.default_rng(9)
    t, n = 64, 400
    x = rng.standard_t(10, (t, n))
    beta = 1.0 + np.cumsum(rng.normal(0, np.sqrt(0.02), (t, n)), axis=0)
    y = beta * x + rng.normal(0, np.sqrt(0.5), (t, n))
    fit = fit_kalman_pooled(y, x, beta0=1.0, p0=0.02, start=(0.01, 1.0))
    assert fit["q"] == pytest.approx(0.02, rel=0.3) and fit["h"] == pytest.approx(0.5, rel=0.1)
    ll = kalman_filter(y, x, fit["q"], fit["h"], beta0=1.0, p0=0.02).loglike.sum()
    assert fit["loglike"] == pytest.approx(ll)
    for q, h in ((fit["q"] * 1.5, fit["h"]), (fit["q"], fit["h"] * 0.8)):
        assert kalman_filter(y, x, q, h, beta0=1.0, p0=0.02).loglike.sum() < ll

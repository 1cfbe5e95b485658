"""Rolling / expanding OLS engine against statsmodels (OLS per window and RollingOLS)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.regression.rolling import RollingOLS

from beta_pipeline.lib.estimators import expanding_ols, rolling_ols, rolling_regression

TOL = 1e-8


def _panel(seed: int, t: int, n: int, k: int, gaps: float = 0.08):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, k)) * 0.01 + rng.normal(0, 0.001, k)
    b = rng.normal(1.0, 0.5, (k, n))
    y = 0.0005 + x @ b + rng.standard_normal((t, n)) * 0.015
    y[rng.random((t, n)) < gaps] = np.nan
    y[: t // 3, 1] = np.nan  # late listing
    y[t // 2 : t // 2 + 15, 2] = np.nan  # a gap longer than nothing
    x[rng.random(t) < 0.02, 0] = np.nan  # missing factor rows
    return y, x


def _direct(y, x, t, i, window, intercept):
    lo = 0 if window is None else max(0, t - window + 1)
    yy, xx = y[lo : t + 1, i], x[lo : t + 1]
    ok = np.isfinite(yy) & np.isfinite(xx).all(axis=1)
    if ok.sum() <= xx.shape[1] + int(intercept):
        return None, int(ok.sum())
    design = sm.add_constant(xx[ok], has_constant="add") if intercept else xx[ok]
    return sm.OLS(yy[ok], design).fit(), int(ok.sum())


def _check(res, fit, t, i, intercept):
    k = res.beta.shape[2]
    slopes = fit.params[1:] if intercept else fit.params
    ses = fit.bse[1:] if intercept else fit.bse
    np.testing.assert_allclose(res.beta[t, i], slopes, rtol=0, atol=TOL)
    np.testing.assert_allclose(res.beta_se[t, i], ses, rtol=1e-7, atol=1e-10)
    assert res.r2[t, i] == pytest.approx(fit.rsquared, abs=TOL)
    assert res.resid_std[t, i] == pytest.approx(np.sqrt(fit.scale), rel=1e-7)
    if intercept:
        assert res.alpha[t, i] == pytest.approx(fit.params[0], abs=TOL)
    else:
        assert np.isnan(res.alpha[t, i])
    assert k == len(slopes)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("window", [40, None])
def test_matches_statsmodels_ols_on_random_windows(k, intercept, window):
    y, x = _panel(10 + k, 260, 6, k)
    min_obs = 25
    res = rolling_regression(y, x, window, min_obs=min_obs, intercept=intercept, chunk_rows=37)
    rng = np.random.default_rng(k)
    checked = 0
    for t in rng.choice(np.arange(5, 260), size=25, replace=False):
        for i in range(y.shape[1]):
            fit, n = _direct(y, x, t, i, window, intercept)
            assert res.n_obs[t, i] == n
            if n < min_obs:
                assert np.isnan(res.beta[t, i]).all() and np.isnan(res.r2[t, i])
                continue
            _check(res, fit, t, i, intercept)
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("intercept", [True, False])
def test_matches_statsmodels_rolling_ols(k, intercept):
    y, x = _panel(20 + k, 300, 4, k)
    window, min_obs = 50, 30
    res = rolling_ols(y, x, window, min_obs=min_obs, intercept=intercept)
    for i in range(y.shape[1]):
        exog = sm.add_constant(x, has_constant="add") if intercept else x
        ref = RollingOLS(y[:, i], exog, window=window, min_nobs=min_obs, expanding=True).fit()
        params = np.asarray(ref.params)
        slopes = params[:, 1:] if intercept else params
        ses = np.asarray(ref.bse)[:, 1:] if intercept else np.asarray(ref.bse)
        np.testing.assert_allclose(res.beta[:, i], slopes, atol=TOL, rtol=0)
        np.testing.assert_allclose(res.beta_se[:, i], ses, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(res.r2[:, i], np.asarray(ref.rsquared), atol=TOL, rtol=0)
        np.testing.assert_allclose(
            res.resid_std[:, i], np.sqrt(np.asarray(ref.mse_resid)), rtol=1e-7, atol=0
        )
        if intercept:
            np.testing.assert_allclose(res.alpha[:, i], params[:, 0], atol=TOL, rtol=0)


def test_per_asset_factors_equal_column_by_column_runs():
    rng = np.random.default_rng(3)
    t, n = 200, 5
    x = rng.standard_normal((t, n, 2)) * 0.01
    y = np.einsum("tnk,nk->tn", x, rng.normal(1, 0.3, (n, 2))) + rng.normal(0, 0.01, (t, n))
    y[rng.random((t, n)) < 0.1] = np.nan
    x[rng.random((t, n, 2)) < 0.03] = np.nan
    res = rolling_ols(y, x, 30, min_obs=20)
    for i in range(n):
        one = rolling_ols(y[:, i], x[:, i, :], 30, min_obs=20)
        np.testing.assert_array_equal(res.n_obs[:, i], one.n_obs[:, 0])
        np.testing.assert_allclose(res.beta[:, i], one.beta[:, 0], atol=1e-12, equal_nan=True)


def test_expanding_is_all_rows_up_to_t():
    y, x = _panel(5, 400, 3, 1)
    res = expanding_ols(y, x, min_obs=10, chunk_rows=64)
    for t in (15, 130, 399):
        for i in range(3):
            fit, n = _direct(y, x, t, i, None, True)
            if n >= 10:
                _check(res, fit, t, i, True)


def test_stability_on_long_series_with_level_offsets():
    rng = np.random.default_rng(7)
    t = 7_500
    x = 250.0 + np.cumsum(rng.normal(0, 0.01, t)) + rng.normal(0, 0.02, t)
    y = np.column_stack([1e4 + 3 * x + rng.normal(0, 0.05, t), -500 + 0.2 * x])
    y[:, 1] += rng.normal(0, 0.01, t)
    window = 250
    res = rolling_ols(y, x, window)
    for tt in (t - 1, t - 2, t - 777):
        for i in range(2):
            fit, _ = _direct(y, x[:, None], tt, i, window, True)
            _check(res, fit, tt, i, True)
    # a single running cumulative sum over the whole series would lose these digits
    ref = expanding_ols(y, x)
    for i in range(2):
        fit, _ = _direct(y, x[:, None], t - 1, i, None, True)
        np.testing.assert_allclose(ref.beta[t - 1, i], fit.params[1:], atol=1e-8, rtol=0)


def test_chunking_and_threads_do_not_change_results():
    y, x = _panel(9, 500, 37, 2)
    a = rolling_ols(y, x, 60, min_obs=40)
    b = rolling_ols(y, x, 60, min_obs=40, chunk_rows=61, block_cols=5, n_threads=3)
    np.testing.assert_allclose(a.beta, b.beta, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(a.n_obs, b.n_obs)


def test_degenerate_windows_are_nan():
    t = 50
    x = np.r_[np.full(30, 0.01), np.linspace(-0.01, 0.01, 20)]
    y = np.column_stack([2 * x + 0.001, np.full(t, np.nan)])
    res = rolling_ols(y, x, 20, min_obs=5)
    assert np.isnan(res.beta[:29, 0]).all()  # x constant inside the window
    assert res.beta[-1, 0, 0] == pytest.approx(2.0, abs=1e-9)
    assert np.isnan(res.beta[:, 1]).all() and (res.n_obs[:, 1] == 0).all()
    # n == number of params: slopes exist, residual std does not
    two = rolling_ols(np.array([1.0, 3.0]), np.array([0.0, 1.0]), 2, min_obs=2)
    assert two.beta[1, 0, 0] == pytest.approx(2.0) and np.isnan(two.resid_std[1, 0])


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        rolling_ols(np.zeros((10, 2)), np.zeros((9, 1)), 5)
    with pytest.raises(ValueError):
        rolling_ols(np.zeros((10, 2)), np.zeros((10, 3, 1)), 5)

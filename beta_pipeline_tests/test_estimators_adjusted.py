"""Blume, Vasicek, Dimson and Welch adjusted betas on small hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from beta_pipeline.lib.estimators import blume, dimson, rolling_ols, vasicek, welch, welch_clip


def test_blume():
    np.testing.assert_allclose(blume(np.array([0.0, 1.0, 2.0])), [0.33, 1.0, 1.67])
    np.testing.assert_allclose(
        blume(np.array([[2.0, 0.5]]), 0.5, np.array([1.0, 0.0])), [[1.5, 0.25]]
    )


def test_vasicek_by_hand():
    beta = np.array([[0.5, 1.0, 1.5, np.nan]])
    se = np.array([[0.5, 0.0, 1.0, 0.2]])
    # mean 1, var (ddof 1) = 0.25
    out = vasicek(beta, se)
    expected = [
        (0.25 * 0.5 + 0.25 * 1.0) / 0.5,
        1.0,
        (0.25 * 1.5 + 1.0 * 1.0) / 1.25,
        np.nan,
    ]
    np.testing.assert_allclose(out[0], expected)
    # dates are independent; a date with one beta has no cross-sectional variance
    two = vasicek(np.array([[2.0, np.nan], [1.0, 3.0]]), np.array([[0.1, 0.1], [1.0, 1.0]]))
    assert np.isnan(two[0, 0])
    np.testing.assert_allclose(two[1], [(2 * 1 + 1 * 2) / 3, (2 * 3 + 1 * 2) / 3])


def test_welch_clip_bounds():
    y = np.array([[0.10, -0.10, 0.01], [0.10, -0.10, 0.01], [0.5, 0.0, np.nan]])
    m = np.array([0.01, -0.01, 0.0])
    out = welch_clip(y, m)
    np.testing.assert_allclose(out[0], [0.04, -0.02, 0.01])  # [-2 m, 4 m] for m > 0
    np.testing.assert_allclose(out[1], [0.02, -0.04, 0.01])  # [4 m, -2 m] for m < 0
    assert out[2, 0] == 0.0 and out[2, 1] == 0.0 and np.isnan(out[2, 2])


def test_welch_equals_ols_on_clipped_returns():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(200) * 0.01
    y = 1.2 * x[:, None] + rng.standard_t(2, (200, 3)) * 0.01
    res = welch(y, x, 60, min_obs=40)
    ref = rolling_ols(welch_clip(y, x), x, 60, min_obs=40)
    np.testing.assert_allclose(res.beta, ref.beta, equal_nan=True)
    assert np.nanmax(np.abs(res.beta - rolling_ols(y, x, 60, min_obs=40).beta)) > 0


def test_dimson_matches_direct_lead_lag_regression():
    rng = np.random.default_rng(4)
    t, h = 150, 40
    x = rng.standard_normal(t) * 0.01
    y = 0.3 * np.r_[0.0, x[:-1]] + 0.8 * x + rng.normal(0, 0.005, t)
    y[rng.random(t) < 0.1] = np.nan
    res = dimson(y, x, h, min_obs=20)
    for tt in (45, 100, 149):
        rows = np.arange(tt - 1 - h + 1, tt)  # window ends one row before tt
        design = np.column_stack([x[rows - 1], x[rows], x[rows + 1]])
        ok = np.isfinite(y[rows])
        fit = sm.OLS(y[rows][ok], sm.add_constant(design[ok])).fit()
        c = np.array([0.0, 1.0, 1.0, 1.0])
        assert res.beta[tt, 0, 0] == pytest.approx(fit.params[1:].sum(), abs=1e-10)
        assert res.beta_se[tt, 0, 0] == pytest.approx(np.sqrt(c @ fit.cov_params() @ c), rel=1e-7)
        assert res.alpha[tt, 0] == pytest.approx(fit.params[0], abs=1e-10)
        assert res.r2[tt, 0] == pytest.approx(fit.rsquared, abs=1e-10)
        assert res.n_obs[tt, 0] == ok.sum()
    assert np.isnan(res.beta[0]).all() and res.beta[-1, 0, 0] == pytest.approx(1.1, abs=0.15)

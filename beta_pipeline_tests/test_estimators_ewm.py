"""Exponentially weighted WLS against statsmodels WLS, and half-life tuning."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from beta_pipeline.lib.estimators import ew_wls, tune_half_life


def _panel(seed: int, t: int = 240, n: int = 5, k: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, k)) * 0.01
    y = 0.001 + x @ rng.normal(1, 0.4, (k, n)) + rng.standard_normal((t, n)) * 0.01
    y[rng.random((t, n)) < 0.1] = np.nan
    y[:90, 0] = np.nan
    return y, x


@pytest.mark.parametrize("window", [30, 120, None])
@pytest.mark.parametrize("k,intercept", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("half_life", [0.7, 5.0, 60.0])
def test_matches_statsmodels_wls(window, k, intercept, half_life):
    y, x = _panel(k * 7 + int(intercept), k=k)
    res = ew_wls(y, x, half_life, window=window, min_obs=15, intercept=intercept, chunk_rows=53)
    checked = 0
    for t in (20, 77, 150, 239):
        for i in range(y.shape[1]):
            lo = 0 if window is None else max(0, t - window + 1)
            yy, xx = y[lo : t + 1, i], x[lo : t + 1]
            ok = np.isfinite(yy)
            age = (t - np.arange(lo, t + 1))[ok]
            assert res.n_obs[t, i] == ok.sum()
            if ok.sum() < 15:
                assert np.isnan(res.beta[t, i]).all()
                continue
            w = 0.5 ** (age / half_life)
            design = sm.add_constant(xx[ok], has_constant="add") if intercept else xx[ok]
            fit = sm.WLS(yy[ok], design, weights=w).fit()
            slopes = fit.params[1:] if intercept else fit.params
            np.testing.assert_allclose(res.beta[t, i], slopes, atol=1e-8, rtol=1e-8)
            np.testing.assert_allclose(
                res.beta_se[t, i], fit.bse[1:] if intercept else fit.bse, rtol=1e-6
            )
            assert res.r2[t, i] == pytest.approx(fit.rsquared, abs=1e-8)
            expected_sd = np.sqrt(fit.scale * ok.sum() / w.sum())
            assert res.resid_std[t, i] == pytest.approx(expected_sd, rel=1e-7)
            if intercept:
                assert res.alpha[t, i] == pytest.approx(fit.params[0], abs=1e-8)
            checked += 1
    assert checked >= 8


def test_long_half_life_approaches_ols():
    y, x = _panel(3)
    from beta_pipeline.lib.estimators import rolling_ols

    a = ew_wls(y, x, 1e9, window=60, min_obs=30)
    b = rolling_ols(y, x, 60, min_obs=30)
    np.testing.assert_allclose(a.beta, b.beta, atol=1e-9, equal_nan=True)


def test_tune_half_life_finds_short_half_life_for_jumping_beta():
    rng = np.random.default_rng(0)
    t, n = 600, 40
    x = rng.standard_normal(t)
    beta = np.where((np.arange(t) // 25) % 2 == 0, 2.0, -1.0)[:, None] * np.ones(n)
    y = beta * x[:, None] + 0.3 * rng.standard_normal((t, n))
    best, table = tune_half_life(y, x, slice(400, 600), [1, 2, 4, 64], window=64, min_obs=5)
    assert best in (1.0, 2.0, 4.0)
    assert table["rmse"].min() == table.loc[table["half_life"] == best, "rmse"].iloc[0]
    assert table.loc[table["half_life"] == 64, "rmse"].iloc[0] > table["rmse"].min()

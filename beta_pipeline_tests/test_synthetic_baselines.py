"""Per-window baselines and metrics on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from beta_pipeline.lib.estimators.kalman import DIFFUSE_VAR, kalman_filter
from beta_pipeline.lib.estimators.kalman_statsmodels import InterceptStateBetaModel
from beta_pipeline.lib.neuralbeta import kalman_study, metrics, synthetic, windows


def test_ols_hand_case() -> None:
    x = np.array([[[1.0], [2.0], [3.0]]])
    y = np.array([[2.0, 4.0, 7.0]])
    # sum xy / sum xx = (2 + 8 + 21) / 14
    np.testing.assert_allclose(windows.ols_beta(x, y), [[31 / 14]])


def test_ew_weights_and_wls() -> None:
    w = windows.ew_weights(4, 1.0)
    np.testing.assert_allclose(w, [0.125, 0.25, 0.5, 1.0])  # newest last, weight 1
    np.testing.assert_allclose(windows.ew_weights(3, np.inf), 1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 30, 2))
    y = rng.standard_normal((5, 30))
    got = windows.ewls_beta(x, y, 3.0)
    sw = np.sqrt(windows.ew_weights(30, 3.0))
    for i in range(5):
        ref = np.linalg.lstsq(x[i] * sw[:, None], y[i] * sw, rcond=None)[0]
        np.testing.assert_allclose(got[i], ref, rtol=1e-10)


def test_bayes_constant_hand_case() -> None:
    x = np.array([[[1.0], [1.0]]])
    y = np.array([[3.0, 5.0]])
    # (1 + 2)^-1 (1 * 1 + 8) = 3
    np.testing.assert_allclose(windows.bayes_constant_beta(x, y), [[3.0]])


def test_metrics_hand_case() -> None:
    beta = np.array([[1.0], [2.0]])
    x_next = np.array([[1.0], [1.0]])
    y_next = np.array([2.0, 2.0])
    np.testing.assert_allclose(metrics.hedge_errors(beta, x_next, y_next), [1.0, 0.0])
    assert metrics.rmse_y(beta, x_next, y_next) == pytest.approx(np.sqrt(0.5))
    assert metrics.rmse_beta(beta, np.array([[2.0], [2.0]])) == pytest.approx(np.sqrt(0.5))
    assert metrics.improvement_pct(0.8, 1.0) == pytest.approx(20.0)
    assert metrics.oracle_gap_share(0.9, 1.0, 0.8) == pytest.approx(0.5)
    assert metrics.oracle_gap_share(0.8, 1.0, 0.8) == pytest.approx(1.0)


def test_oracle_beats_ols_and_tuned_wls_on_stepwise() -> None:
    parts = synthetic.stepwise(n=10_000, seed=1).split((0.5, 0.5, 0.0))
    xv, yv, xnv, ynv, _ = parts["train"].windows()
    xt, yt, xn, yn, bn = parts["val"].windows()
    hl, scores = windows.tune_half_life(xv, yv, xnv, ynv)
    assert 1.5 <= hl <= 8 and len(scores) == len(windows.DEFAULT_HALF_LIVES)
    ols = metrics.rmse_y(windows.ols_beta(xt, yt), xn, yn)
    wls = metrics.rmse_y(windows.ewls_beta(xt, yt, hl), xn, yn)
    oracle = metrics.rmse_y(windows.oracle_beta(bn), xn, yn)
    bayes = metrics.rmse_y(windows.bayes_stepwise_beta(xt, yt), xn, yn)
    assert oracle < bayes < wls < ols
    assert 10 < metrics.improvement_pct(wls, ols) < 25


def test_bayes_cyclical_reference_beats_wls() -> None:
    x, y, xn, yn, bn = synthetic.cyclical(n=3000, seed=2).windows()
    bayes = windows.bayes_cyclical_beta(x, y, n_phase=61, n_speed=41)
    wls = windows.ewls_beta(x, y, 3.0)
    assert metrics.rmse_beta(bayes, bn) < 0.7 * metrics.rmse_beta(wls, bn)
    assert metrics.rmse_y(bayes, xn, yn) < metrics.rmse_y(wls, xn, yn)


def test_single_series_ols() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100)
    y = 0.5 + 2.0 * x
    np.testing.assert_allclose(kalman_study.expanding_ols_series(y, x)[5:], 2.0)
    roll = kalman_study.rolling_ols_series(y, x, 30)
    assert np.isnan(roll[:29]).all()
    np.testing.assert_allclose(roll[29:], 2.0)


def test_kalman_step_study_filter() -> None:
    s = synthetic.kalman_step(seed=0)
    q, h, pred = kalman_study.fit_random_walk_beta(s.y, s.x)
    assert q > 0 and 0.5 < h < 1.5
    assert pred.shape == (1000,)
    # the batched filter with the intercept as a diffuse state is statsmodels' filter
    ref = InterceptStateBetaModel(s.y, s.x).filter([h, q]).predicted_state[1, 1:]
    np.testing.assert_allclose(pred, ref, rtol=0, atol=1e-8)
    # out[t] is the hedge for t+1; over the sample (from step 30 on) the filter's MSE of beta
    # is below 30-obs rolling OLS's, far below entire-period OLS's
    err_k = (pred[29:999] - s.beta[30:]) ** 2
    err_r = (kalman_study.rolling_ols_series(s.y, s.x, 30)[29:999] - s.beta[30:]) ** 2
    err_e = (kalman_study.expanding_ols_series(s.y, s.x)[29:999] - s.beta[30:]) ** 2
    assert abs(pred[450:499].mean() - 3) < 0.3 and abs(pred[900:].mean() - 6) < 0.3
    assert err_k.mean() < err_r.mean() < err_e.mean()


def test_single_series_ols_matches_direct_fits() -> None:
    rng = np.random.default_rng(3)
    x = 2 + rng.standard_normal(80)
    y = 1 + 1.5 * x + rng.standard_normal(80)
    roll = kalman_study.rolling_ols_series(y, x, 20)
    full = kalman_study.expanding_ols_series(y, x)
    assert np.isnan(full[0]) and np.isfinite(full[1])
    for t in (1, 19, 50, 79):
        np.testing.assert_allclose(full[t], np.polyfit(x[: t + 1], y[: t + 1], 1)[0], rtol=1e-10)
    for t in (19, 50, 79):
        lo = t - 19
        np.testing.assert_allclose(roll[t], np.polyfit(x[lo : t + 1], y[lo : t + 1], 1)[0])


def test_window_half_life_tuning_scores_each_window_fit() -> None:
    parts = synthetic.stepwise(n=2000, seed=4).split((0.5, 0.5, 0.0))
    x, y, xn, yn, _ = parts["train"].windows()
    grid = (1.0, 3.0, np.inf)
    best, scores = windows.tune_half_life(x, y, xn, yn, grid)
    direct = {hl: metrics.rmse_y(windows.ewls_beta(x, y, hl), xn, yn) for hl in grid}
    assert list(scores) == list(direct) and best == min(direct, key=direct.__getitem__)
    np.testing.assert_allclose(list(scores.values()), list(direct.values()), rtol=1e-12)
    # with an intercept: the slopes of a weighted fit on [1, x]
    _, with_alpha = windows.tune_half_life(x, y, xn, yn, grid, intercept=True)
    for hl in grid:
        beta = windows.intercept_ols_beta(x, y, windows.ew_weights(x.shape[1], hl))
        assert with_alpha[hl] == pytest.approx(metrics.rmse_y(beta, xn, yn), rel=1e-12)


def test_intercept_state_filter_skips_missing_rows() -> None:
    s = synthetic.kalman_step(n=200, seed=1)
    y = s.y.copy()
    y[[5, 50, 51]] = np.nan
    kw = {"beta0": 0.0, "p0": DIFFUSE_VAR, "alpha_var": DIFFUSE_VAR}
    res = kalman_filter(y, s.x, 0.01, 1.0, 0.0, **kw)
    ref = InterceptStateBetaModel(y, s.x)
    ref_state = ref.filter([1.0, 0.01]).predicted_state[1, 1:]
    np.testing.assert_allclose(res.predicted[:, 0], ref_state, rtol=0, atol=1e-8)
    assert res.n_obs[-1, 0] == 197
    assert res.loglike[0] == pytest.approx(ref.loglike([1.0, 0.01]), rel=1e-9)

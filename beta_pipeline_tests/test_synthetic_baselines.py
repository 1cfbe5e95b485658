"""Per-window baselines and metrics on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from beta_pipeline.lib import synthetic as S
from beta_pipeline.lib import window_baselines as B


def test_ols_hand_case() -> None:
    x = np.array([[[1.0], [2.0], [3.0]]])
    y = np.array([[2.0, 4.0, 7.0]])
    # sum xy / sum xx = (2 + 8 + 21) / 14
    np.testing.assert_allclose(B.ols_beta(x, y), [[31 / 14]])


def test_ew_weights_and_wls() -> None:
    w = B.ew_weights(4, 1.0)
    np.testing.assert_allclose(w, [0.125, 0.25, 0.5, 1.0])  # newest last, weight 1
    np.testing.assert_allclose(B.ew_weights(3, np.inf), 1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 30, 2))
    y = rng.standard_normal((5, 30))
    got = B.ewls_beta(x, y, 3.0)
    sw = np.sqrt(B.ew_weights(30, 3.0))
    for i in range(5):
        ref = np.linalg.lstsq(x[i] * sw[:, None], y[i] * sw, rcond=None)[0]
        np.testing.assert_allclose(got[i], ref, rtol=1e-10)


def test_bayes_constant_hand_case() -> None:
    x = np.array([[[1.0], [1.0]]])
    y = np.array([[3.0, 5.0]])
    # (1 + 2)^-1 (1 * 1 + 8) = 3
    np.testing.assert_allclose(B.bayes_constant_beta(x, y), [[3.0]])


def test_metrics_hand_case() -> None:
    beta = np.array([[1.0], [2.0]])
    x_next = np.array([[1.0], [1.0]])
    y_next = np.array([2.0, 2.0])
    np.testing.assert_allclose(B.hedge_errors(beta, x_next, y_next), [1.0, 0.0])
    assert B.rmse_y(beta, x_next, y_next) == pytest.approx(np.sqrt(0.5))
    assert B.rmse_beta(beta, np.array([[2.0], [2.0]])) == pytest.approx(np.sqrt(0.5))
    assert B.improvement_pct(0.8, 1.0) == pytest.approx(20.0)
    assert B.oracle_gap_share(0.9, 1.0, 0.8) == pytest.approx(0.5)
    assert B.oracle_gap_share(0.8, 1.0, 0.8) == pytest.approx(1.0)


def test_oracle_beats_ols_and_tuned_wls_on_stepwise() -> None:
    parts = S.stepwise(n=10_000, seed=1).split((0.5, 0.5, 0.0))
    xv, yv, xnv, ynv, _ = parts["train"].windows()
    xt, yt, xn, yn, bn = parts["val"].windows()
    hl, scores = B.tune_half_life(xv, yv, xnv, ynv)
    assert 1.5 <= hl <= 8 and len(scores) == len(B.DEFAULT_HALF_LIVES)
    ols = B.rmse_y(B.ols_beta(xt, yt), xn, yn)
    wls = B.rmse_y(B.ewls_beta(xt, yt, hl), xn, yn)
    oracle = B.rmse_y(B.oracle_beta(bn), xn, yn)
    bayes = B.rmse_y(B.bayes_stepwise_beta(xt, yt), xn, yn)
    assert oracle < bayes < wls < ols
    assert 10 < B.improvement_pct(wls, ols) < 25


def test_bayes_cyclical_reference_beats_wls() -> None:
    x, y, xn, yn, bn = S.cyclical(n=3000, seed=2).windows()
    bayes = B.bayes_cyclical_beta(x, y, n_phase=61, n_speed=41)
    wls = B.ewls_beta(x, y, 3.0)
    assert B.rmse_beta(bayes, bn) < 0.7 * B.rmse_beta(wls, bn)
    assert B.rmse_y(bayes, xn, yn) < B.rmse_y(wls, xn, yn)


def test_single_series_ols() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100)
    y = 0.5 + 2.0 * x
    np.testing.assert_allclose(B.expanding_ols_series(y, x)[5:], 2.0)
    roll = B.rolling_ols_series(y, x, 30)
    assert np.isnan(roll[:29]).all()
    np.testing.assert_allclose(roll[29:], 2.0)


def test_kalman_step_study_filter() -> None:
    s = S.kalman_step(seed=0)
    q, h, pred = B.fit_kalman_rw(s.y, s.x)
    assert q > 0 and 0.5 < h < 1.5
    assert pred.shape == (1000,)
    np.testing.assert_allclose(B.kalman_rw_beta(s.y, s.x, q, h), pred, atol=0.05)
    # out[t] is the hedge for t+1; over the sample (from step 30 on) the filter's MSE of beta
    # is below 30-obs rolling OLS's, far below entire-period OLS's
    err_k = (pred[29:999] - s.beta[30:]) ** 2
    err_r = (B.rolling_ols_series(s.y, s.x, 30)[29:999] - s.beta[30:]) ** 2
    err_e = (B.expanding_ols_series(s.y, s.x)[29:999] - s.beta[30:]) ** 2
    assert abs(pred[450:499].mean() - 3) < 0.3 and abs(pred[900:].mean() - 6) < 0.3
    assert err_k.mean() < err_r.mean() < err_e.mean()

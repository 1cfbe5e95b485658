"""No look-ahead: changing data after date t leaves every output dated <= t unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from beta_pipeline.lib.estimators import (
    blume,
    dimson,
    ew_wls,
    expanding_ols,
    kalman_filter,
    rolling_ols,
    vasicek,
    welch,
)

T, N, CUT = 700, 6, 431


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, 2)) * 0.01 + 0.002
    y = 50.0 + x @ rng.normal(1, 0.3, (2, N)) + rng.normal(0, 0.01, (T, N))
    y[rng.random((T, N)) < 0.1] = np.nan
    y[: CUT - 3, 0] = np.nan  # listed just before the cut
    y[CUT + 1 :, 1] = np.nan  # delisted at the cut: data after it only in the perturbed copy
    y[: CUT + 1, 3] = np.nan  # listed right after the cut (its shift comes from later data)
    return y, x


def _perturbed(y, x, seed: int = 1):
    rng = np.random.default_rng(seed)
    y2, x2 = y.copy(), x.copy()
    y2[CUT + 1 :] = rng.normal(100, 30, y2[CUT + 1 :].shape)
    x2[CUT + 1 :] = rng.normal(-5, 3, x2[CUT + 1 :].shape)
    y2[CUT + 1 :: 7] = np.nan
    return y2, x2


ESTIMATORS = {
    "rolling": lambda y, x: rolling_ols(y, x, 60, min_obs=20),
    "rolling_long_window": lambda y, x: rolling_ols(y, x, 300, min_obs=20, chunk_rows=100),
    "no_intercept": lambda y, x: rolling_ols(y, x, 60, min_obs=20, intercept=False),
    "expanding": lambda y, x: expanding_ols(y, x, chunk_rows=64),
    "ewm_window": lambda y, x: ew_wls(y, x, 10.0, window=120, min_obs=20),
    "ewm_infinite": lambda y, x: ew_wls(y, x[:, 0], 3.0, chunk_rows=50),
    "dimson": lambda y, x: dimson(y, x[:, 0], 60, min_obs=20),
    "welch": lambda y, x: welch(y, x, 60, min_obs=20),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_regression_outputs_ignore_later_data(name):
    y, x = _data()
    y2, x2 = _perturbed(y, x)
    a, b = ESTIMATORS[name](y, x), ESTIMATORS[name](y2, x2)
    for field in ("beta", "alpha", "r2", "resid_std", "beta_se", "n_obs"):
        np.testing.assert_array_equal(getattr(a, field)[: CUT + 1], getattr(b, field)[: CUT + 1])
    assert np.isfinite(a.beta[: CUT + 1]).mean() > 0.5  # the check is not vacuous
    assert not np.array_equal(a.beta[CUT + 2 :], b.beta[CUT + 2 :], equal_nan=True)


def test_adjusted_betas_ignore_later_data():
    y, x = _data()
    y2, x2 = _perturbed(y, x)
    a, b = rolling_ols(y, x, 60, min_obs=20), rolling_ols(y2, x2, 60, min_obs=20)
    np.testing.assert_array_equal(blume(a.beta)[: CUT + 1], blume(b.beta)[: CUT + 1])
    va, vb = vasicek(a.beta, a.beta_se), vasicek(b.beta, b.beta_se)
    np.testing.assert_array_equal(va[: CUT + 1], vb[: CUT + 1])


@pytest.mark.parametrize("ar1", [False, True])
def test_kalman_ignores_later_data(ar1):
    y, x = _data()
    y2, x2 = _perturbed(y, x)
    kw = {"phi": 0.98, "mu": 1.0} if ar1 else {}
    a = kalman_filter(y - 50, x[:, 0], 1e-3, 1e-4, **kw)
    b = kalman_filter(y2 - 50, x2[:, 0], 1e-3, 1e-4, **kw)
    for field in ("filtered", "filtered_var", "predicted", "predicted_var", "n_obs"):
        np.testing.assert_array_equal(getattr(a, field)[: CUT + 1], getattr(b, field)[: CUT + 1])

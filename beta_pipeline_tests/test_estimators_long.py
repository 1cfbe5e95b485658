"""Long-format wrapper and hedging-error helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.estimators import (
    LONG_COLUMNS,
    estimate_betas_long,
    hedge_errors_wide,
    hedging_errors,
    hedging_report,
    kalman_filter,
    rolling_ols,
)


def _long(seed: int = 0, t: int = 150, n: int = 8):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-01", periods=t)
    fac = pd.DataFrame({"mkt": rng.normal(0, 0.01, t), "smb": rng.normal(0, 0.005, t)}, index=dates)
    y = fac["mkt"].to_numpy()[:, None] * rng.uniform(0.5, 1.5, n) + rng.normal(0, 0.01, (t, n))
    syms = np.array([f"S{i}" for i in range(n)])
    ret = pd.DataFrame({"date": np.repeat(dates, n), "symbol": np.tile(syms, t), "y": y.ravel()})
    ret = ret.sample(frac=0.9, random_state=seed).reset_index(drop=True)
    return ret, fac


def test_long_wrapper_equals_panel_engine():
    ret, fac = _long()
    out = estimate_betas_long(ret, fac, "ols", window=40, min_obs=30)
    assert tuple(out.columns) == LONG_COLUMNS
    assert out["beta"].notna().all() and (out["n_obs"] >= 30).all()
    wide = ret.pivot(index="date", columns="symbol", values="y").reindex(fac.index)
    res = rolling_ols(wide.to_numpy(), fac.to_numpy(), 40, min_obs=30)
    mkt = out[out["factor"] == "mkt"].set_index(["date", "symbol"])["beta"]
    t_i, s_i = np.nonzero(np.isfinite(res.beta[:, :, 0]))
    expected = pd.Series(
        res.beta[t_i, s_i, 0],
        index=pd.MultiIndex.from_arrays([fac.index[t_i], wide.columns[s_i]]),
    )
    assert len(mkt) == len(expected)
    np.testing.assert_allclose(mkt.loc[expected.index].to_numpy(), expected.to_numpy())
    # rows come as date, symbol, factor
    first = out.iloc[:2]
    assert list(first["factor"]) == ["mkt", "smb"] and first["symbol"].nunique() == 1


def test_long_wrapper_other_estimators_and_inputs():
    ret, fac = _long(1)
    ret["symbol"] = ret["symbol"].astype("category")
    extra = pd.DataFrame({"date": [pd.Timestamp("1999-01-01")], "symbol": ["S0"], "y": [1.0]})
    ret = pd.concat([ret, extra.astype({"symbol": ret["symbol"].dtype})], ignore_index=True)
    for est, params in [
        ("expanding", {}),
        ("ewm", {"half_life": 10, "window": 60, "min_obs": 20}),
        ("blume", {"window": 40, "min_obs": 20}),
        ("vasicek", {"window": 40, "min_obs": 20}),
        ("dimson", {"window": 40, "min_obs": 20}),
        ("welch", {"window": 40, "min_obs": 20}),
    ]:
        out = estimate_betas_long(ret, fac, est, **params)
        assert len(out) > 0 and out["estimator"].eq(est).all()
        assert out["date"].min() >= fac.index[0]
    one = estimate_betas_long(ret, fac[["mkt"]], "kalman", q=1e-3, h=1e-4, min_obs=5)
    assert (one["n_obs"] >= 5).all() and one["r2"].isna().all()
    with pytest.raises(ValueError):
        estimate_betas_long(ret, fac, "nope")


def test_kalman_long_uses_the_predicted_state():
    ret, fac = _long(2)
    out = estimate_betas_long(ret, fac[["mkt"]], "kalman", q=1e-3, h=1e-4, phi=0.9, mu=1.0)
    wide = ret.pivot(index="date", columns="symbol", values="y").reindex(fac.index)
    res = kalman_filter(wide.to_numpy(), fac["mkt"].to_numpy(), 1e-3, 1e-4, phi=0.9, mu=1.0)
    row = out.iloc[-1]
    t = fac.index.get_loc(row["date"])
    i = list(wide.columns).index(row["symbol"])
    assert row["beta"] == pytest.approx(res.predicted[t, i])
    assert np.isfinite(wide.iloc[t, i])  # only rows where the asset is observed


def test_hedging_errors_by_hand():
    dates = pd.to_datetime(["2020-12-30", "2020-12-31", "2021-01-04", "2021-01-05"])
    fac = pd.DataFrame({"mkt": [0.01, 0.02, -0.01, 0.03]}, index=dates)
    ret = pd.DataFrame(
        {
            "date": dates[[1, 2, 3, 1, 3]],
            "symbol": ["A", "A", "A", "B", "B"],
            "y": [0.03, -0.01, 0.02, 0.01, 0.04],
        }
    )

    def betas(est, a_vals, b_vals, alpha=0.0):
        rows = [(dates[i], "A", v) for i, v in enumerate(a_vals)]
        rows += [(dates[i], "B", v) for i, v in enumerate(b_vals)]
        df = pd.DataFrame(rows, columns=["date", "symbol", "beta"])
        return df.assign(estimator=est, factor="mkt", alpha=alpha)

    model = betas("model", [1.0, 2.0, 0.5], [1.0, 1.0, 1.0], alpha=0.001)
    ref = betas("ref", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    err = hedging_errors(pd.concat([model, ref]), ret, fac)
    m = err[err["estimator"] == "model"].set_index(["symbol", "date"])["error"]
    assert m[("A", dates[1])] == pytest.approx(0.03 - 1.0 * 0.02)
    assert m[("A", dates[2])] == pytest.approx(-0.01 - 2.0 * -0.01)
    assert m[("A", dates[3])] == pytest.approx(0.02 - 0.5 * 0.03)
    assert m[("B", dates[1])] == pytest.approx(0.01 - 0.02)
    assert m[("B", dates[3])] == pytest.approx(0.04 - 0.03)  # beta of 2021-01-04 is used
    assert len(m) == 5
    with_alpha = hedging_errors(model, ret, fac, include_alpha=True)
    assert with_alpha["error"].iloc[0] == pytest.approx(m.sort_index().iloc[0] - 0.001)

    rep = hedging_report(err, "ref")
    overall = rep["overall"].set_index("estimator")
    e = np.array([0.01, 0.01, 0.005, -0.01, 0.01])
    r = np.array([0.03, -0.01, 0.02, 0.01, 0.04])
    rm, rr = np.sqrt(np.mean(e**2)), np.sqrt(np.mean(r**2))
    assert overall.loc["model", "rmse"] == pytest.approx(rm)
    assert overall.loc["model", "improvement_pct"] == pytest.approx(100 * (1 - rm / rr))
    assert overall.loc["ref", "improvement_pct"] == pytest.approx(0.0)
    by_year = rep["by_year"].set_index(["estimator", "year"])
    assert by_year.loc[("model", 2020), "n"] == 2 and by_year.loc[("model", 2021), "n"] == 3
    assert by_year.loc[("model", 2021), "rmse"] == pytest.approx(
        np.sqrt(np.mean(e[[1, 2, 4]] ** 2))
    )


def test_hedging_report_uses_common_pairs():
    dates = pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-06"])
    err = pd.DataFrame(
        {
            "date": dates[[1, 2, 1]],
            "symbol": ["A", "A", "A"],
            "estimator": ["m", "m", "ref"],
            "error": [0.1, 0.5, 0.2],
        }
    )
    rep = hedging_report(err, "ref")["overall"].set_index("estimator")
    assert rep.loc["m", "n"] == 1 and rep.loc["m", "rmse"] == pytest.approx(0.1)
    assert rep.loc["m", "improvement_pct"] == pytest.approx(50.0)


def test_hedge_errors_wide_multi_factor():
    beta = np.array([[[1.0, 2.0]], [[0.0, 1.0]], [[9.0, 9.0]]])
    x = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    y = np.array([[0.0], [1.0], [2.0]])
    err = hedge_errors_wide(beta, y, x)
    assert np.isnan(err[0, 0])
    assert err[1, 0] == pytest.approx(1.0 - (0.3 + 0.8))
    assert err[2, 0] == pytest.approx(2.0 - 0.6)

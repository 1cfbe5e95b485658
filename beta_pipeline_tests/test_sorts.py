"""lib.sorts on hand-computed cases: breakpoints, left-closed bins, ties, minimum size,
too few stocks, missing betas, the month join (no look-ahead), weights, Newey-West and
CAPM regressions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from beta_pipeline.lib import sorts

JAN, FEB, MAR, APR = (pd.Timestamp(f"2020-{m:02d}-01") for m in (1, 2, 3, 4))


def _signals(month: pd.Timestamp, betas: dict[str, float], est: str = "e") -> pd.DataFrame:
    return pd.DataFrame(
        {"formation_month": month, "estimator": est, "symbol": list(betas),
         "beta": list(betas.values())}
    )


def _returns(month: pd.Timestamp, rets: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"month": month, "symbol": list(rets), "ret_excess": list(rets.values())})


def _row(frame: pd.DataFrame, portfolio: str, weighting: str = "ew", **keys) -> pd.Series:
    sel = (frame["portfolio"] == portfolio) & (frame["weighting"] == weighting)
    for k, v in keys.items():
        sel &= frame[k] == v
    assert sel.sum() == 1, frame[sel]
    return frame.loc[sel].iloc[0]


# --- breakpoints and assignment -------------------------------------------------------------


def test_quintile_breakpoints_are_linear_quantiles():
    x = np.arange(1.0, 11.0)  # 1..10
    np.testing.assert_allclose(sorts.breakpoints(x, 5), [2.8, 4.6, 6.4, 8.2])
    assert list(sorts.assign(x, sorts.breakpoints(x, 5))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    np.testing.assert_allclose(sorts.breakpoints(x, percentiles=[0.3, 0.7]), [3.7, 7.3])
    assert list(sorts.assign(x, [3.7, 7.3])) == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3]


def test_bins_are_left_closed():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    breaks = sorts.breakpoints(x, 2)
    assert list(breaks) == [3.0]
    # the value ON the breakpoint goes to the upper portfolio; the max to the last one
    assert list(sorts.assign(x, breaks)) == [1, 1, 2, 2, 2]
    assert list(sorts.assign([np.nan, 3.0], breaks)) == [0, 2]


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        sorts.cut_points(1)
    with pytest.raises(ValueError):
        sorts.cut_points(percentiles=[0.5, 1.0])
    with pytest.raises(ValueError):
        sorts.breakpoints([np.nan], 3)


def test_auto_number_of_portfolios():
    assert sorts.auto_n_portfolios(505) == 10
    assert sorts.auto_n_portfolios(20) == 5
    assert sorts.auto_n_portfolios(8) == 3


def test_ties_share_a_portfolio_and_an_empty_one_is_reported_not_dropped():
    # terciles of 1,1,1,1,2,3: breakpoints 1 and 1 1/3 -> every 1 goes up to portfolio 2
    sig = _signals(JAN, dict(a=1, b=1, c=1, d=1, e=2, f=3))
    members, skipped = sorts.form_portfolios(sig, 3)
    assert skipped.empty
    assert dict(zip(members["symbol"], members["portfolio"], strict=True)) == dict(
        a=2, b=2, c=2, d=2, e=3, f=3
    )
    rets = _returns(FEB, dict(a=0.01, b=0.02, c=0.03, d=0.04, e=0.05, f=0.07))
    out, _ = sorts.portfolio_returns(members, rets)
    assert list(out["portfolio"]) == ["1", "2", "3", "HML"]
    assert _row(out, "1")["n"] == 0 and np.isnan(_row(out, "1")["ret_excess"])
    assert _row(out, "2")["ret_excess"] == pytest.approx(0.025)
    assert _row(out, "3")["ret_excess"] == pytest.approx(0.06)
    assert _row(out, "3")["mean_beta"] == pytest.approx(2.5)
    assert np.isnan(_row(out, "HML")["ret_excess"])  # a missing leg: NaN, not a crash


def test_fewer_stocks_than_portfolios_and_min_size_skip_the_month():
    sig = pd.concat(
        [_signals(JAN, dict(a=1, b=2, c=3, d=4)),  # 4 < 5 quintiles
         _signals(FEB, {s: float(i) for i, s in enumerate("abcdefgh")})]  # 8 stocks
    )
    rets = pd.concat([_returns(FEB, dict(a=0.0)), _returns(MAR, dict(a=0.0))])
    members, skipped = sorts.form_portfolios(sig, 5)
    assert set(members["formation_month"]) == {FEB}
    assert list(skipped["formation_month"]) == [JAN]
    assert skipped["n_stocks"].iloc[0] == 4 and "4 stocks < 5 portfolios" in skipped["reason"][0]
    # min size 2: 8 stocks < 5 x 2 -> February is skipped too
    members2, skipped2 = sorts.form_portfolios(sig, 5, min_size=2)
    assert members2.empty and len(skipped2) == 2
    out, _ = sorts.portfolio_returns(members2, rets)
    assert out.empty and list(out.columns) == sorts.SORT_COLUMNS


def test_min_size_blanks_a_thin_portfolio_return():
    sig = _signals(JAN, dict(a=1, b=2, c=3, d=4, e=5, f=6))
    members, _ = sorts.form_portfolios(sig, 3, min_size=2)
    # c has no February return: portfolio 2 keeps 1 stock < 2 -> NaN return, row kept
    rets = _returns(FEB, dict(a=0.01, b=0.03, d=0.04, e=0.05, f=0.09))
    out, _ = sorts.portfolio_returns(members, rets, min_size=2)
    p2 = _row(out, "2")
    assert p2["n"] == 1 and np.isnan(p2["ret_excess"]) and p2["mean_beta"] == 4.0
    assert _row(out, "1")["ret_excess"] == pytest.approx(0.02)
    assert _row(out, "HML")["ret_excess"] == pytest.approx(0.07 - 0.02)
    assert _row(out, "HML")["mean_beta"] == pytest.approx(5.5 - 1.5)
    assert _row(out, "HML")["n"] == 4


def test_missing_and_infinite_betas_are_dropped_before_the_breakpoints():
    sig = _signals(JAN, dict(a=1, b=2, c=np.nan, d=3, e=np.inf, f=4))
    members, skipped = sorts.form_portfolios(sig, 2)
    assert skipped.empty
    assert set(members["symbol"]) == {"a", "b", "d", "f"}
    assert dict(zip(members["symbol"], members["portfolio"], strict=True)) == dict(
        a=1, b=1, d=2, f=2
    )


# --- timing: sort in t, hold in t+1 ---------------------------------------------------------


def _panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    sig = pd.concat(
        [_signals(JAN, dict(a=0.5, b=1.0, c=1.5, d=2.0)),
         _signals(FEB, dict(a=2.0, b=1.5, c=1.0, d=0.5))]
    )
    rets = pd.concat(
        [_returns(JAN, dict(a=0.9, b=0.9, c=0.9, d=0.9)),
         _returns(FEB, dict(a=0.01, b=0.02, c=0.03, d=0.05)),
         _returns(MAR, dict(a=0.10, b=0.20, c=0.30, d=0.40))]
    )
    return sig, rets


def test_january_betas_sort_february_returns():
    sig, rets = _panel()
    out, skipped = sorts.portfolio_returns(sorts.form_portfolios(sig, 2)[0], rets)
    assert skipped.empty
    feb = out[out["month"] == FEB]
    assert set(feb["formation_month"]) == {JAN}
    assert _row(feb, "1")["ret_excess"] == pytest.approx(0.015)  # a, b (low Jan beta)
    assert _row(feb, "2")["ret_excess"] == pytest.approx(0.04)  # c, d
    assert _row(feb, "HML")["ret_excess"] == pytest.approx(0.025)
    mar = out[out["month"] == MAR]
    assert _row(mar, "1")["ret_excess"] == pytest.approx(0.35)  # c, d (low Feb beta)
    assert JAN not in set(out["month"])  # January's own return is never used


def test_changing_future_betas_leaves_past_portfolio_returns_unchanged():
    sig, rets = _panel()
    base, _ = sorts.portfolio_returns(sorts.form_portfolios(sig, 2)[0], rets)
    perturbed = sig.copy()
    perturbed.loc[perturbed["formation_month"] == FEB, "beta"] *= -7.0
    alt, _ = sorts.portfolio_returns(sorts.form_portfolios(perturbed, 2)[0], rets)
    pd.testing.assert_frame_equal(base[base["month"] == FEB], alt[alt["month"] == FEB])
    assert not base[base["month"] == MAR].equals(alt[alt["month"] == MAR])


def test_join_is_by_calendar_month_not_by_row_shift():
    # a stock with a gap: betas in January and March only, returns every month
    sig = pd.concat([_signals(JAN, dict(a=1.0, b=2.0)), _signals(MAR, dict(a=2.0, b=1.0))])
    rets = pd.concat(
        [_returns(m, dict(a=r, b=-r)) for m, r in ((FEB, 0.01), (MAR, 0.02), (APR, 0.03))]
    )
    out, skipped = sorts.portfolio_returns(sorts.form_portfolios(sig, 2)[0], rets)
    assert sorted(set(out["month"])) == [FEB, APR]  # no March holding without Feb betas
    assert _row(out, "HML", month=FEB)["ret_excess"] == pytest.approx(-0.02)  # b - a
    assert _row(out, "HML", month=APR)["ret_excess"] == pytest.approx(0.06)  # a - b
    # formation months given as month-end dates land on the same months
    shifted = sig.assign(formation_month=sig["formation_month"] + pd.offsets.MonthEnd(0))
    out2, _ = sorts.portfolio_returns(sorts.form_portfolios(shifted, 2)[0], rets)
    pd.testing.assert_frame_equal(out, out2)
    assert skipped.empty


def test_holding_month_without_returns_is_reported():
    sig, rets = _panel()
    out, skipped = sorts.portfolio_returns(
        sorts.form_portfolios(sig, 2)[0], rets[rets["month"] != MAR]
    )
    assert set(out["month"]) == {FEB}
    assert list(skipped["formation_month"]) == [FEB]
    assert skipped["reason"].iloc[0] == "no returns in the holding month"


# --- weights ------------------------------------------------------------------------------


def test_value_weights_use_the_formation_month_cap():
    sig = _signals(JAN, dict(a=1, b=2, c=3, d=4))
    members, _ = sorts.form_portfolios(sig, 2)
    rets = _returns(FEB, dict(a=0.01, b=0.04, c=0.02, d=0.10))
    caps = pd.DataFrame(
        {"formation_month": pd.Timestamp("2020-01-31"), "symbol": list("abcd"),
         "market_cap": [3.0, 1.0, 1.0, np.nan]}
    )
    out, _ = sorts.portfolio_returns(members, rets, caps)
    assert set(out["weighting"]) == {"ew", "vw"}
    assert _row(out, "1", "vw")["ret_excess"] == pytest.approx((3 * 0.01 + 0.04) / 4)
    assert _row(out, "1", "vw")["mean_beta"] == pytest.approx((3 * 1 + 2) / 4)
    assert _row(out, "2", "vw")["ret_excess"] == pytest.approx(0.02)  # d has no cap
    assert _row(out, "2", "vw")["n"] == 1
    assert _row(out, "2", "ew")["ret_excess"] == pytest.approx(0.06)
    # no caps -> equal weights only
    ew_only, _ = sorts.portfolio_returns(members, rets)
    assert set(ew_only["weighting"]) == {"ew"}


# --- inference ----------------------------------------------------------------------------


def _bartlett_se(y: np.ndarray, lags: int) -> float:
    """Newey-West standard error of a mean, written out: (1/n^2)(sum u^2 + 2 sum_l w_l
    sum_t u_t u_{t-l}), w_l = 1 - l/(L+1)."""
    u = y - y.mean()
    n = len(u)
    s = (u**2).sum()
    for lag in range(1, lags + 1):
        s += 2 * (1 - lag / (lags + 1)) * (u[lag:] * u[:-lag]).sum()
    return float(np.sqrt(s) / n)


def test_newey_west_t_stat_matches_statsmodels_and_the_formula():
    rng = np.random.default_rng(0)
    e = rng.normal(size=120)
    y = 0.005 + 0.02 * (e + 0.6 * np.r_[0.0, e[:-1]])  # autocorrelated
    got = sorts.newey_west_mean(y, lags=6)
    fit = sm.OLS(y, np.ones(len(y))).fit(cov_type="HAC", cov_kwds={"maxlags": 6})
    assert got["t"] == pytest.approx(float(fit.tvalues[0]), rel=1e-12)
    assert got["se"] == pytest.approx(_bartlett_se(y, 6), rel=1e-10)
    assert got["mean"] == pytest.approx(y.mean())
    assert got["n"] == 120
    # NaNs dropped; too short -> NaN t
    with_nan = sorts.newey_west_mean(np.r_[y, np.nan], 6)
    assert with_nan["t"] == pytest.approx(got["t"])
    assert np.isnan(sorts.newey_west_mean([0.1, 0.2], 6)["t"])


def test_capm_alpha_and_beta():
    rng = np.random.default_rng(1)
    m = rng.normal(0.005, 0.04, size=240)
    y = 0.002 + 1.3 * m + rng.normal(0, 0.01, size=240)
    got = sorts.capm(y, m, lags=6)
    X = np.column_stack([np.ones_like(m), m])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    assert got["alpha"] == pytest.approx(coef[0], abs=1e-12)
    assert got["beta"] == pytest.approx(coef[1], abs=1e-12)
    assert got["beta"] == pytest.approx(1.3, abs=0.05)
    fit = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": 6})
    assert got["t_alpha"] == pytest.approx(float(fit.tvalues[0]))
    # exact CAPM: zero alpha, beta 2
    exact = sorts.capm(2 * m, m)
    assert exact["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert exact["beta"] == pytest.approx(2.0)
    assert np.isnan(sorts.capm([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])["alpha"])


def test_summarize_gives_every_portfolio_and_hml():
    rng = np.random.default_rng(2)
    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    mkt = pd.DataFrame({"month": months, "mkt_excess": rng.normal(0.006, 0.04, 48)})
    rows = []
    for i, m in enumerate(months):
        r_mkt = mkt["mkt_excess"].iloc[i]
        for p, b in ((1, 0.5), (2, 1.0), (3, 1.5)):
            rows.append(dict(month=m, estimator="e", weighting="ew", n_portfolios=3,
                             portfolio=str(p), ret_excess=0.001 * p + b * r_mkt,
                             mean_beta=b, n=5))
    frame = pd.DataFrame(rows)
    hml = frame[frame["portfolio"] == "3"].set_index("month")["ret_excess"] - frame[
        frame["portfolio"] == "1"
    ].set_index("month")["ret_excess"]
    frame = pd.concat(
        [frame, pd.DataFrame(dict(month=hml.index, estimator="e", weighting="ew",
                                  n_portfolios=3, portfolio="HML", ret_excess=hml.to_numpy(),
                                  mean_beta=1.0, n=10))],
        ignore_index=True,
    )
    out = sorts.summarize(frame, mkt)
    assert list(out["portfolio"]) == ["1", "2", "3", "HML"]
    assert list(out.columns) == sorts.SUMMARY_COLUMNS
    top = out.set_index("portfolio")
    assert top.loc["1", "alpha"] == pytest.approx(0.001)
    assert top.loc["3", "capm_beta"] == pytest.approx(1.5)
    assert top.loc["HML", "alpha"] == pytest.approx(0.002)
    assert top.loc["HML", "capm_beta"] == pytest.approx(1.0)
    assert top.loc["HML", "n_months"] == 48
    assert top.loc["2", "t_mean"] == pytest.approx(
        sorts.newey_west_mean(frame[frame["portfolio"] == "2"]["ret_excess"])["t"]
    )
    assert sorts.summarize(frame.iloc[0:0], mkt).empty


# --- the assets' steps (lib.portfolios) ------------------------------------------------------


def test_sort_batch_lists_skipped_holding_months_and_months_without_betas():
    from beta_pipeline.lib.portfolios import pipeline

    sig = pd.concat(
        [_signals(JAN, dict(a=1, b=2, c=3, d=4)), _signals(FEB, dict(a=1, b=2))]
    ).assign(source="betas.daily")
    rets = pd.concat(
        [_returns(FEB, dict(a=0.01, b=0.02, c=0.03, d=0.04)), _returns(MAR, dict(a=0.0, b=0.0)),
         _returns(APR, dict(a=0.0))]
    )
    batch = pipeline.sort_batch(sig, rets, None, 2, None, 2)
    assert set(batch.frame["month"]) == {FEB} and set(batch.frame["source"]) == {"betas.daily"}
    # FEB's two betas are too few for 2 portfolios x 2 stocks: skipped, held in MAR
    assert list(batch.skipped["month"]) == [MAR]
    assert batch.no_betas == [APR]
    warnings = pipeline.batch_warnings(batch, "2020-02..2020-04", no_signals=False)
    assert warnings[0] == "no betas at the end of the month before 2020-04"
    assert warnings[1].startswith("1 (month, estimator) cross-sections skipped for 2020-02..")
    assert pipeline.batch_warnings(batch, "x", no_signals=True)[0].startswith(
        "no market betas for the formation months of x"
    )
    assert pipeline.hml_means(batch.frame) == {"e": 0.02}
    assert pipeline.hml_means(batch.frame.iloc[0:0]) is None


def test_summary_with_source_and_market_slope():
    from beta_pipeline.lib.portfolios import pipeline

    frame = pd.DataFrame(
        {"month": [FEB, MAR, MAR], "estimator": ["e", "e", "f"], "source": ["s1", "s1", "s2"],
         "ret_excess": [0.1, np.nan, 0.2]}
    )
    market = pd.DataFrame({"month": [FEB, MAR], "mkt_excess": [0.01, 0.03]})
    assert pipeline.mean_market_by_estimator(frame, market) == {"e": 0.01, "f": 0.03}


def test_headline_estimators_and_figures_need_three_months():
    from beta_pipeline.lib.portfolios import plots as sort_plots

    names = ["capm/ols_60", "capm/ols_252", "ff3/ewm", "neuralbeta/x/m", "capm/kalman"]
    assert sort_plots.headline(names) == [
        "capm/ols_252", "capm/kalman", "neuralbeta/x/m", "capm/ols_60", "ff3/ewm"
    ]
    assert sort_plots.headline(names, ["ff3/*", "capm/*"], limit=2) == ["ff3/ewm", "capm/kalman"]
    history = pd.DataFrame(
        {"month": [JAN, FEB], "estimator": "capm/ols_252", "portfolio": "HML",
         "weighting": "ew", "ret_excess": 0.01, "mean_beta": 0.5}
    )
    assert sort_plots.sort_figures(history) == {}
    summary = pd.DataFrame({"estimator": ["e"], "capm_beta": [np.nan]})
    assert sort_plots.sml_figure(summary.iloc[0:0], history, history) is None

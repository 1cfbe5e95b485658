"""The pure core of the baseline beta tables (``lib.beta_tables``): factor frames, panels,
estimator specs, the train/validation split, long output and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import beta_tables as bt
from beta_pipeline.lib.estimators import ew_wls, fit_kalman_panel, kalman_filter, rolling_ols

TRUE_BETAS = {"AAA": 0.5, "BBB": 1.0, "CCC": 1.5, "DDD": 1.2}
T = 420
NOISE = 0.004
EMPTY_MARKET = pd.DataFrame(columns=["date", "series", "value"])


def _returns(seed: int = 7, t_len: int = T) -> pd.DataFrame:
    """Long returns (date, symbol, ret_excess, mkt_excess): constant betas plus noise."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-05", periods=t_len)
    mkt = rng.normal(0.0003, 0.01, t_len)
    parts = [
        pd.DataFrame(
            {
                "date": dates,
                "symbol": sym,
                "ret_excess": 0.0001 + beta * mkt + rng.normal(0.0, NOISE, t_len),
                "mkt_excess": mkt,
            }
        )
        for sym, beta in TRUE_BETAS.items()
    ]
    return pd.concat(parts, ignore_index=True).sort_values(["date", "symbol"], ignore_index=True)


def _panel(returns: pd.DataFrame) -> bt.Panel:
    factors = bt.factor_frame("capm", returns, EMPTY_MARKET)
    assert factors is not None
    return bt.Panel.build(returns, factors)


def _fixed_specs(window: int = 60) -> list[bt.EstimatorSpec]:
    """daily_specs with small windows, a fixed EW half-life and fixed Kalman variances."""
    fixed = {
        "ewm": {"half_life": 21.0},
        "kalman": {"q": 1e-6, "h": NOISE**2, "alpha": 0.0},
    }
    return [
        bt.EstimatorSpec(s.name, s.kind, {**s.params, **fixed.get(s.kind, {})}, s.single_factor)
        for s in bt.daily_specs((20, window), 21, 15, window, window, True)
    ]


def _all_rows(panel: bt.Panel, specs, start=None, end=None) -> pd.DataFrame:
    start = panel.dates[0] if start is None else start
    end = panel.dates[-1] + pd.Timedelta(days=1) if end is None else end
    frames = list(bt.estimate(panel, "capm", specs, start, end))
    return pd.concat(frames, ignore_index=True)


# --- estimate ------------------------------------------------------------------------------


def test_estimate_recovers_constant_betas():
    rows = _all_rows(_panel(_returns()), _fixed_specs())
    assert set(rows["estimator"]) == {s.name for s in _fixed_specs()}
    assert set(rows["model"]) == {"capm"} and set(rows["factor"]) == {"mkt_excess"}
    late = rows[rows["date"] >= rows["date"].quantile(0.5)]
    got = late.groupby(["estimator", "symbol"], observed=True)["beta"].mean().unstack()
    for sym, beta in TRUE_BETAS.items():
        for est in got.index:
            # Blume shrinks toward 1 by construction: 0.67 beta + 0.33
            want = 0.67 * beta + 0.33 if est.startswith("blume") else beta
            assert got.loc[est, sym] == pytest.approx(want, abs=0.1), (est, sym)


def test_estimate_rows_equal_rolling_ols_and_ew_wls_exactly():
    panel = _panel(_returns())
    specs = {s.name: s for s in _fixed_specs()}
    start, end = panel.dates[100], panel.dates[300]
    frames = {
        f["estimator"].iloc[0]: f
        for f in bt.estimate(panel, "capm", [specs["ols_60"], specs["ewm"]], start, end)
    }
    expected = {
        "ols_60": rolling_ols(panel.y, panel.x, 60, min_obs=specs["ols_60"].params["min_obs"]),
        "ewm": ew_wls(
            panel.y, panel.x, 21.0, window=60, min_obs=specs["ewm"].params["min_obs"]
        ),
    }
    for name, res in expected.items():
        rows = frames[name]
        t_idx = panel.dates.get_indexer(pd.DatetimeIndex(rows["date"]))
        s_idx = panel.symbols.get_indexer(pd.Index(rows["symbol"]))
        assert (t_idx >= 0).all() and (s_idx >= 0).all()
        np.testing.assert_array_equal(rows["beta"].to_numpy(), res.beta[t_idx, s_idx, 0])
        np.testing.assert_array_equal(rows["alpha"].to_numpy(), res.alpha[t_idx, s_idx])
        np.testing.assert_array_equal(rows["r2"].to_numpy(), res.r2[t_idx, s_idx])
        np.testing.assert_array_equal(rows["resid_std"].to_numpy(), res.resid_std[t_idx, s_idx])
        np.testing.assert_array_equal(rows["n_obs"].to_numpy(), res.n_obs[t_idx, s_idx])
        # every finite estimate inside the window has its row, and no other row exists
        inside = (panel.dates >= start) & (panel.dates < end)
        assert len(rows) == int(np.isfinite(res.beta[inside, :, 0]).sum())
        assert not rows.duplicated(["date", "symbol"]).any()


def test_estimate_writes_only_rows_inside_the_window():
    panel = _panel(_returns())
    start, end = pd.Timestamp("2015-07-01"), pd.Timestamp("2015-09-01")
    rows = _all_rows(panel, _fixed_specs(), start, end)
    assert rows["date"].min() >= start and rows["date"].max() < end
    # all days of the window appear (every estimator is warm by July)
    in_window = panel.dates[(panel.dates >= start) & (panel.dates < end)]
    for _, part in rows.groupby("estimator"):
        assert set(pd.DatetimeIndex(part["date"])) == set(in_window)
    assert list(rows.columns) == ["date", *bt.BETA_COLUMNS]
    # a window without panel dates yields nothing
    empty = bt.estimate(panel, "capm", _fixed_specs(), pd.Timestamp("2030-01-01"),
                        pd.Timestamp("2030-02-01"))
    assert list(empty) == []


def test_estimate_skips_single_factor_specs_for_multi_factor_models():
    returns = _returns()
    dates = pd.DatetimeIndex(returns["date"].unique())
    rng = np.random.default_rng(3)
    market = pd.concat(
        [
            pd.DataFrame({"date": dates, "series": s, "value": rng.normal(0, 0.01, len(dates))})
            for s in ("mkt_rf", "smb", "hml")
        ]
    )
    factors = bt.factor_frame("ff3", returns, market)
    panel = bt.Panel.build(returns, factors)
    names = {f["estimator"].iloc[0] for f in bt.estimate(
        panel, "ff3", _fixed_specs(), dates[0], dates[-1] + pd.Timedelta(days=1)
    )}
    assert "kalman" not in names and "ols_60" in names


def test_kalman_spec_without_fitted_variances_is_refused():
    panel = _panel(_returns())
    spec = bt.EstimatorSpec("kalman", "kalman", {"min_obs": 20}, single_factor=True)
    with pytest.raises(ValueError, match="q and h"):
        list(bt.estimate(panel, "capm", [spec], panel.dates[0], panel.dates[-1]))


def test_kalman_rows_are_the_filter_predictions():
    panel = _panel(_returns())
    spec = next(s for s in _fixed_specs() if s.kind == "kalman")
    rows = _all_rows(panel, [spec])
    res = kalman_filter(panel.y, panel.x[:, 0], q=1e-6, h=NOISE**2, alpha=0.0)
    t_idx = panel.dates.get_indexer(pd.DatetimeIndex(rows["date"]))
    s_idx = panel.symbols.get_indexer(pd.Index(rows["symbol"]))
    np.testing.assert_array_equal(rows["beta"].to_numpy(), res.predicted[t_idx, s_idx])
    assert (rows["n_obs"] >= 20).all()
    assert len(rows) == int((res.n_obs >= 20).sum())


# --- fit_kalman ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_fit_kalman_uses_exactly_the_training_rows():
    panel = _panel(_returns())
    train, _ = bt.split_rows(len(panel.dates))

    def reference(n: int) -> dict:
        """The MLE on arrays cut to ``n`` rows: it cannot see anything later."""
        return fit_kalman_panel(panel.y[:n], panel.x[:n, 0], n, n_sample=2).as_kwargs()

    # default: the training share of the panel
    got, want = bt.fit_kalman(panel, n_sample=2), reference(train.stop)
    for key in ("q", "h", "alpha"):
        np.testing.assert_array_equal(got[key], want[key])
    # explicit train_rows (what daily_betas stores and reuses): all of them, not re-split
    got, want = bt.fit_kalman(panel, n_sample=2, train_rows=120), reference(120)
    for key in ("q", "h", "alpha"):
        np.testing.assert_array_equal(got[key], want[key])
    # h is each asset's residual variance on those rows: close to the noise variance
    assert np.allclose(got["h"], NOISE**2, rtol=0.35)


# --- factor_frame ----------------------------------------------------------------------------


def test_factor_frame_capm_takes_mkt_excess_from_returns():
    returns = _returns(t_len=30).sample(frac=1.0, random_state=0)  # unsorted input
    frame = bt.factor_frame("capm", returns, EMPTY_MARKET)
    assert list(frame.columns) == ["mkt_excess"]
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    want = returns.groupby("date")["mkt_excess"].first()
    pd.testing.assert_series_equal(frame["mkt_excess"], want, check_names=False)


def test_factor_frame_ff3_ff5_and_missing_factors():
    returns = _returns(t_len=30)
    dates = pd.DatetimeIndex(returns["date"].unique())
    extra_day = dates[-1] + pd.Timedelta(days=1)  # a factor date without returns
    series = {"mkt_rf": 0.01, "smb": 0.02, "hml": 0.03}
    market = pd.concat(
        [
            pd.DataFrame({"date": [*dates, extra_day], "series": s, "value": v})
            for s, v in series.items()
        ],
        ignore_index=True,
    )
    market = market[~((market["series"] == "hml") & (market["date"] == dates[5]))]  # a gap
    ff3 = bt.factor_frame("ff3", returns, market)
    assert list(ff3.columns) == ["mkt_rf", "smb", "hml"]
    assert ff3.index.name == "date"
    # the returns calendar, minus the date with a missing factor
    assert list(ff3.index) == [d for d in dates if d != dates[5]]
    assert (ff3["smb"] == 0.02).all()
    # FF5 needs rmw and cma: absent -> None (the asset skips the model)
    assert bt.factor_frame("ff5", returns, market) is None
    assert bt.factor_frame("ff3", returns, market[market["series"] != "hml"]) is None
    assert bt.factor_frame("ff3", returns, EMPTY_MARKET) is None
    # monthly tables use a 'month' column
    monthly = returns.rename(columns={"date": "month"})
    mk = market.rename(columns={"date": "month"})
    assert list(bt.factor_frame("ff3", monthly, mk, date_col="month").columns) == [
        "mkt_rf", "smb", "hml"
    ]


# --- split_rows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, train_stop, val_stop",
    [(14, 8, 10), (1400, 800, 1000), (3500, 2000, 2500), (2, 1, 2), (1, 1, 1)],
)
def test_split_rows_follows_the_paper_proportions(n, train_stop, val_stop):
    train, val = bt.split_rows(n)
    assert (train.start, train.stop) == (0, train_stop)
    assert (val.start, val.stop) == (train_stop, val_stop)
    assert val.stop <= n


def test_split_rows_shares():
    train, val = bt.split_rows(7000)
    assert train.stop / 7000 == pytest.approx(8 / 14, abs=1e-3)
    assert (val.stop - val.start) / 7000 == pytest.approx(2 / 14, abs=1e-3)


# --- no look-ahead ---------------------------------------------------------------------------


def test_rows_dated_up_to_t_ignore_later_returns():
    returns = _returns()
    cut = pd.DatetimeIndex(returns["date"].unique())[260]
    later = returns["date"] > cut
    rng = np.random.default_rng(11)
    moved = returns.copy()
    moved.loc[later, "ret_excess"] = rng.normal(0.05, 0.2, int(later.sum()))
    # the market leg moves too (one value per date, shared by every symbol)
    days = moved.loc[later, "date"]
    shock = pd.Series(rng.normal(-0.03, 0.1, days.nunique()), index=days.unique())
    moved.loc[later, "mkt_excess"] = days.map(shock).to_numpy()
    moved = moved.drop(moved[later].sample(frac=0.1, random_state=2).index)  # gaps later

    specs = _fixed_specs()
    base = _all_rows(_panel(returns), specs)
    pert = _all_rows(_panel(moved), specs)
    key = ["estimator", "date", "symbol"]

    def upto(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[frame["date"] <= cut].copy()
        for col in ("symbol", "estimator", "factor"):
            out[col] = out[col].astype(str)
        return out.sort_values(key, ignore_index=True)

    a, b = upto(base), upto(pert)
    assert set(a["estimator"]) == {s.name for s in specs}  # every estimator has rows <= t
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # ... while later rows did change (the perturbation is not a no-op)
    later_a = base[base["date"] > cut].sort_values(key)["beta"].to_numpy()
    assert len(later_a) and not np.array_equal(
        later_a[: 100], pert[pert["date"] > cut].sort_values(key)["beta"].to_numpy()[:100]
    )

"""The crypto study's pure core (beta_pipeline.lib.crypto) on slices of the real shared/data
files: month-end resampling and the WTI treatment, the batched MLP grid (determinism,
independence of the batched models, no look-ahead), OLS / Kalman, statistics and sorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from beta_pipeline.lib.crypto import analysis, compare, model, quality
from beta_pipeline.lib.crypto.data import (
    COINS,
    MarketChoice,
    common_sample,
    crypto_monthly_returns,
    month_end_prices,
    study_source_error,
    wide_returns,
)
from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.estimators import kalman_filter, kalman_filter_multi, rolling_ols
from beta_pipeline.lib.sources import make_source
from beta_pipeline_tests.support.paths import shared_data_dir

torch.set_num_threads(1)
DATA = shared_data_dir()
FILES = ("crypto_daily.csv.gz", "cross_asset_daily.csv.gz", "ff5_monthly.csv")
needs_data = pytest.mark.skipif(
    DATA is None or not all((DATA / f).is_file() for f in FILES),
    reason="../shared/data (crypto_daily, cross_asset_daily, ff5_monthly) is not beside the repo",
)
#: a small, fast training budget for the tests
FAST = model.TrainOptions(epochs=15, replicates=1, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """Coins 2017-11 .. 2022-06 and the default market series (and XLE), as the csv source
    would deliver them, plus the monthly factors."""
    assert DATA is not None
    coins = pd.read_csv(DATA / "crypto_daily.csv.gz", parse_dates=["date"])
    coins = coins.loc[coins["date"].between("2017-11-01", "2022-06-30")].assign(
        adj_close=np.nan, source="csv"
    )
    xa = pd.read_csv(DATA / "cross_asset_daily.csv.gz", parse_dates=["date"])
    keep = ["DX-Y.NYB", "SPY", "GC=F", "CL=F", "XLE"]
    xa = xa.loc[xa["symbol"].isin(keep) & xa["date"].between("2017-09-15", "2022-06-30")]
    xa = xa.assign(adj_close=np.nan, source="csv")
    ff5 = pd.read_csv(DATA / "ff5_monthly.csv", dtype={"date": str})
    ff5["month"] = pd.to_datetime(ff5["date"], format="%Y-%m")
    factors = ff5.melt(id_vars="month", value_vars=["Mkt-RF", "SMB", "HML", "RMW", "CMA", "RF"],
                       var_name="series", value_name="value")
    factors["series"] = factors["series"].str.lower().str.replace("-", "_")
    factors["value"] /= 100.0
    return {"coins": coins, "cross": xa, "factors": factors}


@pytest.fixture(scope="module")
def wide(raw) -> pd.DataFrame:
    long, _ = crypto_monthly_returns(raw["coins"], raw["cross"])
    return common_sample(wide_returns(long), COINS)


# --- data -------------------------------------------------------------------------------------


def test_month_end_drops_incomplete_months_and_nonpositive_prints() -> None:
    days = pd.date_range("2021-01-01", "2021-03-10", freq="D")
    prices = pd.DataFrame({"date": days, "symbol": "X", "close": np.arange(1.0, len(days) + 1)})
    prices.loc[prices["date"] == "2021-02-28", "close"] = -5.0  # a negative month-end print
    ends, dropped = month_end_prices(prices)
    assert list(ends["month"].dt.strftime("%Y-%m")) == ["2021-01", "2021-02"]  # March partial
    feb = ends.loc[ends["month"] == "2021-02-01"].iloc[0]
    assert feb["close_date"] == pd.Timestamp("2021-02-27") and feb["close"] == 58.0
    assert list(dropped["price"]) == [-5.0]
    with pytest.raises(DataValidationError, match="non-positive"):
        month_end_prices(prices, nonpositive="error")


@needs_data
def test_monthly_log_returns_and_wti_treatment(raw) -> None:
    long, summary = crypto_monthly_returns(raw["coins"], raw["cross"])
    assert set(long["asset"]) == {*COINS, "FIAT", "EQUITY", "GOLD", "ENERGY"}
    assert summary["nonpositive_dropped"] == ["CL=F 2020-04-20 -37.63"]
    energy = long.loc[long["asset"] == "ENERGY"].set_index("month")
    # April 2020 ends on 2020-04-30 at a positive close: the -37.63 print does not matter
    apr = energy.loc["2020-04-01"]
    assert apr["close_date"] == pd.Timestamp("2020-04-30") and apr["close"] > 0
    assert np.isclose(apr["log_ret"], np.log(apr["close"] / energy.loc["2020-03-01", "close"]))
    btc = raw["coins"].loc[raw["coins"]["symbol"] == "BTC-USD"].set_index("date")["close"]
    got = long.loc[(long["asset"] == "BTC") & (long["month"] == "2021-01-01"), "log_ret"].item()
    assert np.isclose(got, np.log(btc["2021-01-31"] / btc["2020-12-31"]))
    # an energy ETF instead of crude is a configuration choice
    etf, _ = crypto_monthly_returns(
        raw["coins"], raw["cross"], MarketChoice({**MarketChoice().series, "ENERGY": "XLE"})
    )
    assert set(etf.loc[etf["asset"] == "ENERGY", "symbol"]) == {"XLE"}
    with pytest.raises(DataValidationError, match="not in the cross-asset prices"):
        crypto_monthly_returns(
            raw["coins"], raw["cross"], MarketChoice({"FIAT": "EURUSD=X"})
        )


def test_source_error_says_how_to_configure(tmp_path) -> None:
    message = study_source_error(make_source("embedded"))
    assert message is not None
    for part in ("'crypto'", "'cross_asset'", "--source csv --config shared_data",
                 "--source yfinance", "BETA_PIPELINE_SOURCE=csv"):
        assert part in message
    assert study_source_error(make_source("csv", "shared_data")) is None
    assert study_source_error(make_source("yfinance", download=lambda **_: None)) is None
    cfg = tmp_path / "only_crypto.yaml"
    cfg.write_text("version: 1\nuniverses:\n  crypto:\n    - path: x.csv\n")
    message = study_source_error(make_source("csv", str(cfg)))
    assert message is not None and "no 'cross_asset' universe" in message


def test_quality_rules_flag_gaps_and_nonpositive_prices() -> None:
    days = pd.date_range("2020-01-01", "2020-01-31", freq="D")
    coins = pd.DataFrame({"date": days, "symbol": "BTC-USD", "close": 1.0})
    coins = coins.loc[coins["date"] != "2020-01-10"]
    out = {o.check_name: o for o in quality.check_crypto_prices(coins)}
    assert not out["crypto_prices_gaps"].passed and out["crypto_prices_gaps"].observed == 1
    assert out["crypto_prices_positive"].passed and out["crypto_prices_keys_unique"].passed
    wd = pd.bdate_range("2020-04-01", "2020-05-29")
    xa = pd.concat([
        pd.DataFrame({"date": wd, "symbol": "CL=F", "close": 20.0}),
        pd.DataFrame({"date": wd[wd != "2020-04-15"], "symbol": "SPY", "close": 280.0}),
    ], ignore_index=True)
    xa.loc[(xa["symbol"] == "CL=F") & (xa["date"] == "2020-04-20"), "close"] = -37.63
    out = {o.check_name: o for o in quality.check_cross_asset_prices(xa, ("CL=F",))}
    assert out["cross_asset_prices_positive"].passed  # CL=F is allowed
    allowed = out["cross_asset_prices_nonpositive_allowed"]
    assert not allowed.passed and allowed.severity == "warn"
    assert "CL=F 2020-04-20" in allowed.details
    assert out["cross_asset_prices_gaps"].passed  # one missing weekday is not a gap
    out = {o.check_name: o for o in quality.check_cross_asset_prices(xa, ())}
    assert not out["cross_asset_prices_positive"].passed
    assert out["cross_asset_prices_positive"].severity == "error"


# --- model ------------------------------------------------------------------------------------


@needs_data
def test_samples_windows_and_time_split(wide) -> None:
    s = model.build_samples(wide, COINS, ("FIAT", "EQUITY"), FAST)
    assert s.features.shape[1] == 12 * 3 and s.channels == ("y", "FIAT", "EQUITY")
    # a sample's window is the 12 months up to its formation month, oldest first
    i = np.flatnonzero((s.coin == "ETH") & (s.formed == pd.Timestamp("2020-06-01")))[0]
    block = wide.loc["2019-07-01":"2020-06-01", ["ETH", "FIAT", "EQUITY"]].to_numpy()
    assert np.allclose(s.features[i].reshape(12, 3), block)
    assert s.target[i] == pd.Timestamp("2020-07-01")
    assert np.isclose(s.y_next[i], wide.loc["2020-07-01", "ETH"])
    # split by target month, in time order, 60/20/20, the last formation month is live
    order = ["train", "val", "test"]
    by_month = pd.Series(s.split, index=s.target).groupby(level=0).first()
    realised = by_month[by_month != "live"]
    assert list(pd.unique(realised)) == order
    shares = realised.value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.05 and abs(shares["val"] - 0.2) < 0.05
    assert set(s.formed[s.split == "live"]) == {wide.index.max()}


@needs_data
def test_grid_is_deterministic_and_models_are_independent(wide) -> None:
    s = model.build_samples(wide, COINS, ("EQUITY",), FAST)
    grid = model.make_grid([4, 8], [0.01], ["tanh", "relu", "linear"])
    a = model.fit_grid(s, grid, FAST, "EQUITY")
    b = model.fit_grid(s, grid, FAST, "EQUITY")
    assert np.array_equal(a.betas, b.betas) and np.array_equal(a.history, b.history)
    # a grid point trained alone gives the same betas as inside the batched model
    alone = model.fit_grid(s, [grid[3]], FAST, "EQUITY")
    assert np.allclose(alone.betas[0], a.betas[3], atol=1e-10)
    table = a.table()
    assert list(table.columns[:5]) == ["config", "lookback", "hidden", "lr", "activation"]
    assert np.isfinite(table["val_rmse"]).all() and (table["best_epoch"] >= 1).all()
    best = model.best_row(a)
    assert best["val_rmse"] == pytest.approx(table["val_rmse"].min())
    curve = model.learning_curve(a, a.best)
    assert len(curve) == FAST.epochs + 1
    assert curve["train_rmse"].iloc[-1] < curve["train_rmse"].iloc[0]


@needs_data
def test_no_look_ahead_in_out_of_sample_betas(wide) -> None:
    """Betas formed in month t (test span) do not move when later returns change."""
    config = ("FIAT", "GOLD")
    s = model.build_samples(wide, COINS, config, FAST)
    test_months = sorted(set(s.formed[s.split == "test"]))
    cut = test_months[2]
    bumped = wide.copy()
    later = bumped.index > cut
    bumped.loc[later] = bumped.loc[later] * 3.0 + 0.05
    grid = [model.GridPoint(8, 0.01, "tanh")]
    fits = [model.fit_grid(model.build_samples(w, COINS, config, FAST), grid, FAST, "c")
            for w in (wide, bumped)]
    frames = [model.betas_frame(f, 0) for f in fits]
    known = [f.loc[(f["data_end"] <= cut) & (f["split"] == "test")] for f in frames]
    assert len(known[0]) > 0
    assert np.array_equal(known[0]["beta"].to_numpy(), known[1]["beta"].to_numpy())
    later_rows = [f.loc[f["data_end"] > cut, "beta"].to_numpy() for f in frames]
    assert not np.allclose(later_rows[0], later_rows[1])  # the perturbation is visible
    train_end = pd.Timestamp(s.bounds["train_end"])
    base = [compare.baseline_betas(w, COINS, config, "c", train_end)[0] for w in (wide, bumped)]
    old = [b.loc[b["data_end"] <= cut].sort_values(list(b.columns[:6])) for b in base]
    assert np.allclose(old[0]["beta"].to_numpy(), old[1]["beta"].to_numpy(), atol=1e-12)


# --- baselines --------------------------------------------------------------------------------


def test_kalman_matches_the_scalar_filter_and_ols_matches_lstsq() -> None:
    rng = np.random.default_rng(0)
    t, n = 80, 3
    x = rng.normal(0, 0.05, t)
    beta = 1.0 + np.cumsum(rng.normal(0, 0.1, (t, n)), axis=0)
    y = 0.01 + beta * x[:, None] + rng.normal(0, 0.05, (t, n))
    fit = compare.fit_kalman(y, x[:, None], 50)
    mine, _ = kalman_filter_multi(y, x[:, None], fit.q, fit.h, fit.alpha, fit.p0)
    ref = kalman_filter(y, x, fit.q[:, 0], fit.h, fit.alpha, beta0=0.0, p0=fit.p0[:, 0])
    assert np.allclose(mine[:, :, 0], ref.predicted, atol=1e-12)
    assert 1e-8 < fit.snr < 10
    x2 = np.column_stack([x, rng.normal(0, 0.03, t)])
    res = rolling_ols(y, x2, 12, min_obs=12)
    design = np.column_stack([np.ones(12), x2[40:52]])
    coef, *_ = np.linalg.lstsq(design, y[40:52, 1], rcond=None)
    assert np.allclose(res.beta[51, 1], coef[1:])


# --- results ----------------------------------------------------------------------------------


def _toy_betas() -> tuple[pd.DataFrame, pd.DataFrame]:
    months = pd.date_range("2020-01-01", periods=8, freq="MS")
    rng = np.random.default_rng(1)
    wide = pd.DataFrame(rng.normal(0, 0.1, (8, 5)), index=months,
                        columns=["BTC", "ETH", "LTC", "BCH", "EQUITY"])
    rows = []
    for method, shift in (("mlp", 0.0), ("ols_36", 0.5)):
        for k, coin in enumerate(["BTC", "ETH", "LTC", "BCH"]):
            for m in months[1:]:
                rows.append(dict(month=m, data_end=m - pd.offsets.MonthBegin(1), coin=coin,
                                 config="EQUITY", market="EQUITY", method=method,
                                 beta=k + shift, split="test" if m >= months[5] else "train"))
    return pd.DataFrame(rows), wide


def test_hedging_stats_and_quartile_sorts_on_a_toy_panel() -> None:
    betas, wide = _toy_betas()
    table = analysis.hedging_table(betas, wide, reference="ols_36").set_index(["method", "split"])
    test = wide.loc["2020-06-01":]
    coins = ["BTC", "ETH", "LTC", "BCH"]
    err = test[coins].to_numpy() - np.arange(4.0)[None, :] * test[["EQUITY"]].to_numpy()
    assert table.loc[("mlp", "test"), "rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert table.loc[("zero", "test"), "rmse"] == pytest.approx(
        np.sqrt(np.mean(test[coins].to_numpy() ** 2))
    )
    assert table.loc[("ols_36", "test"), "improvement_pct"] == pytest.approx(0.0)
    st = analysis.beta_stats(betas.assign(beta=betas["beta"] + np.tile(
        np.linspace(0, 1, 7), 8)))
    row = st.loc[(st["method"] == "mlp") & (st["coin"] == "BTC") & (st["sample"] == "all")]
    v = np.linspace(0, 1, 7)
    assert row["n"].item() == 7 and row["mean"].item() == pytest.approx(v.mean())
    assert row["kurtosis"].item() == pytest.approx(stats.kurtosis(v, fisher=False))
    annual = analysis.annual_betas(betas)
    assert set(annual["year"]) == {2020} and (annual["n"] == 7).all()
    rf = pd.Series(0.001, index=wide.index)
    rows, _ = analysis.quartile_sorts(betas, analysis.excess_returns(wide, coins, rf))
    mlp = rows.loc[(rows["method"] == "mlp") & (rows["quartile"] != "HML")]
    assert (mlp["n"] == 1).all()  # four coins: one per quartile
    first = mlp.loc[mlp["month"] == "2020-03-01"].set_index("quartile")
    assert list(first["mean_beta"]) == [0.0, 1.0, 2.0, 3.0]
    assert first.loc["4", "excess_return"] == pytest.approx(np.expm1(wide.loc["2020-03-01",
                                                                               "BCH"]) - 0.001)


@needs_data
def test_ff5_addon_uses_the_factor_overlap(wide, raw) -> None:
    factors = analysis.factor_frame(raw["factors"])
    assert list(factors.columns) == list(analysis.FF5)
    short = factors.loc[:"2021-12-01"]  # factors ending before the coins
    out = analysis.ff5_addon(wide, short, COINS, {"EQUITY": model.GridPoint(4, 0.01, "tanh")},
                             FAST)
    row = out.iloc[0]
    assert row["factors_end"] == "2021-12" and row["test_end"] == "2022-01"
    assert np.isfinite(row["change_pct"]) and row["n_test"] > 0
    assert row["change_pct"] == pytest.approx(
        100 * (row["test_rmse_ff5"] / row["test_rmse_base"] - 1)
    )


def test_split_needs_three_non_empty_spans() -> None:
    import pandas as pd
    import pytest

    from beta_pipeline.lib.crypto.model import split_targets

    months = pd.date_range("2020-01-31", periods=10, freq="ME")
    labels = split_targets(months, 0.6, 0.2)
    assert [labels[m] for m in months].count("test") == 2
    with pytest.raises(ValueError, match="cannot be split"):
        split_targets(months[:3], 0.6, 0.2)


# --- the assets' steps (lib.crypto.study) ------------------------------------------------------


def test_study_panel_orders_coins_and_keeps_coin_months() -> None:
    from beta_pipeline.lib.crypto import study

    months = pd.date_range("2020-01-01", periods=3, freq="MS")
    long = pd.DataFrame(
        {"month": np.repeat(months, 3), "asset": ["ZZZ", "ETH", "FIAT"] * 3,
         "role": ["coin", "coin", "market"] * 3, "log_ret": np.arange(9.0)}
    )
    assert study.coin_order(long) == ["ETH", "ZZZ"]
    wide, coins = study.study_panel(long)
    assert coins == ["ETH", "ZZZ"] and len(wide) == 3
    cum = study.cumulative_log_returns(wide)
    assert list(cum.columns) == ["month", "asset", "cum_log_ret"]
    assert cum.loc[cum["asset"] == "FIAT", "cum_log_ret"].tolist() == [2.0, 7.0, 15.0]


def test_best_points_and_split_bounds_round_trip() -> None:
    import json

    from beta_pipeline.lib.crypto import study

    opt = model.TrainOptions(epochs=7, replicates=2)
    best = pd.DataFrame(
        {"config": ["FIAT", "EQUITY"], "hidden": [4, 8], "lr": [0.01, 0.1],
         "activation": ["tanh", "relu"], "options": json.dumps(opt.__dict__),
         "train_end": pd.to_datetime(["2020-05-01"] * 2),
         "val_end": pd.to_datetime(["2020-09-01"] * 2),
         "test_end": pd.to_datetime(["2021-01-01"] * 2)}
    )
    options, points = study.best_points(best)
    assert options == opt
    assert points == {"FIAT": model.GridPoint(4, 0.01, "tanh"),
                      "EQUITY": model.GridPoint(8, 0.1, "relu")}
    assert study.split_bounds(best.iloc[0]) == {
        "train_end": "2020-05", "val_end": "2020-09", "test_end": "2021-01"
    }
    frame = pd.DataFrame({"method": ["mlp", "mlp", "ols_12"], "config": ["FIAT", "FIAT+GOLD",
                          "FIAT"], "market": ["FIAT", "FIAT", "FIAT"]})
    assert study.single_market(frame).index.tolist() == [0]


def test_baselines_and_quartile_study_on_a_toy_panel() -> None:
    from beta_pipeline.lib.crypto import study

    betas, wide = _toy_betas()
    best = pd.DataFrame({"config": ["EQUITY"], "train_end": [pd.Timestamp("2020-04-01")],
                         "val_end": [pd.Timestamp("2020-05-01")],
                         "test_end": [pd.Timestamp("2020-12-01")]})
    coins = ["BTC", "ETH", "LTC", "BCH"]
    table, snr = study.study_baselines(wide, coins, best, [3], expanding=True, kalman=False)
    assert set(table["method"]) == {"ols_3", "ols_exp"} and snr == {}
    assert set(table["split"]) <= {"train", "val", "test", "live"}
    factors = pd.DataFrame({"month": wide.index[:-2], "series": "rf", "value": 0.001})
    out = study.quartile_study(wide, coins, factors, betas)
    assert out.rf_filled == 2
    direct, _ = analysis.quartile_sorts(
        betas, analysis.excess_returns(wide, coins, pd.Series(0.001, index=wide.index))
    )
    pd.testing.assert_frame_equal(out.rows, direct)
    pd.testing.assert_frame_equal(out.summary, analysis.quartile_summary(direct))

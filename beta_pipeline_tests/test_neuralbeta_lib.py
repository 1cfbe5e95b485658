"""NeuralBeta evaluation helpers: metrics, Table 1, window Kalman baseline, Kalman study,
market panels and inference windows (no look-ahead)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.estimators.kalman import kalman_filter
from beta_pipeline.lib.neuralbeta import (
    baselines,
    evaluation,
    figure_data,
    inference,
    kalman_study,
    metrics,
    scenarios,
    synthetic,
    windows,
)
from beta_pipeline.lib.neuralbeta.market import inference_windows, market_panel


def test_metric_rows_improvement_and_oracle_gap() -> None:
    rng = np.random.default_rng(0)
    x_next = rng.normal(size=(400, 1))
    beta_true = rng.normal(1, 1, size=(400, 1))
    y_next = (beta_true * x_next)[:, 0] + rng.normal(size=400)
    betas = {"ols": beta_true + 1.0, "half": beta_true + 0.5, "oracle": beta_true}
    rows = metrics.metric_rows("t", betas, x_next, y_next, beta_true).set_index("model")
    r_ols = np.sqrt(np.mean((y_next - (betas["ols"] * x_next)[:, 0]) ** 2))
    r_half = np.sqrt(np.mean((y_next - (betas["half"] * x_next)[:, 0]) ** 2))
    r_or = np.sqrt(np.mean((y_next - (beta_true * x_next)[:, 0]) ** 2))
    assert rows.at["half", "rmse_y"] == pytest.approx(r_half)
    assert rows.at["half", "improvement_vs_ols_pct"] == pytest.approx(100 * (1 - r_half / r_ols))
    assert rows.at["half", "oracle_gap_closed"] == pytest.approx((r_ols - r_half) / (r_ols - r_or))
    assert rows.at["half", "rmse_beta"] == pytest.approx(0.5)
    assert rows.at["oracle", "oracle_gap_closed"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reference"):
        metrics.metric_rows("t", {"half": betas["half"]}, x_next, y_next)


def test_table1_puts_paper_beside_ours() -> None:
    ev = pd.DataFrame(
        {
            "experiment": ["stepwise", "stepwise", "univariate"],
            "model": ["wls", "gru_nbi", "gru_nb"],
            "improvement_vs_ols_pct": [19.5, 21.234, 0.1],
        }
    )
    t1 = metrics.table1(ev)
    assert list(t1.index) == ["stepwise", "univariate"]
    assert t1.at["stepwise", "gru_nbi"] == "21.23 (21.98)"
    assert t1.at["stepwise", "wls"] == "19.50 (20.21)"
    assert t1.at["stepwise", "attn_nb"] == "— (21.65)"
    assert t1.at["univariate", "gru_nb"] == "0.10 (0.22)"


def test_window_kalman_equals_filter_on_each_window_and_fits_variances() -> None:
    data = synthetic.generate("stepwise", n=3000, seed=3)
    x, y, *_ = data.windows()
    params = baselines.fit_kalman_windows(x, y, max_windows=2000)
    assert params["q"] > 0 and 0.7 < params["h"] < 1.3  # unit noise
    beta = baselines.kalman_window_beta(x[:5], y[:5], params)
    for i in range(5):
        one = kalman_filter(
            y[i],
            x[i, :, 0],
            params["q"],
            params["h"],
            0.0,
            beta0=params["beta0"],
            p0=params["p0"],
        )
        assert beta[i, 0] == pytest.approx(one.predicted[-1, 0], rel=1e-10)


def test_synthetic_baselines_rank_as_expected_on_stepwise() -> None:
    parts = synthetic.generate("stepwise", n=6000, seed=1).split()
    betas, params = baselines.synthetic_baselines(
        "stepwise", parts["train"], parts["val"], parts["test"]
    )
    _, _, xn, yn, bn = parts["test"].windows()
    rows = metrics.metric_rows("stepwise", betas, xn, yn, bn).set_index("model")
    assert set(rows.index) == {"ols", "wls", "kalman", "bayes", "oracle"}
    assert rows.at["wls", "improvement_vs_ols_pct"] > 10
    assert rows.at["bayes", "rmse_y"] < rows.at["wls", "rmse_y"] < rows.at["ols", "rmse_y"]
    assert params["wls_half_life"] in windows.DEFAULT_HALF_LIVES


def test_kalman_study_beats_rolling_ols_and_has_no_lookahead() -> None:
    frame, params = kalman_study.kalman_study(seed=4)
    assert params["state_var"] > 0
    # row t uses data to t: truncating the series after t leaves earlier rows unchanged
    s = synthetic.kalman_step(seed=4)
    short = kalman_study.rolling_ols_series(s.y[:600], s.x[:600], 30)
    np.testing.assert_allclose(frame["ols_30"].to_numpy()[:599], short[:599])
    mc = kalman_study.kalman_monte_carlo(range(6))
    summary = kalman_study.kalman_summary(mc)
    assert summary["seeds"] == 6
    assert summary["kalman_beats_rolling_share"] >= 0.5
    assert summary["mse_ols_full_mean"] > summary["mse_ols_30_mean"]


def test_sliding_windows_match_direct_slices() -> None:
    x = np.arange(20, dtype=float)[:, None]
    y = np.arange(20, dtype=float) * 2
    xw, yw = windows.sliding_windows(x, y, 5)
    assert xw.shape == (16, 5, 1) and yw.shape == (16, 5)
    np.testing.assert_array_equal(xw[3, :, 0], x[3:8, 0])
    np.testing.assert_array_equal(yw[3], y[3:8])


def _long_panel(n_days: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n_days)
    mkt = rng.normal(0, 0.01, n_days)
    rows = []
    for sym, b in (("AAA", 1.2), ("BBB", 0.7)):
        ret = b * mkt + rng.normal(0, 0.01, n_days)
        rows.append(
            pd.DataFrame({"date": dates, "symbol": sym, "ret_excess": ret, "mkt_excess": mkt})
        )
    returns = pd.concat(rows, ignore_index=True)
    level = 100 * np.cumprod(1 + rng.normal(0, 0.01, (n_days, 2)), axis=0)
    market = pd.concat(
        [
            pd.DataFrame({"date": dates, "series": "size_level", "value": level[:, 0]}),
            pd.DataFrame({"date": dates, "series": "vlue_level", "value": level[:, 1]}),
            pd.DataFrame({"date": dates, "series": "rf", "value": 0.0001}),
        ]
    )
    return returns, market


def test_market_panel_builds_size_value_from_etf_levels_or_smb_hml() -> None:
    returns, market = _long_panel()
    y, x, desc = market_panel(returns, market, "multivariate")
    assert list(x.columns) == ["mkt_excess", "size", "value"] and "ETF" in desc
    lv = market[market.series == "size_level"].set_index("date")["value"]
    day = lv.index[5]
    assert x.at[day, "size"] == pytest.approx(lv.iloc[5] / lv.iloc[4] - 1 - 0.0001)
    assert x.index[0] == y.index[0] == returns["date"].min() + pd.offsets.BDay(1)
    ff = pd.concat(
        [market.assign(series="smb", value=0.001), market.assign(series="hml", value=-0.002)]
    ).drop_duplicates(["date", "series"])
    _, x2, desc2 = market_panel(returns, ff, "multivariate")
    assert (x2["value"] == -0.002).all() and "SMB" in desc2
    with pytest.raises(DataValidationError, match="smb and hml"):
        market_panel(returns, market[market.series == "rf"], "multivariate")
    with pytest.raises(DataValidationError, match="no returns"):
        market_panel(returns.iloc[:0], market, "univariate")


def test_inference_windows_end_on_date_and_ignore_the_future() -> None:
    returns, market = _long_panel()
    y, x, _ = market_panel(returns, market, "univariate")
    start, end = y.index[70], y.index[90]
    xw, yw, keys = inference_windows(y, x, 64, start, end)
    assert len(keys) == 2 * 20 and keys["date"].min() == start and keys["date"].max() < end
    i = int(np.flatnonzero((keys["date"] == y.index[75]) & (keys["symbol"] == "BBB"))[0])
    np.testing.assert_array_equal(yw[i], y["BBB"].to_numpy()[12:76])
    np.testing.assert_array_equal(xw[i, :, 0], x["mkt_excess"].to_numpy()[12:76])
    # perturb every day after the window's date: its inputs do not change
    y2 = y.copy()
    y2.iloc[76:] = 99.0
    xw2, yw2, keys2 = inference_windows(y2, x, 64, y.index[75], y.index[76])
    j = int(np.flatnonzero(keys2["symbol"] == "BBB")[0])
    np.testing.assert_array_equal(yw2[j], yw[i])
    np.testing.assert_array_equal(xw2[j], xw[i])
    # a missing value inside a window drops that window only
    y3 = y.copy()
    y3.iloc[10, 0] = np.nan
    _, _, keys3 = inference_windows(y3, x, 64, start, end)
    assert len(keys3) == len(keys) - 4  # AAA windows ending on rows 70..73 contain row 10


def test_nbi_weight_profiles_pick_calm_and_volatile_months() -> None:
    dates = pd.bdate_range("2020-01-01", "2020-04-30")
    rng = np.random.default_rng(0)
    vol = np.where(dates.month == 3, 0.05, 0.005)
    mkt = pd.Series(rng.normal(0, 1, len(dates)) * vol, index=dates)
    w = np.abs(rng.normal(1, 0.1, (len(dates), 64)))
    calm, wild, labels, scatter = figure_data.nbi_weight_profiles(w, dates, mkt)
    assert "2020-03" in labels[1] and calm.shape == wild.shape == (64,)
    assert set(scatter.columns) == {"date", "recent_weight_share", "market_vol_5d"}
    assert scatter["recent_weight_share"].between(0, 1).all()


def test_assign_runs_picks_the_newest_run_trained_before_each_date() -> None:
    runs = pd.DataFrame({"trained_through": pd.to_datetime(["2020-01-10", "2020-03-31"])})
    dates = pd.Series(pd.to_datetime(["2020-01-09", "2020-01-10", "2020-02-01", "2020-04-01"]))
    np.testing.assert_array_equal(inference.assign_runs(dates, runs), [-1, 0, 0, 1])


def test_evaluation_table_adds_paper_values_and_history_correlation() -> None:
    model_rows = [
        pd.DataFrame(
            {"experiment": ["stepwise"], "model": ["gru_nbi"], "test_set": ["split"]}
        ).assign(rmse_y=1.0, run_id="r1")
    ]
    base = pd.DataFrame(
        {"experiment": ["stepwise"], "estimator": ["wls"], "test_set": ["split"], "rmse_y": 1.1}
    )
    market = {
        "univariate": pd.DataFrame(
            {"experiment": ["univariate"], "model": ["ols"], "test_set": ["test"], "rmse_y": 2.0}
        )
    }
    history = pd.DataFrame(
        {"run_id": "r1", "rmse_y": [3.0, 2.0, 1.0], "rmse_beta": [0.3, 0.2, 0.15]}
    )
    table = evaluation.evaluation_table(model_rows, base, market, history).set_index("model")
    assert table.at["gru_nbi", "paper_improvement_pct"] == pytest.approx(21.98)
    assert table.at["wls", "paper_improvement_pct"] == pytest.approx(20.21)
    assert np.isnan(table.at["ols", "paper_improvement_pct"])
    corr = np.corrcoef([3.0, 2.0, 1.0], [0.3, 0.2, 0.15])[0, 1]
    assert table.at["gru_nbi", "corr_rmse_y_rmse_beta"] == pytest.approx(corr)
    assert table["run_id"].isna().sum() == 2


def test_scenario_files_round_trip_and_drop_a_stale_independent_set(tmp_path) -> None:
    first = scenarios.write_scenario(tmp_path, "stepwise", 200, 16, 3, independent=50)
    assert set(first.views) == {"stepwise", "stepwise_independent"} and not first.stale
    assert first.rows == 200 and first.info == {"window": 16, "split": scenarios.SPLIT_NOTE}
    sets = scenarios.scenario_test_sets(tmp_path, "stepwise")
    assert set(sets) == {"split", "independent"} and sets["independent"].n == 50
    np.testing.assert_array_equal(
        sets["split"].y, synthetic.generate("stepwise", 200, 16, seed=3).y[180:]
    )
    again = scenarios.write_scenario(tmp_path, "stepwise", 200, 16, 3, independent=0)
    assert again.stale == ["stepwise_independent"] and set(again.views) == {"stepwise"}
    assert set(scenarios.scenario_test_sets(tmp_path, "stepwise")) == {"split"}
    with pytest.raises(FileNotFoundError):
        scenarios.load_scenario(tmp_path, "cyclical")
    kalman = scenarios.write_scenario(tmp_path, "kalman_step", 0, 0, 0, independent=0)
    assert kalman.rows == 1000 and not kalman.info
    assert list(kalman.preview.columns) == ["step", "x", "y", "beta"]

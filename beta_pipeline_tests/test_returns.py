"""Unit tests of lib/returns.py: arithmetic, gaps, listings and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.returns import daily_returns, market_returns, monthly_returns


def _prices(symbol: str, dates, closes) -> pd.DataFrame:
    dates = pd.to_datetime(dates)
    return pd.DataFrame(
        {
            "date": dates,
            "symbol": symbol,
            "open": np.nan,
            "high": np.nan,
            "low": np.nan,
            "close": closes,
            "adj_close": closes,
            "volume": np.nan,
            "source": "test",
        }
    )


def _market(dates, levels, rf=0.0001) -> pd.DataFrame:
    dates = pd.to_datetime(dates)
    lvl = pd.DataFrame({"date": dates, "series": "mkt_level", "value": levels})
    rfs = pd.DataFrame({"date": dates, "series": "rf", "value": rf})
    return pd.concat([lvl, rfs], ignore_index=True)


DAYS = pd.bdate_range("2020-01-01", periods=30)


def test_simple_log_and_excess_returns():
    closes = 100 * np.cumprod(1 + np.linspace(-0.01, 0.02, len(DAYS)))
    levels = 1000 * np.cumprod(1 + np.linspace(0.01, -0.01, len(DAYS)))
    out = daily_returns(_prices("AAA", DAYS, closes), _market(DAYS, levels))
    assert len(out) == len(DAYS) - 1
    expected = closes[1:] / closes[:-1] - 1
    np.testing.assert_allclose(out["ret"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["log_ret"], np.log(closes[1:] / closes[:-1]), rtol=1e-12)
    np.testing.assert_allclose(out["ret_excess"], expected - 0.0001, rtol=1e-12)
    mkt = levels[1:] / levels[:-1] - 1
    np.testing.assert_allclose(out["mkt_excess"], mkt - 0.0001, rtol=1e-12)
    assert (out["prev_date"] < out["date"]).all()


def test_gap_longer_than_lookback_gets_no_return_and_listing_starts_later():
    a = _prices("AAA", DAYS, np.linspace(10, 12, len(DAYS)))
    # BBB listed mid-range, then a 12-weekday hole
    b_days = list(DAYS[10:14]) + list(DAYS[26:])
    b = _prices("BBB", b_days, np.linspace(20, 21, len(b_days)))
    out = daily_returns(pd.concat([a, b]), _market(DAYS, np.linspace(1000, 1010, len(DAYS))))
    bbb = out[out["symbol"] == "BBB"]
    assert bbb["date"].min() == DAYS[11]  # no return on the listing day
    assert DAYS[26] not in set(bbb["date"])  # previous price 12 weekdays back: no return
    assert len(bbb) == 3 + (len(DAYS) - 27)
    assert not out[["ret", "log_ret", "ret_excess", "mkt_excess"]].isna().any().any()


def test_window_keeps_only_requested_dates_and_uses_earlier_prices():
    px = _prices("AAA", DAYS, np.linspace(10, 13, len(DAYS)))
    mk = _market(DAYS, np.linspace(1000, 1010, len(DAYS)))
    full = daily_returns(px, mk)
    part = daily_returns(px, mk, start=DAYS[10], end=DAYS[20])
    assert part["date"].min() == DAYS[10] and part["date"].max() == DAYS[19]
    pd.testing.assert_frame_equal(
        part.reset_index(drop=True),
        full[(full["date"] >= DAYS[10]) & (full["date"] < DAYS[20])].reset_index(drop=True),
    )


def test_perturbing_the_future_leaves_past_returns_unchanged():
    rng = np.random.default_rng(0)
    closes = 50 * np.cumprod(1 + rng.normal(0, 0.01, len(DAYS)))
    levels = 900 * np.cumprod(1 + rng.normal(0, 0.01, len(DAYS)))
    base = daily_returns(_prices("AAA", DAYS, closes), _market(DAYS, levels))
    t = DAYS[15]
    closes2, levels2 = closes.copy(), levels.copy()
    closes2[16:] *= rng.uniform(0.5, 1.5, len(DAYS) - 16)
    levels2[16:] *= rng.uniform(0.5, 1.5, len(DAYS) - 16)
    moved = daily_returns(_prices("AAA", DAYS, closes2), _market(DAYS, levels2))
    past = base["date"] <= t
    pd.testing.assert_frame_equal(base[past], moved[moved["date"] <= t])
    assert not np.allclose(base.loc[~past, "ret"], moved.loc[moved["date"] > t, "ret"])


def test_non_positive_price_is_a_named_error():
    closes = np.linspace(10, 12, len(DAYS))
    closes[5] = 0.0
    with pytest.raises(DataValidationError) as err:
        daily_returns(_prices("CLF", DAYS, closes), _market(DAYS, np.full(len(DAYS), 100.0)))
    assert err.value.rule == "positive_price"
    assert err.value.symbol == "CLF" and err.value.date == str(DAYS[5].date())


def test_wti_style_negative_price_cannot_give_a_log_return():
    closes = np.linspace(20, 18, len(DAYS))
    closes[12] = -37.63
    with pytest.raises(DataValidationError, match="positive_price"):
        daily_returns(_prices("CL=F", DAYS, closes), _market(DAYS, np.full(len(DAYS), 100.0)))


def test_market_from_factor_series():
    dates = pd.to_datetime(DAYS[:3])
    mk = pd.DataFrame(
        {
            "date": np.repeat(dates, 2),
            "series": ["mkt_rf", "rf"] * 3,
            "value": [0.01, 0.0001, -0.02, 0.0001, 0.005, 0.0002],
        }
    )
    out = market_returns(mk)
    np.testing.assert_allclose(out["mkt_excess"], [0.01, -0.02, 0.005])
    np.testing.assert_allclose(out["mkt"], [0.0101, -0.0199, 0.0052])


def test_monthly_compounds_daily_and_shares_market_leg():
    days = pd.bdate_range("2021-01-01", "2021-02-26")
    rng = np.random.default_rng(1)
    a = _prices("AAA", days, 10 * np.cumprod(1 + rng.normal(0, 0.01, len(days))))
    b = _prices("BBB", days[5:], 30 * np.cumprod(1 + rng.normal(0, 0.01, len(days) - 5)))
    daily = daily_returns(pd.concat([a, b]), _market(days, np.linspace(100, 104, len(days))))
    monthly = monthly_returns(daily)
    jan = daily[(daily["symbol"] == "AAA") & (daily["date"].dt.month == 1)]
    row = monthly[(monthly["symbol"] == "AAA") & (monthly["month"] == "2021-01-01")].iloc[0]
    assert row["ret"] == pytest.approx(np.prod(1 + jan["ret"]) - 1, rel=1e-12)
    assert row["n_days"] == len(jan)
    assert monthly.groupby("month")["mkt_excess"].nunique().max() == 1

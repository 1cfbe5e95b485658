"""Unit tests of lib/quality/prices.py on small synthetic canonical price frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.quality import PRICE_CHECKS, CheckOutcome, check_prices
from beta_pipeline.lib.schema import PRICE_COLUMNS

DAYS = pd.bdate_range("2024-01-01", periods=30)  # Mon 2024-01-01 .. Fri 2024-02-09
SYMBOLS = [f"S{i:02d}" for i in range(10)]


def make_prices(symbols=SYMBOLS, days=DAYS, seed: int = 0) -> pd.DataFrame:
    """Canonical prices: a random walk per symbol (no two consecutive closes equal)."""
    rng = np.random.default_rng(seed)
    frames = []
    for sym in symbols:
        steps = rng.normal(0.0, 0.01, len(days)) + 0.002
        close = 50.0 * np.cumprod(1.0 + steps)
        frames.append(
            pd.DataFrame(
                {
                    "date": days,
                    "symbol": sym,
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "adj_close": close,
                    "volume": 1e6,
                    "source": "test",
                }
            )
        )
    return pd.concat(frames, ignore_index=True).loc[:, list(PRICE_COLUMNS)]


def by_name(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.check_name: o for o in outcomes}


def failed(outcomes: list[CheckOutcome]) -> set[str]:
    return {o.check_name for o in outcomes if not o.passed}


def test_clean_frame_passes_every_check():
    outcomes = check_prices(make_prices())
    assert [o.check_name for o in outcomes] == list(PRICE_CHECKS)
    assert failed(outcomes) == set()
    for o in outcomes:
        assert o.rows.empty and o.n_rows == 0
        assert o.details and "\n" not in o.details
    assert by_name(outcomes)["prices_coverage"].observed == pytest.approx(1.0)


def test_input_frame_is_not_modified():
    prices = make_prices().sample(frac=1.0, random_state=1)  # shuffled, non-range index
    before = prices.copy()
    assert failed(check_prices(prices)) == set()
    pd.testing.assert_frame_equal(prices, before)


def test_duplicate_keys_fail_with_error():
    prices = make_prices()
    dup = prices.iloc[[7]].assign(close=123.0)
    out = by_name(check_prices(pd.concat([prices, dup], ignore_index=True)))
    o = out["prices_keys_unique"]
    assert not o.passed and o.severity == "error" and o.is_error
    assert o.observed == 2 and o.n_rows == 2  # both rows of the pair
    assert set(o.rows["symbol"]) == {prices.loc[7, "symbol"]}
    assert set(o.rows["date"]) == {prices.loc[7, "date"]}
    assert out["prices_keys_not_null"].passed


def test_null_key_fails():
    prices = make_prices()
    prices.loc[3, "symbol"] = None
    prices.loc[40, "date"] = pd.NaT
    o = by_name(check_prices(prices))["prices_keys_not_null"]
    assert not o.passed and o.severity == "error"
    assert o.observed == 2
    assert sorted(o.rows["reason"]) == ["date is null", "symbol is null"]


@pytest.mark.parametrize("column", ["close", "adj_close"])
def test_zero_and_negative_prices_fail(column):
    prices = make_prices()
    prices.loc[5, column] = 0.0
    prices.loc[65, column] = -3.0
    prices.loc[90, column] = np.nan  # missing is not a bad price
    out = by_name(check_prices(prices))
    o = out["prices_positive"]
    assert not o.passed and o.severity == "error"
    assert o.observed == 2
    assert sorted(o.rows["value"]) == [-3.0, 0.0]
    assert set(o.rows["symbol"]) == {prices.loc[5, "symbol"], prices.loc[65, "symbol"]}
    assert all(f"{column} <= 0" == r for r in o.rows["reason"])


def test_ge_unexpected_list_feeds_rows_with_total_count():
    prices = make_prices()
    prices.loc[:119, "close"] = -1.0  # 120 bad rows
    o = by_name(check_prices(prices, max_rows=25))["prices_positive"]
    assert not o.passed
    assert o.n_rows == 120 and o.observed == 120
    assert len(o.rows) == 25 and o.truncated
    assert "25 of 120" in o.preview_markdown(max_rows=30)


def test_saturday_row_fails_for_equity_but_passes_for_crypto():
    prices = make_prices()
    saturday = pd.Timestamp("2024-01-06")
    extra = prices.iloc[[0]].assign(date=saturday, close=51.0, adj_close=51.0)
    frame = pd.concat([prices, extra], ignore_index=True)

    eq = by_name(check_prices(frame, asset_class="equity"))["prices_no_weekend_rows"]
    assert not eq.passed and eq.severity == "error" and eq.observed == 1
    assert eq.rows.loc[0, "date"] == saturday and eq.rows.loc[0, "symbol"] == "S00"
    assert "Saturday" in eq.rows.loc[0, "reason"]

    crypto = by_name(check_prices(frame, asset_class="crypto"))
    assert crypto["prices_no_weekend_rows"].passed
    assert "not applicable" in crypto["prices_no_weekend_rows"].details


def test_crypto_seven_day_calendar_is_clean():
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    outcomes = check_prices(make_prices(days=days), asset_class="crypto")
    assert failed(outcomes) == set()


@pytest.mark.parametrize(("run", "warns"), [(4, False), (5, True), (7, True)])
def test_repeated_close_warns_from_five_observations(run, warns):
    prices = make_prices()
    rows = prices.index[(prices["symbol"] == "S03")][10 : 10 + run]
    prices.loc[rows, "close"] = 42.5
    o = by_name(check_prices(prices))["prices_stale"]
    assert o.severity == "warn"
    assert o.passed is (not warns)
    if warns:
        assert o.observed == 1
        row = o.rows.iloc[0]
        assert row["symbol"] == "S03" and row["value"] == 42.5
        assert row["date"] == DAYS[10] and row["end_date"] == DAYS[10 + run - 1]
        assert f"{run} consecutive" in row["reason"]


def test_nan_close_breaks_a_stale_run():
    prices = make_prices()
    rows = prices.index[(prices["symbol"] == "S03")][10:16]
    prices.loc[rows, "close"] = 42.5
    prices.loc[rows[3], "close"] = np.nan  # 3 + NaN + 2
    assert by_name(check_prices(prices))["prices_stale"].passed


def test_week_long_gap_warns_naming_symbol_and_dates():
    prices = make_prices()
    week = DAYS[(DAYS >= "2024-01-15") & (DAYS <= "2024-01-19")]  # Mon..Fri
    prices = prices.loc[~((prices["symbol"] == "S07") & prices["date"].isin(week))]
    out = by_name(check_prices(prices))
    o = out["prices_gaps"]
    assert not o.passed and o.severity == "warn" and o.observed == 1
    row = o.rows.iloc[0]
    assert row["symbol"] == "S07"
    assert row["date"] == pd.Timestamp("2024-01-12")
    assert row["end_date"] == pd.Timestamp("2024-01-22")
    assert "S07" in o.details and "2024-01-12" in o.details and "2024-01-22" in o.details
    assert out["prices_coverage"].passed  # 9 of 10 priced that week: exactly 90 %


def test_four_missing_weekdays_are_not_a_gap():
    prices = make_prices()
    four = DAYS[(DAYS >= "2024-01-15") & (DAYS <= "2024-01-18")]
    prices = prices.loc[~((prices["symbol"] == "S07") & prices["date"].isin(four))]
    assert by_name(check_prices(prices))["prices_gaps"].passed


def test_low_coverage_day_warns():
    prices = make_prices()
    day = DAYS[12]
    drop = (prices["date"] == day) & prices["symbol"].isin(["S01", "S02"])
    out = by_name(check_prices(prices.loc[~drop]))
    o = out["prices_coverage"]
    assert not o.passed and o.severity == "warn"
    assert o.observed == pytest.approx(0.8)
    assert list(o.rows["date"]) == [day]
    assert o.rows.loc[0, "reason"] == "8 of 10 listed symbols priced"
    # a threshold below 80 % accepts it
    assert by_name(check_prices(prices.loc[~drop], min_coverage=0.75))["prices_coverage"].passed


def test_symbols_outside_their_listing_do_not_lower_coverage():
    prices = make_prices()
    late = (prices["symbol"].isin(["S08", "S09"])) & (prices["date"] < DAYS[15])
    assert by_name(check_prices(prices.loc[~late]))["prices_coverage"].passed


def test_expected_dates_catch_a_day_with_no_rows():
    prices = make_prices()
    missing = DAYS[20]
    prices = prices.loc[prices["date"] != missing]
    assert by_name(check_prices(prices))["prices_coverage"].passed  # a holiday by default
    o = by_name(check_prices(prices, expected_dates=DAYS))["prices_coverage"]
    assert not o.passed and list(o.rows["date"]) == [missing] and o.observed == 0.0


def test_all_nan_day_is_an_error():
    prices = make_prices()
    day = DAYS[5]
    prices.loc[prices["date"] == day, ["close", "adj_close"]] = np.nan
    out = by_name(check_prices(prices))
    o = out["prices_all_nan_day"]
    assert not o.passed and o.severity == "error" and o.is_error
    assert list(o.rows["date"]) == [day] and o.rows.loc[0, "value"] == len(SYMBOLS)
    assert not out["prices_coverage"].passed
    assert out["prices_positive"].passed  # NaN is missing, not <= 0


def test_empty_frame_passes():
    empty = make_prices().iloc[0:0]
    outcomes = check_prices(empty)
    assert [o.check_name for o in outcomes] == list(PRICE_CHECKS)
    assert failed(outcomes) == set()


def test_missing_column_raises():
    with pytest.raises(DataValidationError, match="adj_close"):
        check_prices(make_prices().drop(columns=["adj_close"]))

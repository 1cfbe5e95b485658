"""Unit tests of lib/quality/prices.py on small synthetic canonical price frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import calendar
from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.quality import PRICE_CHECKS, CheckOutcome, check_prices
from beta_pipeline.lib.schema import PRICE_COLUMNS

T = pd.Timestamp
#: 30 NYSE sessions: Tue 2024-01-02 .. Tue 2024-02-13 (MLK day 2024-01-15 is no session)
DAYS = calendar.sessions("2024-01-02", "2024-02-13")
assert len(DAYS) == 30
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
    week = DAYS[(DAYS >= "2024-01-22") & (DAYS <= "2024-01-26")]  # Mon..Fri, 5 sessions
    prices = prices.loc[~((prices["symbol"] == "S07") & prices["date"].isin(week))]
    out = by_name(check_prices(prices))
    o = out["prices_gaps"]
    assert not o.passed and o.severity == "warn" and o.observed == 1
    row = o.rows.iloc[0]
    assert row["symbol"] == "S07"
    assert row["date"] == T("2024-01-19")
    assert row["end_date"] == T("2024-01-29")
    assert row["reason"] == "next observation 6 sessions later (5 missing)"
    assert "S07" in o.details and "2024-01-19" in o.details and "2024-01-29" in o.details
    assert out["prices_coverage"].passed  # 9 of 10 priced that week: exactly 90 %
    assert out["prices_missing_symbol_days"].passed  # a long hole is a gap, reported once
    assert out["prices_missing_sessions"].passed


def test_four_missing_sessions_are_not_a_gap():
    prices = make_prices()
    four = DAYS[(DAYS >= "2024-01-22") & (DAYS <= "2024-01-25")]
    prices = prices.loc[~((prices["symbol"] == "S07") & prices["date"].isin(four))]
    out = by_name(check_prices(prices))
    assert out["prices_gaps"].passed
    short = out["prices_missing_symbol_days"]
    assert not short.passed and short.severity == "warn" and short.observed == 4
    assert list(short.rows["date"]) == list(four) and set(short.rows["symbol"]) == {"S07"}


def test_gaps_count_sessions_not_weekdays():
    """S07 misses the week of MLK day: 6 weekdays apart, but only 4 sessions are missing."""
    prices = make_prices()
    week = pd.bdate_range("2024-01-15", "2024-01-19")
    prices = prices.loc[~((prices["symbol"] == "S07") & prices["date"].isin(week))]
    out = by_name(check_prices(prices))
    assert out["prices_gaps"].passed, out["prices_gaps"].details
    short = out["prices_missing_symbol_days"]
    assert not short.passed and short.observed == 4
    assert T("2024-01-15") not in set(short.rows["date"])  # the holiday is not missing
    assert "S07 2024-01-16" in short.details
    # a real week (5 sessions) over the holiday is a gap of 6 sessions
    longer = prices.loc[~((prices["symbol"] == "S07") & (prices["date"] == T("2024-01-22")))]
    gaps = by_name(check_prices(longer))["prices_gaps"]
    assert not gaps.passed and gaps.rows.loc[0, "value"] == 6.0


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
    out = by_name(check_prices(prices))
    assert out["prices_coverage"].passed  # coverage measures days with rows ...
    assert not out["prices_missing_sessions"].passed  # ... the session rule catches the hole
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


# --- the exchange calendar ---------------------------------------------------------------


def test_thanksgiving_week_is_clean():
    """No row on Thanksgiving (2024-11-28) and a half day after it: nothing to report."""
    days = calendar.sessions("2024-11-01", "2024-12-13")
    assert T("2024-11-28") not in days and T("2024-11-29") in days
    outcomes = check_prices(make_prices(days=days))
    assert failed(outcomes) == set(), [o.details for o in outcomes if not o.passed]
    # the holiday alone, with its neighbours as context: an empty scope, no warning
    alone = check_prices(make_prices(days=days), scope=("2024-11-28", "2024-11-29"))
    assert failed(alone) == set()
    assert by_name(alone)["prices_coverage"].details == "no days to measure coverage on"


def test_row_on_a_holiday_is_an_error_naming_the_date():
    prices = make_prices()
    mlk = T("2024-01-15")
    extra = prices.loc[prices["date"] == DAYS[8]].assign(date=mlk)  # all 10 symbols
    out = by_name(check_prices(pd.concat([prices, extra], ignore_index=True)))
    o = out["prices_holiday_rows"]
    assert not o.passed and o.is_error and o.observed == 10
    assert set(o.rows["date"]) == {mlk} and "2024-01-15" in o.details
    assert out["prices_no_weekend_rows"].passed
    # a weekday-calendar class (FX, futures) may trade on US holidays
    cross = by_name(check_prices(pd.concat([prices, extra]), asset_class="cross_asset"))
    assert (
        cross["prices_holiday_rows"].passed
        and "not applicable" in cross["prices_holiday_rows"].details
    )


def test_missing_session_is_an_error_naming_it():
    prices = make_prices()
    gone = DAYS[11]  # 2024-01-18
    out = by_name(check_prices(prices.loc[prices["date"] != gone]))
    o = out["prices_missing_sessions"]
    assert not o.passed and o.is_error and o.observed == 1
    assert list(o.rows["date"]) == [gone] and o.rows.loc[0, "value"] == 10.0
    assert "2024-01-18" in o.details
    assert "2024-01-17" in o.rows.loc[0, "reason"] and "2024-01-19" in o.rows.loc[0, "reason"]
    # reported once: not as ten missing symbol-days, not as a low-coverage day
    assert out["prices_missing_symbol_days"].passed and out["prices_coverage"].passed


def test_sessions_outside_the_data_are_not_missing():
    """Before the first and after the last row (coverage, listing) nothing is expected."""
    prices = make_prices()
    scope = ("2023-12-01", "2024-03-01")  # the window is wider than the data
    out = by_name(check_prices(prices, scope=scope))
    assert out["prices_missing_sessions"].passed
    late = prices.loc[~((prices["symbol"] == "S05") & (prices["date"] < DAYS[10]))]
    assert failed(check_prices(late)) == set()  # a symbol listed mid-window


def test_missing_session_outside_the_scope_is_context_only():
    prices = make_prices()
    prices = prices.loc[prices["date"] != DAYS[5]]
    inside = by_name(check_prices(prices, scope=(DAYS[4], DAYS[7])))
    assert list(inside["prices_missing_sessions"].rows["date"]) == [DAYS[5]]
    later = by_name(check_prices(prices, scope=(DAYS[20], DAYS[21])))
    assert later["prices_missing_sessions"].passed


def test_one_missing_ticker_day_is_a_warning_naming_ticker_and_date():
    prices = make_prices()
    day = DAYS[9]  # 2024-01-16, the session after MLK day
    prices = prices.loc[~((prices["symbol"] == "S03") & (prices["date"] == day))]
    outcomes = check_prices(prices)
    out = by_name(outcomes)
    o = out["prices_missing_symbol_days"]
    assert not o.passed and o.severity == "warn" and not o.is_error and o.observed == 1
    assert list(o.rows["symbol"]) == ["S03"] and list(o.rows["date"]) == [day]
    assert "S03 2024-01-16" in o.details
    assert o.rows.loc[0, "reason"] == "no row; S03 has rows on 2024-01-12 and 2024-01-17"
    assert not any(x.is_error for x in outcomes)
    # a daily run of the day the ticker came back still sees the hole
    back = by_name(check_prices(prices, scope=(DAYS[10], DAYS[11])))
    assert list(back["prices_missing_symbol_days"].rows["date"]) == [day]
    # ... but a run of an unrelated day does not
    assert by_name(check_prices(prices, scope=(DAYS[20], DAYS[21])))[
        "prices_missing_symbol_days"
    ].passed


def test_good_friday_month_end():
    """2024-03-29 is Good Friday: March ends on Thursday 2024-03-28, and nothing is missing."""
    days = calendar.sessions("2024-03-01", "2024-04-30")
    assert T("2024-03-29") not in days
    prices = make_prices(days=days)
    march = check_prices(prices, scope=("2024-03-01", "2024-04-01"))
    assert failed(march) == set(), [o.details for o in march if not o.passed]
    # a ticker missing on both sides of the holiday: two sessions missing, not three
    hole = prices.loc[
        ~((prices["symbol"] == "S02") & prices["date"].isin([T("2024-03-28"), T("2024-04-01")]))
    ]
    out = by_name(check_prices(hole, scope=("2024-03-01", "2024-04-01")))
    o = out["prices_missing_symbol_days"]
    assert list(o.rows["date"]) == [T("2024-03-28"), T("2024-04-01")]
    assert out["prices_gaps"].passed and out["prices_missing_sessions"].passed
    # a price dated on Good Friday (a vendor's month-end row) is an error naming it
    stray = prices.loc[prices["date"] == T("2024-03-28")].assign(date=T("2024-03-29"))
    bad = by_name(check_prices(pd.concat([prices, stray]), scope=("2024-03-01", "2024-04-01")))
    assert (
        not bad["prices_holiday_rows"].passed and "2024-03-29" in bad["prices_holiday_rows"].details
    )


def test_rows_outside_the_scope_are_not_reported():
    prices = make_prices()
    saturday = prices.iloc[[0]].assign(date=T("2024-01-06"))
    frame = pd.concat([prices, saturday], ignore_index=True)
    assert not by_name(check_prices(frame))["prices_no_weekend_rows"].passed
    later = by_name(check_prices(frame, scope=(DAYS[15], DAYS[16])))
    assert later["prices_no_weekend_rows"].passed
    assert later["prices_coverage"].details.endswith("over 1 days)")


def test_crypto_counts_calendar_days():
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    prices = make_prices(days=days)
    hole = prices.loc[~((prices["symbol"] == "S01") & (prices["date"] == T("2024-01-06")))]
    out = by_name(check_prices(hole, asset_class="crypto"))
    assert list(out["prices_missing_symbol_days"].rows["date"]) == [T("2024-01-06")]
    assert out["prices_missing_sessions"].passed and out["prices_holiday_rows"].passed

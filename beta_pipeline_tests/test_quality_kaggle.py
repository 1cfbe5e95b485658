"""Quality checks on the real Kaggle S&P 500 file (../shared/data): known bad prints.

The data README lists one-day bad prints that revert the next day: O 2013-12-20,
LNT 2016-05-19 and several names on 2017-09-14 (EFX, FLR, MPC, MRK, MRO, NWL, ...).
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from beta_pipeline.lib.quality import check_prices, check_returns, outcomes_to_records
from beta_pipeline.lib.returns import daily_returns
from beta_pipeline.lib.schema import PRICE_COLUMNS
from beta_pipeline_tests.support.paths import shared_data_dir

DATA = shared_data_dir("all_stocks_5yr.csv.gz", "gspc_daily.csv.gz", "ff3_daily.csv.gz")
pytestmark = pytest.mark.skipif(
    DATA is None,
    reason="real data absent: ../shared/data (or $BETA_PIPELINE_DATA_DIR) lacks "
    "all_stocks_5yr.csv.gz, gspc_daily.csv.gz, ff3_daily.csv.gz",
)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    assert DATA is not None
    raw = pd.read_csv(DATA / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    out = pd.DataFrame(
        {
            "date": raw["date"],
            "symbol": raw["Name"],
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "adj_close": raw["close"],
            "volume": raw["volume"].astype("float64"),
            "source": "csv",
        }
    )
    return out.loc[:, list(PRICE_COLUMNS)]


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    assert DATA is not None
    lo, hi = pd.Timestamp("2013-01-01"), pd.Timestamp("2018-03-01")
    gspc = pd.read_csv(DATA / "gspc_daily.csv.gz", parse_dates=["Date"])
    gspc = gspc.loc[gspc["Date"].between(lo, hi)]
    ff3 = pd.read_csv(DATA / "ff3_daily.csv.gz", parse_dates=["date"])
    ff3 = ff3.loc[ff3["date"].between(lo, hi)]
    return pd.concat(
        [
            pd.DataFrame({"date": gspc["Date"], "series": "mkt_level", "value": gspc["Adj Close"]}),
            pd.DataFrame({"date": ff3["date"], "series": "rf", "value": ff3["RF"] / 100.0}),
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def returns(prices, market) -> pd.DataFrame:
    return daily_returns(prices, market)


@pytest.fixture(scope="module")
def return_outcomes(returns):
    check_returns(returns.head(1000))  # warm the GE context outside the timing
    start = time.perf_counter()
    outcomes = {o.check_name: o for o in check_returns(returns)}
    return outcomes, time.perf_counter() - start


def _flagged(outcome) -> set[tuple[str, str]]:
    return {
        (s, d.strftime("%Y-%m-%d"))
        for s, d in zip(outcome.rows["symbol"], outcome.rows["date"], strict=True)
    }


def test_known_bad_prints_are_flagged(return_outcomes):
    outcomes, _ = return_outcomes
    moves = outcomes["returns_suspicious_moves"]
    assert not moves.passed and moves.severity == "warn"
    flagged = _flagged(moves)
    assert ("O", "2013-12-20") in flagged
    assert ("LNT", "2016-05-19") in flagged
    cluster = {s for s, d in flagged if d == "2017-09-14"}
    assert len(cluster) >= 5, cluster
    assert cluster >= {"EFX", "FLR", "MPC", "MRO", "NWL"}
    # the rows kept are the whole list (well under the cap) and false positives stay few
    assert moves.n_rows == len(moves.rows)
    assert 20 <= moves.n_rows <= 120, moves.details
    print(f"\nsuspicious moves on the Kaggle file: {moves.details}")


def test_real_file_passes_the_blocking_return_checks(return_outcomes):
    outcomes, elapsed = return_outcomes
    for name in ("returns_keys_not_null", "returns_keys_unique", "returns_hard_bounds"):
        assert outcomes[name].passed, outcomes[name].details
    assert elapsed < 15.0, f"check_returns took {elapsed:.1f}s on 619k rows"


def test_partition_scoped_check_sees_the_reversal_in_next_day(returns):
    day, following = pd.Timestamp("2017-09-14"), pd.Timestamp("2017-09-15")
    scope = returns.loc[returns["date"] == day]
    nxt = returns.loc[returns["date"] == following]
    alone = {o.check_name: o for o in check_returns(scope)}["returns_suspicious_moves"]
    with_next = {o.check_name: o for o in check_returns(scope, next_day=nxt)}
    moves = with_next["returns_suspicious_moves"]
    # alone: only |ret| > 25 % on a quiet market; with the next day: the reversals too
    assert {s for s, _ in _flagged(alone)} == {"FLR", "MRO", "NWL"}
    assert {s for s, _ in _flagged(moves)} >= {"EFX", "FLR", "MPC", "MRO", "NWL"}
    assert (moves.rows["date"] == day).all()


def test_prices_of_the_real_file(prices):
    check_prices(prices.head(1000))  # warm the GE context outside the timing
    start = time.perf_counter()
    outcomes = {o.check_name: o for o in check_prices(prices)}
    elapsed = time.perf_counter() - start
    errors = [o.check_name for o in outcomes.values() if o.is_error]
    assert errors == []
    # the file has one real hole: three names miss 2015-03-09 .. 2015-03-20
    gaps = outcomes["prices_gaps"]
    assert not gaps.passed
    assert set(gaps.rows["symbol"]) == {"DHR", "ES", "O"}
    assert set(gaps.rows["date"]) == {pd.Timestamp("2015-03-06")}
    assert outcomes["prices_coverage"].passed and outcomes["prices_stale"].passed
    # on the XNYS calendar: a row on every session, none on a holiday ...
    assert outcomes["prices_missing_sessions"].passed and outcomes["prices_holiday_rows"].passed
    # ... and 21 one- to three-session holes of single names (warnings, not errors)
    holes = outcomes["prices_missing_symbol_days"]
    assert not holes.passed and holes.severity == "warn" and holes.n_rows == 21
    assert {("BMY", "2013-04-26"), ("O", "2014-07-02"), ("DHR", "2016-04-04")} <= _flagged(holes)
    records = outcomes_to_records(outcomes.values(), "raw_prices", "all")
    assert len(records) == len(outcomes)
    assert elapsed < 15.0, f"check_prices took {elapsed:.1f}s on 619k rows"

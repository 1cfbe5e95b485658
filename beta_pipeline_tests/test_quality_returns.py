"""Unit tests of lib/quality/returns.py on returns built by lib/returns.daily_returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.quality import RETURN_CHECKS, CheckOutcome, check_returns
from beta_pipeline.lib.returns import daily_returns
from beta_pipeline.lib.schema import DAILY_RETURN_COLUMNS, PRICE_COLUMNS

DAYS = pd.bdate_range("2024-03-04", periods=25)
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


def make_prices(closes: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {
                "date": DAYS,
                "symbol": sym,
                "open": np.nan,
                "high": np.nan,
                "low": np.nan,
                "close": c,
                "adj_close": c,
                "volume": np.nan,
                "source": "test",
            }
        )
        for sym, c in closes.items()
    ]
    return pd.concat(frames, ignore_index=True).loc[:, list(PRICE_COLUMNS)]


def make_market(mkt_ret: np.ndarray | None = None) -> pd.DataFrame:
    if mkt_ret is None:
        mkt_ret = np.full(len(DAYS), 0.001)
    level = 4000.0 * np.cumprod(1.0 + np.asarray(mkt_ret))
    return pd.concat(
        [
            pd.DataFrame({"date": DAYS, "series": "mkt_level", "value": level}),
            pd.DataFrame({"date": DAYS, "series": "rf", "value": 0.0001}),
        ],
        ignore_index=True,
    )


def walks(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: 30.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.01, len(DAYS))) for s in SYMBOLS}


def spiked(day: int, factor: float, symbol: str = "BBB", revert: bool = True):
    """Random walks where ``symbol``'s price is multiplied by ``factor`` from ``day`` on
    (only on ``day`` when ``revert``)."""
    closes = walks()
    c = closes[symbol].copy()
    if revert:
        c[day] *= factor
    else:
        c[day:] *= factor
    closes[symbol] = c
    return closes


def by_name(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.check_name: o for o in outcomes}


def moves(returns: pd.DataFrame, next_day: pd.DataFrame | None = None) -> CheckOutcome:
    return by_name(check_returns(returns, next_day))["returns_suspicious_moves"]


def test_clean_returns_pass_every_check():
    rets = daily_returns(make_prices(walks()), make_market())
    assert list(rets.columns) == list(DAILY_RETURN_COLUMNS)
    outcomes = check_returns(rets)
    assert [o.check_name for o in outcomes] == list(RETURN_CHECKS)
    assert all(o.passed for o in outcomes), [o.details for o in outcomes if not o.passed]
    assert all(o.rows.empty for o in outcomes)


@pytest.mark.parametrize(
    ("bad", "fails"),
    [(-1.2, True), (-1.0, True), (10.5, True), (np.inf, True), (np.nan, True), (10.0, False)],
)
def test_hard_bounds(bad, fails):
    rets = daily_returns(make_prices(walks()), make_market())
    rets.loc[17, "ret"] = bad
    o = by_name(check_returns(rets))["returns_hard_bounds"]
    assert o.severity == "error"
    assert o.passed is (not fails)
    if fails:
        assert o.observed == 1
        assert o.rows.loc[0, "symbol"] == rets.loc[17, "symbol"]
        assert o.rows.loc[0, "date"] == rets.loc[17, "date"]


def test_duplicate_and_null_keys_fail():
    rets = daily_returns(make_prices(walks()), make_market())
    dup = pd.concat([rets, rets.iloc[[3]]], ignore_index=True)
    dup.loc[0, "symbol"] = None
    out = by_name(check_returns(dup))
    assert not out["returns_keys_unique"].passed and out["returns_keys_unique"].observed == 2
    assert not out["returns_keys_not_null"].passed
    assert out["returns_keys_not_null"].observed == 1


def test_reversal_spike_is_flagged_even_with_a_market_move():
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = 0.03  # a market move that day: the market rule alone would not flag it
    rets = daily_returns(make_prices(spiked(10, 1.30)), make_market(mkt))
    o = moves(rets)
    assert not o.passed and o.severity == "warn"
    flagged = o.rows.set_index(["symbol", "date"])
    assert ("BBB", DAYS[10]) in flagged.index
    assert flagged.loc[("BBB", DAYS[10]), "reason"].startswith("reverses next day")
    # the reverting day is measured from the bad price: listed too
    assert "reverts the previous day's jump" in flagged.loc[("BBB", DAYS[11]), "reason"]
    assert o.n_rows == 2 and set(o.rows["symbol"]) == {"BBB"}


def test_reversal_needs_next_day_when_checking_a_partition_range():
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = 0.03
    rets = daily_returns(make_prices(spiked(10, 1.30)), make_market(mkt))
    scope = rets.loc[rets["date"] <= DAYS[10]]
    following = rets.loc[rets["date"] == DAYS[11]]
    assert moves(scope).passed  # no next day: judged by the market rule, market moved
    o = moves(scope, next_day=following)
    assert not o.passed
    assert list(zip(o.rows["symbol"], o.rows["date"], strict=True)) == [("BBB", DAYS[10])]
    # rows of next_day itself are never flagged
    assert (o.rows["date"] <= DAYS[10]).all()


def test_last_day_jump_without_market_move_flagged_by_market_rule():
    rets = daily_returns(make_prices(spiked(10, 1.30)), make_market())
    scope = rets.loc[rets["date"] <= DAYS[10]]
    o = moves(scope)
    assert not o.passed and o.n_rows == 1
    assert o.rows.loc[0, "reason"].startswith("no market move")


def test_persistent_jump_with_market_move_is_not_flagged():
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = -0.04
    rets = daily_returns(make_prices(spiked(10, 0.70, revert=False)), make_market(mkt))
    assert moves(rets).passed
    # ... but the same jump on a quiet market day is
    rets_quiet = daily_returns(make_prices(spiked(10, 0.70, revert=False)), make_market())
    o = moves(rets_quiet)
    assert not o.passed and o.n_rows == 1 and o.rows.loc[0, "date"] == DAYS[10]


def test_price_back_within_tolerance_counts_as_reversal():
    closes = walks()
    c = closes["CCC"].copy()
    c[10] = c[9] * 0.80  # -20 %, then back to within 5 % of the pre-jump level
    c[11] = c[9] * 0.97
    closes["CCC"] = c
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = -0.03
    o = moves(daily_returns(make_prices(closes), make_market(mkt)))
    assert not o.passed
    assert set(zip(o.rows["symbol"], o.rows["date"], strict=True)) == {
        ("CCC", DAYS[10]),
        ("CCC", DAYS[11]),
    }


def test_next_return_after_a_gap_is_not_a_reversal():
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = 0.03
    prices = make_prices(spiked(10, 1.30))
    # BBB has no prices for 12 weekdays after the spike: its next return is not from DAYS[10]
    hole = (prices["symbol"] == "BBB") & prices["date"].isin(DAYS[11:23])
    rets = daily_returns(prices.loc[~hole], make_market(mkt))
    assert moves(rets).passed


def test_thresholds_are_parameters():
    mkt = np.full(len(DAYS), 0.001)
    mkt[10] = 0.03
    rets = daily_returns(make_prices(spiked(10, 1.12)), make_market(mkt))  # +12 % spike
    assert moves(rets).passed
    o = by_name(check_returns(rets, reversal_jump=0.10))["returns_suspicious_moves"]
    assert not o.passed and ("BBB", DAYS[10]) in set(
        zip(o.rows["symbol"], o.rows["date"], strict=True)
    )


def test_empty_returns_pass():
    rets = daily_returns(make_prices(walks()), make_market()).iloc[0:0]
    assert all(o.passed for o in check_returns(rets))


def test_missing_column_raises():
    rets = daily_returns(make_prices(walks()), make_market())
    with pytest.raises(DataValidationError, match="mkt_excess"):
        check_returns(rets.drop(columns=["mkt_excess"]))

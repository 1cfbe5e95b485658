"""Bad input through the csv source and daily_job: a bad file fails the run naming file, row
and rule before anything is written; suspicious-but-usable data passes with warnings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline_tests.support.defs import (
    build,
    csv_config,
    evaluations,
    executed_steps,
    failure_text,
    make_market,
    make_prices,
    materialized,
    meta_text,
    query,
    run,
    table,
    write_frame,
)

SYMBOLS = ("AAA", "BBB", "CCC")
DATA_FIRST, DATA_LAST = "2020-01-01", "2020-02-28"
#: the window written first from a good file (must survive every later failure)
A_FIRST, A_LAST = "2020-01-06", "2020-01-10"
#: the window whose run meets the bad file
B_FIRST, B_LAST = "2020-01-20", "2020-01-24"


def good_prices() -> pd.DataFrame:
    return make_prices(SYMBOLS, DATA_FIRST, DATA_LAST)


def setup_source(folder: Path, prices: pd.DataFrame | str, name: str) -> tuple[Path, Path]:
    """Prices (a frame or raw CSV text) as ``<name>.csv`` plus the market file; returns
    (config, prices file)."""
    folder.mkdir(parents=True, exist_ok=True)
    price_file = folder / f"{name}.csv"
    if isinstance(prices, str):
        price_file.write_text(prices)
    else:
        write_frame(price_file, prices)
    market = folder / "market.csv"
    if not market.exists():
        write_frame(market, make_market(DATA_FIRST, DATA_LAST))
    return csv_config(folder, price_file.name, market.name, name=f"{name}.yaml"), price_file


def _csv_text(frame: pd.DataFrame) -> str:
    out = frame.copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out.to_csv(index=False)


def _line_of(frame: pd.DataFrame, date: str, symbol: str) -> int:
    """1-based line of a row in the CSV written from ``frame`` (line 1 is the header)."""
    pos = frame.index[(frame["date"] == pd.Timestamp(date)) & (frame["symbol"] == symbol)]
    return int(frame.index.get_loc(pos[0])) + 2


def negative_price(frame: pd.DataFrame) -> tuple[str, int, str]:
    frame.loc[(frame["date"] == "2020-01-22") & (frame["symbol"] == "BBB"), "close"] = -3.5
    return _csv_text(frame), _line_of(frame, "2020-01-22", "BBB"), "non_positive_price"


def non_numeric_close(frame: pd.DataFrame) -> tuple[str, int, str]:
    text = frame.assign(close=frame["close"].astype(object))
    text.loc[(text["date"] == "2020-01-21") & (text["symbol"] == "CCC"), "close"] = "12.3x"
    return _csv_text(text), _line_of(frame, "2020-01-21", "CCC"), "non_numeric"


def missing_column(frame: pd.DataFrame) -> tuple[str, int, str]:
    return _csv_text(frame.drop(columns=["close"]).assign(volume=1000.0)), 1, "missing_column"


def duplicate_row(frame: pd.DataFrame) -> tuple[str, int, str]:
    i = _line_of(frame, "2020-01-23", "AAA") - 2
    dup = pd.concat([frame.iloc[: i + 1], frame.iloc[[i]], frame.iloc[i + 1 :]])
    return _csv_text(dup.reset_index(drop=True)), i + 3, "duplicate_row"


@pytest.mark.parametrize(
    "corrupt",
    [negative_price, non_numeric_close, missing_column, duplicate_row],
    ids=["negative_price", "non_numeric_close", "missing_column", "duplicate_row"],
)
def test_bad_file_fails_the_run_and_writes_nothing(
    warehouse_path: Path, tmp_path: Path, corrupt
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    good_cfg, _ = setup_source(tmp_path / "src", good_prices(), "good")
    good = build(warehouse_path, tmp_path, kind="csv", config=good_cfg)
    assert run(good, "daily_job", A_FIRST, A_LAST, instance=instance).success
    window_a = table(warehouse_path, "raw.prices")
    returns_a = table(warehouse_path, "returns.daily")
    assert len(window_a) == 5 * len(SYMBOLS) and len(returns_a) == 4 * len(SYMBOLS)

    text, row, rule = corrupt(good_prices())
    # the same config file (a warehouse is bound to its source config), now with bad data
    bad_cfg, bad_file = setup_source(tmp_path / "src", text, "good")
    bad = build(warehouse_path, tmp_path, kind="csv", config=bad_cfg)

    # a new window: the run fails before writing any price of it
    result = run(bad, "daily_job", B_FIRST, B_LAST, instance=instance)
    assert not result.success
    message = failure_text(result)
    assert "DataValidationError" in message
    assert f"rule '{rule}'" in message, message
    assert f"file={bad_file}" in message, message
    assert f"row={row}" in message, message
    assert "raw_prices" not in materialized(result)
    assert "daily_returns" not in executed_steps(result)
    in_b = query(
        warehouse_path,
        "SELECT count(*) AS n FROM raw.prices WHERE date >= ? AND date <= ?",
        [pd.Timestamp(B_FIRST).date(), pd.Timestamp(B_LAST).date()],
    )
    assert in_b["n"].iloc[0] == 0
    # ... and the window written earlier is untouched, even by a failed re-run of it
    result = run(bad, "daily_job", A_FIRST, A_LAST, instance=instance)
    assert not result.success
    pd.testing.assert_frame_equal(table(warehouse_path, "raw.prices"), window_a)
    pd.testing.assert_frame_equal(table(warehouse_path, "returns.daily"), returns_a)


def test_weekend_row_fails_a_blocking_error_check(warehouse_path: Path, tmp_path: Path) -> None:
    prices = good_prices()
    saturday = pd.DataFrame(
        {"date": [pd.Timestamp("2020-01-11")], "symbol": ["BBB"], "close": [51.0]}
    )
    prices = pd.concat([prices, saturday]).sort_values(["date", "symbol"], kind="mergesort")
    cfg, _ = setup_source(tmp_path / "src", prices, "weekend")
    defs = build(warehouse_path, tmp_path, kind="csv", config=cfg)
    # the Friday partition's window runs to Monday 00:00, so it holds the Saturday row
    result = run(defs, "daily_job", A_FIRST, A_LAST)
    assert not result.success
    evs = evaluations(result)
    weekend = evs["prices_no_weekend_rows"]
    assert not weekend.passed
    assert weekend.severity == dg.AssetCheckSeverity.ERROR
    assert "2020-01-11" in meta_text(weekend, "details")
    assert "BBB" in meta_text(weekend, "preview")
    # blocking: the downstream asset of this run did not execute
    assert "raw_prices" in materialized(result)
    assert "daily_returns" not in executed_steps(result)
    assert "daily_returns" not in materialized(result)
    assert not any(ev.asset_key.to_user_string() == "daily_returns" for ev in evs.values())
    assert query(warehouse_path, "SELECT count(*) AS n FROM returns.daily")["n"].iloc[0] == 0
    recorded = query(
        warehouse_path,
        "SELECT passed, severity FROM quality.check_results WHERE check_name = ?",
        ["prices_no_weekend_rows"],
    )
    assert recorded.to_dict("records") == [{"passed": False, "severity": "error"}]


def test_week_long_gap_warns_and_the_run_succeeds(warehouse_path: Path, tmp_path: Path) -> None:
    prices = good_prices()
    gap = (prices["symbol"] == "BBB") & prices["date"].between("2020-01-13", "2020-01-21")
    prices = prices.loc[~gap]  # BBB: 2020-01-10, then 2020-01-22 (8 weekdays later)
    cfg, _ = setup_source(tmp_path / "src", prices, "gap")
    defs = build(warehouse_path, tmp_path, kind="csv", config=cfg)
    result = run(defs, "daily_job", "2020-01-06", "2020-01-31")
    assert result.success
    evs = evaluations(result)
    gaps = evs["prices_gaps"]
    assert not gaps.passed
    assert gaps.severity == dg.AssetCheckSeverity.WARN
    assert "BBB" in meta_text(gaps, "details")
    assert "BBB" in meta_text(gaps, "preview")
    assert all(ev.passed for ev in evs.values() if ev.severity == dg.AssetCheckSeverity.ERROR)
    recorded = query(
        warehouse_path,
        "SELECT passed, severity, details FROM quality.check_results WHERE check_name = ?",
        ["prices_gaps"],
    )
    assert not recorded["passed"].iloc[0] and recorded["severity"].iloc[0] == "warn"
    assert "BBB" in recorded["details"].iloc[0]
    # the return after the gap is measured from the last price before it (8 <= 10 weekdays)
    after = query(
        warehouse_path,
        "SELECT prev_date FROM returns.daily WHERE symbol = 'BBB' AND date = DATE '2020-01-22'",
    )
    assert str(after["prev_date"].iloc[0])[:10] == "2020-01-10"


def test_range_without_any_data_fails_and_reports_nothing(
    warehouse_path: Path, tmp_path: Path
) -> None:
    """Sessions the source does not cover fail the run, naming them; no partition is
    reported materialized without rows (before: an empty success with warnings)."""
    cfg, _ = setup_source(tmp_path / "src", good_prices(), "good")
    defs = build(warehouse_path, tmp_path, kind="csv", config=cfg)
    instance = dg.DagsterInstance.ephemeral()
    result = run(defs, "daily_job", "2020-06-01", "2020-06-05", instance=instance)
    assert not result.success
    message = failure_text(result)
    assert "raw_prices" in message and "5 of 5 trading sessions" in message
    assert "2020-06-01" in message
    assert "raw_prices" not in materialized(result)
    assert "daily_returns" not in materialized(result)
    assert not instance.get_materialized_partitions(dg.AssetKey("raw_prices"))
    assert query(warehouse_path, "SELECT count(*) AS n FROM raw.prices")["n"].iloc[0] == 0

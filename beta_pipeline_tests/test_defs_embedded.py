"""The ingestion and returns assets over the embedded source: jobs, counts, checks,
holidays, idempotent re-runs and incremental runs equal to a backfill."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import calendar
from beta_pipeline.lib.quality import PRICE_CHECKS, RETURN_CHECKS
from beta_pipeline.lib.returns import MAX_LOOKBACK_WEEKDAYS
from beta_pipeline.lib.warehouse import TABLES, open_warehouse
from beta_pipeline_tests.support.defs import (
    PIPELINE_TABLES,
    build,
    evaluations,
    executed_steps,
    query,
    run,
    table,
)

FIRST, LAST = "2019-12-02", "2020-01-31"
EMBEDDED_SYMBOLS = 20


def expected_daily_returns(prices: pd.DataFrame, market: pd.DataFrame) -> pd.DataFrame:
    """Oracle, written independently of lib.returns: for each symbol, each pair of
    consecutive observations at most MAX_LOOKBACK_WEEKDAYS weekdays apart whose later date
    has a market return (an index level that day and on an earlier day)."""
    level = market.loc[market["series"] == "mkt_level"].set_index("date")["value"].sort_index()
    rf = market.loc[market["series"] == "rf"].set_index("date")["value"]
    rows = []
    for symbol, g in prices.sort_values("date").groupby("symbol"):
        dates = list(g["date"])
        closes = list(g["adj_close"])
        for i in range(1, len(dates)):
            prev, cur = dates[i - 1], dates[i]
            weekdays_apart = len(pd.bdate_range(prev, cur)) - 1
            if weekdays_apart > MAX_LOOKBACK_WEEKDAYS or cur not in level.index:
                continue
            before = level.loc[: cur - pd.Timedelta(days=1)]
            if before.empty:
                continue
            ret = closes[i] / closes[i - 1] - 1.0
            mkt = level.loc[cur] / before.iloc[-1] - 1.0
            r_f = rf.get(cur, 0.0)
            rows.append(
                {
                    "date": cur,
                    "symbol": symbol,
                    "prev_date": prev,
                    "ret": ret,
                    "ret_excess": ret - r_f,
                    "mkt_excess": mkt - r_f,
                }
            )
    out = pd.DataFrame(rows)
    return out.sort_values(["symbol", "date"]).reset_index(drop=True)


def test_jobs_over_two_months(warehouse_path: Path, tmp_path: Path) -> None:
    defs = build(warehouse_path, tmp_path)
    instance = dg.DagsterInstance.ephemeral()

    static = run(defs, "static_job", instance=instance)
    assert static.success
    securities = query(warehouse_path, "SELECT symbol FROM raw.securities")
    assert len(securities) >= EMBEDDED_SYMBOLS

    daily = run(defs, "daily_job", FIRST, LAST, instance=instance)
    assert daily.success
    assert {"raw_prices", "raw_market", "daily_returns"} <= executed_steps(daily)

    prices = query(warehouse_path, "SELECT * FROM raw.prices ORDER BY symbol, date")
    assert prices["symbol"].nunique() == EMBEDDED_SYMBOLS
    assert prices["date"].min() == pd.Timestamp(FIRST)
    assert prices["date"].max() == pd.Timestamp(LAST)
    # 45 weekdays less 3 exchange holidays (Dec 25, Jan 1, Jan 20)
    assert len(prices) == EMBEDDED_SYMBOLS * 42
    market = query(warehouse_path, "SELECT * FROM raw.market")

    got = table(warehouse_path, "returns.daily")
    assert not got[["ret", "log_ret", "ret_excess", "mkt_excess"]].isna().any().any()
    want = expected_daily_returns(prices, market)
    assert len(got) == len(want) == EMBEDDED_SYMBOLS * 41  # the first day has no return
    pd.testing.assert_frame_equal(
        got[["symbol", "date", "prev_date"]].astype({"date": "datetime64[ns]"}),
        want[["symbol", "date", "prev_date"]].astype({"date": "datetime64[ns]"}),
        check_dtype=False,
    )
    for col in ("ret", "ret_excess", "mkt_excess"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-12, err_msg=col)
    np.testing.assert_allclose(got["log_ret"], np.log1p(want["ret"]), atol=1e-12)

    # every quality check evaluated, and recorded under the run's partition label
    evs = evaluations(daily)
    assert set(evs) == set(PRICE_CHECKS) | set(RETURN_CHECKS)
    recorded = query(
        warehouse_path,
        "SELECT asset, partition, check_name, passed, severity FROM quality.check_results",
    )
    assert len(recorded) == len(evs)
    assert set(recorded["partition"]) == {f"{FIRST}..{LAST}"}
    for row in recorded.itertuples():
        ev = evs[row.check_name]
        assert ev.asset_key.to_user_string() == row.asset
        assert bool(row.passed) == ev.passed, row.check_name
        assert row.severity == ev.severity.value.lower(), row.check_name
    errors = [n for n, ev in evs.items() if ev.severity == dg.AssetCheckSeverity.ERROR]
    assert errors and all(evs[n].passed for n in errors)

    monthly = run(defs, "monthly_job", "2019-12-01", "2020-01-01", instance=instance)
    assert monthly.success
    months = table(warehouse_path, "returns.monthly")
    assert len(months) == 2 * EMBEDDED_SYMBOLS
    assert sorted(months["month"].astype(str).str[:10].unique()) == ["2019-12-01", "2020-01-01"]
    assert months.groupby("month")["symbol"].nunique().eq(EMBEDDED_SYMBOLS).all()
    # compounding the daily rows of each symbol and month gives the monthly row
    got["month"] = got["date"].dt.to_period("M").dt.to_timestamp()
    comp = got.groupby(["month", "symbol"]).agg(
        ret=("ret", lambda r: float(np.prod(1.0 + r) - 1.0)), n_days=("ret", "size")
    )
    merged = months.merge(comp.reset_index(), on=["month", "symbol"], suffixes=("", "_d"))
    assert len(merged) == len(months)
    np.testing.assert_allclose(merged["ret"], merged["ret_d"], atol=1e-12)
    assert (merged["n_days"] == merged["n_days_d"]).all()
    # Dec: 21 trading days less the first (no earlier price); Jan: 21 trading days
    assert merged.groupby("month")["n_days"].max().tolist() == [20, 21]


def test_single_friday_partition_alone_succeeds_labelled_by_its_key(
    warehouse_path: Path, tmp_path: Path
) -> None:
    defs = build(warehouse_path, tmp_path)
    result = run(defs, "daily_job", key="2019-12-27")
    assert result.success
    partitions = query(warehouse_path, "SELECT DISTINCT partition FROM quality.check_results")
    assert list(partitions["partition"]) == ["2019-12-27"]
    dates = query(warehouse_path, "SELECT DISTINCT date FROM raw.prices")
    assert [str(d)[:10] for d in dates["date"]] == ["2019-12-27"]
    # alone on a fresh warehouse there is no previous price (nor market level): no return
    assert query(warehouse_path, "SELECT count(*) AS n FROM returns.daily")["n"].iloc[0] == 0


def test_a_holiday_is_no_partition_and_the_run_around_it_succeeds(
    warehouse_path: Path, tmp_path: Path
) -> None:
    """Christmas is no session: asking for it fails before anything runs; the range around
    it succeeds and no check expects data on the holiday."""
    from beta_pipeline.defs.partitions import session_partitions

    keys = session_partitions.get_partition_keys()
    assert "2019-12-25" not in keys and {"2019-12-24", "2019-12-26"} <= set(keys)
    defs = build(warehouse_path, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(dg.DagsterUnknownPartitionError):
        run(defs, "daily_job", key="2019-12-25", instance=instance)
    assert not instance.get_runs()  # refused before a run was created
    result = run(defs, "daily_job", "2019-12-23", "2019-12-27", instance=instance)
    assert result.success
    dates = query(warehouse_path, "SELECT DISTINCT date FROM raw.prices ORDER BY 1")["date"]
    assert [str(d.date()) for d in dates] == [
        "2019-12-23", "2019-12-24", "2019-12-26", "2019-12-27"
    ]
    evs = evaluations(result)
    assert set(evs) == set(PRICE_CHECKS) | set(RETURN_CHECKS)
    assert all(ev.passed for ev in evs.values()), {k: e.passed for k, e in evs.items()}


def _snapshot(path: Path) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Every pipeline table (primary-key order, ``checked_at`` dropped) and its number of
    duplicate primary keys, read through one connection."""
    frames: dict[str, pd.DataFrame] = {}
    dups: dict[str, int] = {}
    with open_warehouse(path, read_only=True) as conn:
        for name in PIPELINE_TABLES:
            keys = ", ".join(TABLES[name].primary_key)
            frame = conn.execute(f"SELECT * FROM {name} ORDER BY {keys}").df()
            frames[name] = frame.drop(columns=["checked_at"], errors="ignore")
            dups[name] = int(
                conn.execute(
                    f"SELECT count(*) - count(DISTINCT ({keys})) FROM {name}"
                ).fetchone()[0]
            )
    return frames, dups


@pytest.mark.slow
def test_rematerializing_a_partition_or_a_range_is_idempotent(
    warehouse_path: Path, tmp_path: Path
) -> None:
    defs = build(warehouse_path, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    # history before the re-run windows, so their returns have previous prices
    assert run(defs, "daily_job", "2019-12-09", "2019-12-20", instance=instance).success
    before, _ = _snapshot(warehouse_path)
    assert len(before["returns.daily"]) == EMBEDDED_SYMBOLS * 9
    n_checks = len(PRICE_CHECKS) + len(RETURN_CHECKS)
    assert len(before["quality.check_results"]) == n_checks
    reference: dict[str, pd.DataFrame] | None = None
    for i in range(10):
        assert run(defs, "daily_job", key="2019-12-18", instance=instance).success, i
        assert run(defs, "daily_job", "2019-12-16", "2019-12-20", instance=instance).success, i
        after, dups = _snapshot(warehouse_path)
        assert all(n == 0 for n in dups.values()), dups
        for name in PIPELINE_TABLES:
            if name != "quality.check_results":
                pd.testing.assert_frame_equal(after[name], before[name], obj=f"{name} run {i}")
        # the check results of the two re-run labels replace themselves
        checks = after["quality.check_results"]
        assert sorted(checks["partition"].unique()) == [
            "2019-12-09..2019-12-20",
            "2019-12-16..2019-12-20",
            "2019-12-18",
        ]
        assert len(checks) == 3 * n_checks
        if reference is None:
            reference = after
        else:
            pd.testing.assert_frame_equal(checks, reference["quality.check_results"])


def test_incremental_runs_equal_one_backfill(tmp_path: Path) -> None:
    first, last = "2019-12-24", "2020-01-02"  # Christmas, New Year and a weekend
    backfill_db, daily_db = tmp_path / "backfill.duckdb", tmp_path / "daily.duckdb"
    backfill = build(backfill_db, tmp_path)
    assert run(backfill, "daily_job", first, last).success

    incremental = build(daily_db, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    for day in calendar.sessions(first, last):  # the holidays are no partitions
        key = day.strftime("%Y-%m-%d")
        assert run(incremental, "daily_job", key=key, instance=instance).success, key

    for name in ("raw.prices", "raw.market", "returns.daily"):
        pd.testing.assert_frame_equal(table(daily_db, name), table(backfill_db, name), obj=name)
    returns = table(backfill_db, "returns.daily")
    assert len(returns) == EMBEDDED_SYMBOLS * 5  # 8 weekdays - 2 holidays - the first day
    # across the holidays a return is measured from the previous trading day
    after_xmas = returns.loc[returns["date"] == pd.Timestamp("2019-12-26"), "prev_date"]
    assert (after_xmas == pd.Timestamp("2019-12-24")).all()
    after_new_year = returns.loc[returns["date"] == pd.Timestamp("2020-01-02"), "prev_date"]
    assert len(after_new_year) == EMBEDDED_SYMBOLS
    assert (after_new_year == pd.Timestamp("2019-12-31")).all()

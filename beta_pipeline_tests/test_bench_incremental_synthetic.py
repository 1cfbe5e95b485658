"""The synthetic warehouse of ``benchmarks/bench_incremental_synthetic.py`` is what the
pipeline would hold: its stored returns are the ones ``lib.returns.daily_returns`` computes
from its prices and factors, and its placeholder betas have the asset's row set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import warehouse
from beta_pipeline.lib.returns import daily_returns

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_incremental_synthetic.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_incremental_synthetic", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(bench, tmp_path_factory):
    plan = bench.plan(2.5, "2022-12-30", 2, False, True)
    db = tmp_path_factory.mktemp("synthetic") / "warehouse.duckdb"
    info = bench.build_warehouse(db, 40, plan["sessions"], plan["first_timed"], True, 5, 3)
    with warehouse.open_warehouse(db, read_only=True) as conn:
        frames = {
            name: warehouse.read_window(conn, name)
            for name in ("raw.prices", "raw.market", "returns.daily")
        }
        betas = conn.execute(
            "SELECT date, model, estimator, factor, count(*) AS n FROM betas.daily "
            "GROUP BY ALL"
        ).df()
    return plan, info, frames, betas


def test_plan_times_the_last_sessions(bench):
    plan = bench.plan(3, "2022-12-30", 2, True, True)
    labels = [label for label, _ in plan["steps"]]
    assert labels == ["prime", "day", "day", "day (cProfile)", "listing"]
    days = [day for _, day in plan["steps"]]
    sessions = [d.strftime("%Y-%m-%d") for d in plan["sessions"][-5:]]
    assert days == sessions and days[-1] == "2022-12-30"
    assert plan["sessions"][0] >= pd.Timestamp("2019-12-30")


def test_stored_returns_are_the_librarys(built):
    plan, info, frames, _ = built
    prices, market, stored = frames["raw.prices"], frames["raw.market"], frames["returns.daily"]
    first_timed = plan["sessions"][plan["first_timed"]]
    assert info["rows"]["returns.daily"] == len(stored) > 0
    assert stored["date"].max() < first_timed <= prices["date"].max()
    expected = daily_returns(prices, market, end=first_timed)
    key = ["date", "symbol"]
    got = stored.sort_values(key).reset_index(drop=True)
    want = expected.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[key], want[key].astype(got[key].dtypes.to_dict()))
    for col in ("ret", "log_ret", "ret_excess", "mkt_excess"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-15)
    assert (pd.to_datetime(got["prev_date"]) == pd.to_datetime(want["prev_date"])).all()


def test_listings_missing_days_and_the_new_stock(built):
    plan, info, frames, _ = built
    prices = frames["raw.prices"]
    sessions = plan["sessions"]
    per_symbol = prices.groupby("symbol")["date"].agg(["min", "max", "size"])
    new = per_symbol.loc["S00040"]  # the listing step's stock: first price one day before
    assert new["min"] == sessions[-2] and new["size"] == 2
    assert info["late_listings"] > 0 and info["delistings"] > 0
    assert (per_symbol["size"] < len(sessions)).sum() > 0.25 * len(per_symbol)
    # no other symbol appears in the timed sessions (the steady days keep the symbol set)
    early = set(prices.loc[prices["date"] < sessions[plan["first_timed"]], "symbol"])
    assert set(per_symbol.index) - early == {"S00040"}
    assert set(frames["raw.market"]["series"]) == {"mkt_rf", "smb", "hml", "rmw", "cma", "rf"}


def test_placeholder_betas_have_the_assets_rows(bench, built):
    plan, info, frames, betas = built
    keys = bench._estimator_rows()
    assert len(keys) == 73  # capm 9 estimators, ff3 8 x 3 factors, ff5 8 x 5
    span = plan["sessions"][plan["first_timed"] - 5 : plan["first_timed"]]
    assert sorted(pd.to_datetime(betas["date"]).unique()) == list(span)
    returns = frames["returns.daily"]
    per_day = returns[returns["date"].isin(span)].groupby("date").size()
    got = betas.groupby("date")["n"].sum()
    got.index = pd.to_datetime(got.index)
    assert (got == per_day.reindex(got.index) * len(keys)).all()
    assert info["rows"]["betas.daily"] == int(got.sum())
    assert set(map(tuple, betas[["model", "estimator", "factor"]].drop_duplicates().values)) == set(
        keys
    )


def test_step_time_parsing(bench):
    assert bench._seconds("533ms") == pytest.approx(0.533)
    assert bench._seconds("2.1s") == pytest.approx(2.1)
    assert bench._seconds("4m52s") == 292.0
    assert bench._seconds("1h4m") == 3840.0
    line = "daily_betas: read 1,240,167 return rows from the first day (capm kalman: stale)"
    assert bench.READ_RE.findall(line) == [("1,240,167", "the first day", "capm kalman: stale")]

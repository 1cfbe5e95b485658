"""No look-ahead at pipeline level: changing every price after t in the source file and
re-running the whole range changes no return dated t or earlier, and every later one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from beta_pipeline_tests.support.defs import (
    build,
    csv_config,
    make_market,
    make_prices,
    run,
    table,
    write_frame,
)

FIRST, LAST = "2020-01-06", "2020-01-31"
T = pd.Timestamp("2020-01-17")


def test_prices_after_t_do_not_change_returns_up_to_t(
    warehouse_path: Path, tmp_path: Path
) -> None:
    prices = make_prices(("AAA", "BBB", "CCC", "DDD"), "2020-01-01", "2020-02-14")
    price_file = write_frame(tmp_path / "prices.csv", prices)
    write_frame(tmp_path / "market.csv", make_market("2020-01-01", "2020-02-14"))
    cfg = csv_config(tmp_path, price_file.name, "market.csv")
    defs = build(warehouse_path, tmp_path, kind="csv", config=cfg)

    assert run(defs, "daily_job", FIRST, LAST).success
    before = table(warehouse_path, "returns.daily")
    assert len(before) == 4 * 18  # 19 sessions in the range, the first without a return

    # a different factor on every later row, so that every later return changes
    later = prices["date"] > T
    factors = 1.0 + 0.01 * (1 + np.arange(int(later.sum())) % 7)
    changed = prices.copy()
    changed.loc[later, "close"] = (changed.loc[later, "close"] * factors).round(4)
    stat = price_file.stat()
    write_frame(price_file, changed)
    # a new mtime whatever the file system's timestamp granularity (the parse cache's key)
    os.utime(price_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert run(defs, "daily_job", FIRST, LAST).success
    after = table(warehouse_path, "returns.daily")
    assert len(after) == len(before)
    early_b, early_a = before.loc[before["date"] <= T], after.loc[after["date"] <= T]
    assert len(early_b) == 4 * 9
    pd.testing.assert_frame_equal(early_a, early_b)
    late_b = before.loc[before["date"] > T].reset_index(drop=True)
    late_a = after.loc[after["date"] > T].reset_index(drop=True)
    assert len(late_b) == 4 * 9  # MLK day (2020-01-20) is no session
    pd.testing.assert_frame_equal(late_a[["date", "symbol"]], late_b[["date", "symbol"]])
    assert (late_a["ret"] != late_b["ret"]).all()
    # raw prices up to t are unchanged as well, later ones are the changed file's
    raw = table(warehouse_path, "raw.prices")
    assert len(raw) == 4 * 19
    expect = changed.loc[changed["date"].between(FIRST, LAST)].sort_values(["symbol", "date"])
    np.testing.assert_allclose(raw["close"].to_numpy(), expect["close"].to_numpy())

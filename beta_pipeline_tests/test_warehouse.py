"""Unit tests of lib/warehouse.py: transactional partition replacement, read-only readers."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import warehouse


def _rows(dates, symbols=("AAA", "BBB"), value=1.0) -> pd.DataFrame:
    idx = pd.MultiIndex.from_product([pd.to_datetime(dates), symbols], names=["date", "symbol"])
    frame = idx.to_frame(index=False)
    frame["prev_date"] = frame["date"] - pd.Timedelta(days=1)
    for col in ["ret", "log_ret", "ret_excess", "mkt_excess"]:
        frame[col] = value
    return frame


def test_replace_window_is_idempotent(warehouse_path):
    days = pd.bdate_range("2020-01-01", periods=10)
    with warehouse.open_warehouse(warehouse_path) as conn:
        for _ in range(10):
            warehouse.replace_window(
                conn, "returns.daily", _rows(days), days[0], days[-1] + pd.Timedelta(days=1)
            )
        n, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (symbol, date)) FROM returns.daily"
        ).fetchone()
    assert n == distinct == 20


def test_replace_window_leaves_other_partitions(warehouse_path):
    days = pd.bdate_range("2020-01-01", periods=10)
    with warehouse.open_warehouse(warehouse_path) as conn:
        warehouse.replace_window(
            conn, "returns.daily", _rows(days), days[0], days[-1] + pd.Timedelta(days=1)
        )
        warehouse.replace_window(
            conn, "returns.daily", _rows(days[3:4], value=2.0), days[3], days[4]
        )
        out = warehouse.read_window(conn, "returns.daily")
    assert len(out) == 20
    assert set(out.loc[out["date"] == days[3], "ret"]) == {2.0}
    assert set(out.loc[out["date"] != days[3], "ret"]) == {1.0}


def test_failed_write_rolls_back_and_keeps_old_rows(warehouse_path):
    days = pd.bdate_range("2020-01-01", periods=5)
    end = days[-1] + pd.Timedelta(days=1)
    with warehouse.open_warehouse(warehouse_path) as conn:
        warehouse.replace_window(conn, "returns.daily", _rows(days), days[0], end)
        bad = _rows(days, value=3.0)
        bad = pd.concat([bad, bad.iloc[:1]])  # duplicate key violates the primary key
        with pytest.raises(duckdb.ConstraintException):
            warehouse.replace_window(conn, "returns.daily", bad, days[0], end)
        out = warehouse.read_window(conn, "returns.daily")
    assert len(out) == 10 and set(out["ret"]) == {1.0}


def test_rows_outside_window_are_refused(warehouse_path):
    days = pd.bdate_range("2020-01-01", periods=5)
    with warehouse.open_warehouse(warehouse_path) as conn:
        with pytest.raises(ValueError, match="outside the partition"):
            warehouse.replace_window(conn, "returns.daily", _rows(days), days[0], days[2])


def test_reader_is_read_only(warehouse_path):
    with warehouse.open_warehouse(warehouse_path):
        pass
    with warehouse.open_warehouse(warehouse_path, read_only=True) as conn:
        with pytest.raises(duckdb.Error):
            conn.execute("DELETE FROM returns.daily")


def test_parameters_are_not_interpolated(warehouse_path):
    frame = pd.DataFrame(
        {
            "asset": ["x'); DROP TABLE raw.prices; --"],
            "partition": ["p"],
            "check_name": ["c"],
            "passed": [True],
            "severity": ["warn"],
            "observed": [np.nan],
            "details": ["d"],
            "checked_at": [pd.Timestamp("2020-01-01")],
        }
    )
    with warehouse.open_warehouse(warehouse_path) as conn:
        warehouse.replace_keys(conn, "quality.check_results", frame, {"asset": frame["asset"][0]})
        assert conn.execute("SELECT count(*) FROM raw.prices").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM quality.check_results").fetchone() == (1,)

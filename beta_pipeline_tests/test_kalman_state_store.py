"""Kalman filter states kept per session in ``betas.estimator_state`` (issue 12): a run
replaces the states its window invalidates, the newest ``STATES_KEPT`` dates stay, a run
resumes from the newest state before its window, and a table from before (key without
``date``) is rebuilt."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beta_pipeline.lib import beta_tables as bt
from beta_pipeline.lib.warehouse import ensure_tables

SYMBOLS = pd.Index(["AAA", "BBB"], dtype=object)


def _state(day: str, beta: float) -> bt.KalmanState:
    ones = np.ones(len(SYMBOLS))
    params = {k: ones * v for k, v in zip(bt.KALMAN_STATE_PARAMS, (1e-5, 1e-4, 0.0, 1.0, 0.0),
                                           strict=True)}
    return bt.KalmanState(pd.Timestamp(day), SYMBOLS, ones * beta, ones * 0.1,
                          np.array([10, 11]), params, 504, pd.Timestamp("2015-01-30"))


def _conn(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_tables(conn)
    return conn


def _dates(conn) -> list[str]:
    rows = conn.execute("SELECT DISTINCT date FROM betas.estimator_state ORDER BY 1").fetchall()
    return [f"{d:%Y-%m-%d}" for (d,) in rows]


def test_states_are_kept_per_session_and_trimmed(tmp_path):
    conn = _conn(tmp_path)
    days = pd.bdate_range("2024-01-01", periods=14)
    for i, day in enumerate(days):
        bt.store_kalman_state(conn, "capm", "kalman", _state(f"{day:%Y-%m-%d}", i), day, keep=5)
    assert _dates(conn) == [f"{d:%Y-%m-%d}" for d in days[-5:]]
    # a run resumes from the newest state before its window
    states = bt.read_kalman_states(conn, days[-2])
    state = states["capm"]["kalman"]
    assert state.date == days[-3] and state.beta.tolist() == [11.0, 11.0]
    assert state.symbols.equals(SYMBOLS) and state.n_obs.tolist() == [10, 11]


def test_a_rerun_replaces_the_states_of_its_window(tmp_path):
    conn = _conn(tmp_path)
    for i, day in enumerate(["2024-01-02", "2024-01-03", "2024-01-04"]):
        bt.store_kalman_state(conn, "capm", "kalman", _state(day, i), pd.Timestamp(day))
    # re-running 2024-01-03 (its last row is 01-03 again): 01-04's state came from the
    # replaced rows and goes
    bt.store_kalman_state(conn, "capm", "kalman", _state("2024-01-03", 7.0),
                          pd.Timestamp("2024-01-03"))
    assert _dates(conn) == ["2024-01-02", "2024-01-03"]
    newest = bt.read_kalman_states(conn, pd.Timestamp("2024-01-05"))["capm"]["kalman"]
    assert newest.beta.tolist() == [7.0, 7.0]
    # other models and estimators are untouched
    bt.store_kalman_state(conn, "ff3", "kalman", _state("2024-01-04", 1.0),
                          pd.Timestamp("2024-01-04"))
    assert set(bt.read_kalman_states(conn, pd.Timestamp("2024-01-05"))) == {"capm", "ff3"}


def test_no_table_no_state_and_old_key_is_rebuilt(tmp_path):
    conn = duckdb.connect(str(tmp_path / "old.duckdb"))
    assert bt.read_kalman_states(conn, pd.Timestamp("2024-01-05")) == {}
    conn.execute("CREATE SCHEMA betas")
    columns = ", ".join(f"{c} {t}" for c, t in bt.TABLES["betas.estimator_state"].columns)
    conn.execute(f"CREATE TABLE betas.estimator_state ({columns}, "
                 "PRIMARY KEY (model, estimator, symbol))")
    bt.store_kalman_state(conn, "capm", "kalman", _state("2024-01-02", 1.0),
                          pd.Timestamp("2024-01-02"))
    bt.store_kalman_state(conn, "capm", "kalman", _state("2024-01-03", 2.0),
                          pd.Timestamp("2024-01-03"))
    assert _dates(conn) == ["2024-01-02", "2024-01-03"]

"""Reads and writes of the NeuralBeta tables: runs to evaluate or to serve, the evaluation's
inputs, the market data of a window and the synthetic scenarios' views."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd

from beta_pipeline.lib import warehouse
from beta_pipeline.lib.neuralbeta.tables import RUNS


def table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a schema-qualified table or view exists."""
    schema, table = name.split(".")
    # fetchall: a half-read result would block the next statement on this connection
    (found,) = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(found[0])


def has_rows(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a registered table exists and holds at least one row."""
    if not table_exists(conn, name):
        return False
    return bool(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {name})").fetchall()[0][0])


def latest_runs(
    conn: duckdb.DuckDBPyConnection, experiments: list[str] | None = None
) -> pd.DataFrame:
    """The newest run per (experiment, model) that has a test split (optionally only
    ``experiments``): a walk-forward run trained up to the last date cannot be scored."""
    where, params = "coalesce(n_test, 0) > 0", []
    if experiments:
        where += f" AND experiment IN ({', '.join('?' for _ in experiments)})"
        params = list(experiments)
    return conn.execute(
        f"""
        SELECT * FROM {RUNS.name} WHERE {where}
        QUALIFY row_number() OVER (PARTITION BY experiment, model ORDER BY created_at DESC) = 1
        ORDER BY experiment, model
        """,
        params,
    ).df()


def market_runs(conn: duckdb.DuckDBPyConnection, experiments: list[str]) -> pd.DataFrame:
    """Every run of the market ``experiments`` (for choosing, per date, the newest model
    trained strictly before it)."""
    return conn.execute(
        f"""
        SELECT * FROM {RUNS.name}
        WHERE experiment IN ({", ".join("?" for _ in experiments)})
        ORDER BY experiment, model, trained_through, created_at
        """,
        list(experiments),
    ).df()


def evaluation_inputs(
    conn: duckdb.DuckDBPyConnection,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(runs, baselines, history)``: the newest scorable run per (experiment, model)
    (none before the first training), every synthetic baseline row and those runs'
    validation histories."""
    runs = (
        latest_runs(conn)
        if table_exists(conn, RUNS.name)
        else pd.DataFrame(columns=RUNS.column_names)
    )
    baselines = conn.execute("SELECT * FROM neuralbeta.baselines").df()
    history = conn.execute(
        "SELECT * FROM neuralbeta.history WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY experiment, model, step",
        [list(runs["run_id"])],
    ).df()
    return runs, baselines, history


def read_market(
    conn: duckdb.DuckDBPyConnection,
    end: pd.Timestamp | None = None,
    start: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``returns.daily`` (date, symbol, ret_excess, mkt_excess) and ``raw.market`` (date,
    series, value) rows dated in ``[start, end)`` (open ends: everything)."""
    returns = warehouse.read_window(
        conn, "returns.daily", start, end, columns=["date", "symbol", "ret_excess", "mkt_excess"]
    )
    market = warehouse.read_window(
        conn, "raw.market", start, end, columns=["date", "series", "value"]
    )
    return returns, market


def _quoted(path: str) -> str:
    """A file path as a SQL string literal (DDL of a view cannot take parameters)."""
    return "'" + path.replace("'", "''") + "'"


def create_scenario_views(conn: duckdb.DuckDBPyConnection, views: Mapping[str, str]) -> None:
    """``synthetic.<name>`` views over the Parquet files of a scenario (name -> path)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS synthetic")
    for name, path in views.items():
        conn.execute(
            f"CREATE OR REPLACE VIEW synthetic.{name} AS "
            f"SELECT * FROM read_parquet({_quoted(path)})"
        )


def drop_scenario_view(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop the ``synthetic.<name>`` view (its file is gone)."""
    conn.execute(f"DROP VIEW IF EXISTS synthetic.{name}")

"""NeuralBeta tables in the warehouse (DESIGN.md contract) and run bookkeeping."""

from __future__ import annotations

import duckdb
import pandas as pd

from beta_pipeline.lib.warehouse import Table, register_table

RUNS = register_table(
    Table(
        "neuralbeta.runs",
        (
            ("run_id", "VARCHAR NOT NULL"),
            ("experiment", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("budget", "VARCHAR"),
            ("seed", "INTEGER"),
            ("config", "VARCHAR"),
            ("checkpoint", "VARCHAR"),
            ("n_train", "BIGINT"),
            ("n_val", "BIGINT"),
            ("n_test", "BIGINT"),
            ("train_end", "DATE"),
            ("val_end", "DATE"),
            ("trained_through", "DATE"),
            ("factors", "VARCHAR"),
            ("best_step", "INTEGER"),
            ("best_val_loss", "DOUBLE"),
            ("steps", "INTEGER"),
            ("seconds", "DOUBLE"),
            ("cpu_seconds", "DOUBLE"),
            ("device", "VARCHAR"),
            ("created_at", "TIMESTAMP"),
        ),
        None,
        ("run_id", "experiment", "model"),
    )
)
HISTORY = register_table(
    Table(
        "neuralbeta.history",
        (
            ("run_id", "VARCHAR NOT NULL"),
            ("experiment", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("step", "INTEGER NOT NULL"),
            ("val_loss", "DOUBLE"),
            ("rmse_y", "DOUBLE"),
            ("rmse_beta", "DOUBLE"),
        ),
        None,
        ("run_id", "experiment", "model", "step"),
    )
)
BASELINES = register_table(
    Table(
        "neuralbeta.baselines",
        (
            ("experiment", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("test_set", "VARCHAR NOT NULL"),
            ("rmse_y", "DOUBLE"),
            ("rmse_beta", "DOUBLE"),
            ("improvement_vs_ols_pct", "DOUBLE"),
            ("oracle_gap_closed", "DOUBLE"),
            ("n", "BIGINT"),
            ("params", "VARCHAR"),
        ),
        None,
        ("experiment", "estimator", "test_set"),
    )
)
EVALUATION = register_table(
    Table(
        "neuralbeta.evaluation",
        (
            ("experiment", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("test_set", "VARCHAR NOT NULL"),
            ("rmse_y", "DOUBLE"),
            ("rmse_beta", "DOUBLE"),
            ("improvement_vs_ols_pct", "DOUBLE"),
            ("oracle_gap_closed", "DOUBLE"),
            ("n", "BIGINT"),
            ("paper_improvement_pct", "DOUBLE"),
            ("run_id", "VARCHAR"),
            ("corr_rmse_y_rmse_beta", "DOUBLE"),
        ),
        None,
        ("experiment", "model", "test_set"),
    )
)
KALMAN_STUDY = register_table(
    Table(
        "neuralbeta.kalman_study",
        (
            ("seed", "INTEGER NOT NULL"),
            ("state_var", "DOUBLE"),
            ("obs_var", "DOUBLE"),
            ("mse_ols_full", "DOUBLE"),
            ("mse_ols_30", "DOUBLE"),
            ("mse_kalman", "DOUBLE"),
            ("mse_break60_ols_full", "DOUBLE"),
            ("mse_break60_ols_30", "DOUBLE"),
            ("mse_break60_kalman", "DOUBLE"),
        ),
        None,
        ("seed",),
    )
)
BETAS = register_table(
    Table(
        "neuralbeta.betas",
        (
            ("date", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("experiment", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("factor", "VARCHAR NOT NULL"),
            ("beta", "DOUBLE"),
            ("run_id", "VARCHAR"),
        ),
        "date",
        ("experiment", "model", "symbol", "date", "factor"),
    )
)
WEIGHTS = register_table(
    Table(
        "neuralbeta.weights",
        (
            ("date", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("experiment", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("lag", "SMALLINT NOT NULL"),
            ("weight", "FLOAT"),
            ("run_id", "VARCHAR"),
        ),
        "date",
        ("experiment", "model", "symbol", "date", "lag"),
    )
)


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
        SELECT * FROM neuralbeta.runs WHERE {where}
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
        SELECT * FROM neuralbeta.runs
        WHERE experiment IN ({", ".join("?" for _ in experiments)})
        ORDER BY experiment, model, trained_through, created_at
        """,
        list(experiments),
    ).df()

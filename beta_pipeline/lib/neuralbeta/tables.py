"""The NeuralBeta tables of the warehouse (DESIGN.md contract), declared once."""

from __future__ import annotations

from beta_pipeline.lib.table_spec import Table

RUNS = Table(
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
        # table1: one split for Table 1 (neuralbeta_model); walkforward: one run per cut-off
        ("study", "VARCHAR"),
        ("cutoff", "INTEGER"),
    ),
    None,
    ("run_id", "experiment", "model"),
)
HISTORY = Table(
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
BASELINES = Table(
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
EVALUATION = Table(
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
KALMAN_STUDY = Table(
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
BETAS = Table(
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
WEIGHTS = Table(
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

#: Every table of this domain (collected by :data:`beta_pipeline.lib.tables.ALL_TABLES`).
TABLES: tuple[Table, ...] = (RUNS, HISTORY, BASELINES, EVALUATION, KALMAN_STUDY, BETAS, WEIGHTS)

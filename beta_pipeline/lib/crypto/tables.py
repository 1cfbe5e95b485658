"""Warehouse tables of the crypto and cross-asset study (group ``crypto``).

Unpartitioned: every run replaces the whole table (or one method's rows).
"""

from __future__ import annotations

from beta_pipeline.lib.core_tables import PRICE_COLUMNS
from beta_pipeline.lib.table_spec import Table

TABLES: tuple[Table, ...] = (
    Table("crypto.prices", PRICE_COLUMNS, None, ("symbol", "date")),
    Table("crypto.cross_asset_prices", PRICE_COLUMNS, None, ("symbol", "date")),
    Table(
        "crypto.factors_monthly",
        (("month", "DATE NOT NULL"), ("series", "VARCHAR NOT NULL"), ("value", "DOUBLE")),
        None,
        ("series", "month"),
    ),
    Table(
        "crypto.monthly_returns",
        (
            ("month", "DATE NOT NULL"), ("asset", "VARCHAR NOT NULL"), ("symbol", "VARCHAR"),
            ("role", "VARCHAR"), ("close", "DOUBLE"), ("close_date", "DATE"),
            ("log_ret", "DOUBLE"), ("ret", "DOUBLE"),
        ),
        None,
        ("asset", "month"),
    ),
    Table(
        "crypto.grid_search",
        (
            ("config", "VARCHAR NOT NULL"), ("lookback", "INTEGER"),
            ("hidden", "INTEGER NOT NULL"), ("lr", "DOUBLE NOT NULL"),
            ("activation", "VARCHAR NOT NULL"), ("train_rmse", "DOUBLE"),
            ("val_rmse", "DOUBLE"), ("best_epoch", "DOUBLE"),
        ),
        None,
        ("config", "hidden", "lr", "activation"),
    ),
    Table(
        "crypto.best_configs",
        (
            ("config", "VARCHAR NOT NULL"), ("lookback", "INTEGER"), ("hidden", "INTEGER"),
            ("lr", "DOUBLE"), ("activation", "VARCHAR"), ("train_rmse", "DOUBLE"),
            ("val_rmse", "DOUBLE"), ("test_rmse", "DOUBLE"), ("best_epoch", "DOUBLE"),
            ("n_train", "INTEGER"), ("n_val", "INTEGER"), ("n_test", "INTEGER"),
            ("train_start", "DATE"), ("train_end", "DATE"), ("val_start", "DATE"),
            ("val_end", "DATE"), ("test_start", "DATE"), ("test_end", "DATE"),
            ("seconds", "DOUBLE"), ("options", "VARCHAR"),
        ),
        None,
        ("config",),
    ),
    Table(
        "crypto.learning_curves",
        (
            ("config", "VARCHAR NOT NULL"), ("epoch", "INTEGER NOT NULL"),
            ("train_rmse", "DOUBLE"), ("val_rmse", "DOUBLE"),
        ),
        None,
        ("config", "epoch"),
    ),
    *(
        Table(
            name,  # month = the month hedged; data_end = last month of data used
            (
                ("month", "DATE NOT NULL"), ("data_end", "DATE NOT NULL"),
                ("coin", "VARCHAR NOT NULL"), ("config", "VARCHAR NOT NULL"),
                ("market", "VARCHAR NOT NULL"), ("method", "VARCHAR NOT NULL"),
                ("beta", "DOUBLE"), ("split", "VARCHAR"),
            ),
            None,
            ("config", "method", "coin", "market", "month"),
        )
        for name in ("crypto.betas", "crypto.baseline_betas")
    ),
    Table(
        "crypto.hedging",
        (
            ("config", "VARCHAR NOT NULL"), ("method", "VARCHAR NOT NULL"),
            ("split", "VARCHAR NOT NULL"), ("n", "BIGINT"), ("rmse", "DOUBLE"),
            ("first_month", "DATE"), ("last_month", "DATE"), ("rmse_ref", "DOUBLE"),
            ("improvement_pct", "DOUBLE"), ("reference", "VARCHAR"),
        ),
        None,
        ("config", "method", "split"),
    ),
    Table(
        "crypto.beta_stats",
        (
            ("config", "VARCHAR NOT NULL"), ("method", "VARCHAR NOT NULL"),
            ("coin", "VARCHAR NOT NULL"), ("market", "VARCHAR NOT NULL"),
            ("sample", "VARCHAR NOT NULL"), ("n", "BIGINT"), ("mean", "DOUBLE"),
            ("std", "DOUBLE"), ("skew", "DOUBLE"), ("kurtosis", "DOUBLE"),
            ("min", "DOUBLE"), ("max", "DOUBLE"),
        ),
        None,
        ("config", "method", "coin", "market", "sample"),
    ),
    Table(
        "crypto.beta_annual",
        (
            ("year", "INTEGER NOT NULL"), ("config", "VARCHAR NOT NULL"),
            ("method", "VARCHAR NOT NULL"), ("coin", "VARCHAR NOT NULL"),
            ("market", "VARCHAR NOT NULL"), ("mean_beta", "DOUBLE"), ("n", "BIGINT"),
        ),
        None,
        ("config", "method", "coin", "market", "year"),
    ),
    Table(
        "crypto.ff5_addon",
        (
            ("config", "VARCHAR NOT NULL"), ("hidden", "INTEGER"), ("lr", "DOUBLE"),
            ("activation", "VARCHAR"), ("factors", "VARCHAR"), ("factors_end", "VARCHAR"),
            ("test_start", "VARCHAR"), ("test_end", "VARCHAR"), ("n_test", "INTEGER"),
            ("val_rmse_base", "DOUBLE"), ("val_rmse_ff5", "DOUBLE"),
            ("test_rmse_base", "DOUBLE"), ("test_rmse_ff5", "DOUBLE"),
            ("change_pct", "DOUBLE"),
        ),
        None,
        ("config",),
    ),
    Table(
        "crypto.quartile_sorts",  # month = holding month; data_end = sort month
        (
            ("month", "DATE NOT NULL"), ("data_end", "DATE NOT NULL"),
            ("config", "VARCHAR NOT NULL"), ("method", "VARCHAR NOT NULL"),
            ("quartile", "VARCHAR NOT NULL"), ("n", "BIGINT"), ("mean_beta", "DOUBLE"),
            ("excess_return", "DOUBLE"), ("split", "VARCHAR"),
        ),
        None,
        ("config", "method", "month", "quartile"),
    ),
)

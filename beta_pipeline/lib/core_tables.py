"""Core warehouse tables: raw inputs, returns, baseline betas, check results, bookkeeping.

Declared once here and collected by :data:`beta_pipeline.lib.tables.ALL_TABLES`.
"""

from __future__ import annotations

from beta_pipeline.lib.table_spec import Table

_PRICE = "DOUBLE"
#: Price columns shared by ``raw.prices`` and the crypto price tables.
PRICE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("date", "DATE NOT NULL"),
    ("symbol", "VARCHAR NOT NULL"),
    ("open", _PRICE),
    ("high", _PRICE),
    ("low", _PRICE),
    ("close", _PRICE),
    ("adj_close", _PRICE),
    ("volume", "DOUBLE"),
    ("source", "VARCHAR"),
)

TABLES: tuple[Table, ...] = (
    Table("raw.prices", PRICE_COLUMNS, "date", ("symbol", "date")),
    Table(
        "raw.market",
        (("date", "DATE NOT NULL"), ("series", "VARCHAR NOT NULL"), ("value", "DOUBLE")),
        "date",
        ("series", "date"),
    ),
    Table(
        "raw.market_monthly",
        (("month", "DATE NOT NULL"), ("series", "VARCHAR NOT NULL"), ("value", "DOUBLE")),
        "month",
        ("series", "month"),
    ),
    Table(
        "raw.securities",
        (
            ("symbol", "VARCHAR NOT NULL"),
            ("name", "VARCHAR"),
            ("sector", "VARCHAR"),
            ("asset_class", "VARCHAR"),
            ("source", "VARCHAR"),
        ),
        None,
        ("symbol",),
    ),
    Table(
        "returns.daily",
        (
            ("date", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("prev_date", "DATE"),
            ("ret", "DOUBLE"),
            ("log_ret", "DOUBLE"),
            ("ret_excess", "DOUBLE"),
            ("mkt_excess", "DOUBLE"),
        ),
        "date",
        ("symbol", "date"),
    ),
    Table(
        "returns.monthly",
        (
            ("month", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("ret", "DOUBLE"),
            ("log_ret", "DOUBLE"),
            ("ret_excess", "DOUBLE"),
            ("mkt_excess", "DOUBLE"),
            ("n_days", "INTEGER"),
        ),
        "month",
        ("symbol", "month"),
    ),
    Table(
        "betas.daily",
        (
            ("date", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("factor", "VARCHAR NOT NULL"),
            ("beta", "DOUBLE"),
            ("alpha", "DOUBLE"),
            ("r2", "DOUBLE"),
            ("resid_std", "DOUBLE"),
            ("n_obs", "INTEGER"),
        ),
        "date",
    ),
    Table(
        "betas.monthly",
        (
            ("month", "DATE NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("model", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("factor", "VARCHAR NOT NULL"),
            ("beta", "DOUBLE"),
            ("alpha", "DOUBLE"),
            ("r2", "DOUBLE"),
            ("resid_std", "DOUBLE"),
            ("n_obs", "INTEGER"),
        ),
        "month",
    ),
    Table(
        "betas.estimator_params",
        (
            ("model", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("param", "VARCHAR NOT NULL"),
            ("value", "DOUBLE"),
            ("fit_start", "DATE"),
            ("fit_end", "DATE"),
            ("details", "VARCHAR"),
            ("fitted_at", "TIMESTAMP"),
        ),
        None,
        ("model", "estimator", "param"),
    ),
    Table(
        "betas.estimator_state",
        (
            ("model", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("symbol", "VARCHAR NOT NULL"),
            ("date", "DATE"),
            ("beta", "DOUBLE"),
            ("var", "DOUBLE"),
            ("n_obs", "BIGINT"),
            ("q", "DOUBLE"),
            ("h", "DOUBLE"),
            ("alpha", "DOUBLE"),
            ("phi", "DOUBLE"),
            ("mu", "DOUBLE"),
            ("train_rows", "BIGINT"),
            ("fit_end", "DATE"),
            ("saved_at", "TIMESTAMP"),
        ),
        None,
        ("model", "estimator", "symbol", "date"),
    ),
    Table(
        "betas.hedging_performance",
        (
            ("model", "VARCHAR NOT NULL"),
            ("estimator", "VARCHAR NOT NULL"),
            ("period", "VARCHAR NOT NULL"),
            ("n", "BIGINT"),
            ("rmse", "DOUBLE"),
            ("rmse_ref", "DOUBLE"),
            ("improvement_pct", "DOUBLE"),
            ("reference", "VARCHAR"),
        ),
        None,
        ("model", "estimator", "period"),
    ),
    Table(
        "quality.check_results",
        (
            ("asset", "VARCHAR NOT NULL"),
            ("partition", "VARCHAR NOT NULL"),
            ("check_name", "VARCHAR NOT NULL"),
            ("passed", "BOOLEAN NOT NULL"),
            ("severity", "VARCHAR NOT NULL"),
            ("observed", "DOUBLE"),
            ("details", "VARCHAR"),
            ("checked_at", "TIMESTAMP"),
        ),
        None,
        ("asset", "partition", "check_name"),
    ),
    # --- bookkeeping: which source this warehouse holds (see bind_source) ---
    Table(
        "meta.source_binding",
        (
            ("source", "VARCHAR NOT NULL"),
            ("config", "VARCHAR"),
            ("fingerprint", "VARCHAR NOT NULL"),
            ("bound_at", "TIMESTAMP"),
        ),
        None,
    ),
)

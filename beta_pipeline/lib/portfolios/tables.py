"""Warehouse tables of the beta sorts (DESIGN.md: portfolios.beta_sorts,
portfolios.sort_skipped, portfolios.summary); :mod:`beta_pipeline.lib.sorts` re-exports them."""

from __future__ import annotations

from beta_pipeline.lib.table_spec import Table

BETA_SORTS = Table(
    "portfolios.beta_sorts",
    (
        ("month", "DATE NOT NULL"),  # holding month t+1
        ("formation_month", "DATE NOT NULL"),  # month t whose end-of-month beta sorts
        ("estimator", "VARCHAR NOT NULL"),
        ("source", "VARCHAR"),
        ("portfolio", "VARCHAR NOT NULL"),  # '1' (lowest beta) .. 'n', 'HML'
        ("n_portfolios", "INTEGER"),
        ("weighting", "VARCHAR NOT NULL"),  # 'ew' | 'vw'
        ("ret_excess", "DOUBLE"),
        ("mean_beta", "DOUBLE"),
        ("n", "INTEGER"),
    ),
    "month",
    ("month", "estimator", "weighting", "portfolio"),
)
SORT_SKIPPED = Table(
    "portfolios.sort_skipped",
    (
        ("month", "DATE NOT NULL"),
        ("formation_month", "DATE NOT NULL"),
        ("estimator", "VARCHAR NOT NULL"),
        ("n_stocks", "INTEGER"),
        ("reason", "VARCHAR"),
    ),
    "month",
    ("month", "estimator"),
)
SUMMARY = Table(
    "portfolios.summary",
    (
        ("estimator", "VARCHAR NOT NULL"),
        ("source", "VARCHAR"),
        ("weighting", "VARCHAR NOT NULL"),
        ("n_portfolios", "INTEGER NOT NULL"),
        ("portfolio", "VARCHAR NOT NULL"),
        ("n_months", "INTEGER"),
        ("first_month", "DATE"),
        ("last_month", "DATE"),
        ("mean_ret_excess", "DOUBLE"),
        ("t_mean", "DOUBLE"),
        ("alpha", "DOUBLE"),
        ("t_alpha", "DOUBLE"),
        ("capm_beta", "DOUBLE"),
        ("t_capm_beta", "DOUBLE"),
        ("mean_beta", "DOUBLE"),
        ("avg_n", "DOUBLE"),
        ("nw_lags", "INTEGER"),
    ),
    None,
    ("estimator", "weighting", "n_portfolios", "portfolio"),
)

#: Every table of this domain (collected by :data:`beta_pipeline.lib.tables.ALL_TABLES`).
TABLES: tuple[Table, ...] = (BETA_SORTS, SORT_SKIPPED, SUMMARY)

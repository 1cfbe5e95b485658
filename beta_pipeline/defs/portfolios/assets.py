"""Portfolio sorts on beta: each month's quantile portfolios of every estimator's beta known
at the previous month end, their next-month excess returns, and the summary with
Newey-West t-statistics and CAPM alphas (docs/methods.md, Portfolio sorts).

Partition = the **holding** month t+1: its run sorts on betas of the formation month t
(``betas.daily``: each symbol's last finite market beta dated inside month t;
``betas.monthly``: month t; ``neuralbeta.betas`` when that table exists) and reads
``returns.monthly`` of t+1, so the monthly schedule (the 2nd of the next month) always
finds the holding month's returns in place.

The estimator keys and the warehouse reads are in :mod:`beta_pipeline.lib.portfolios.signals`,
the batch and summary steps in :mod:`beta_pipeline.lib.portfolios.pipeline`, the figures in
:mod:`beta_pipeline.lib.portfolios.plots`.
"""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL, monthly_partitions
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import (
    materialize_result,
    partition_label,
    plot_entries,
    preview,
    window,
)
from beta_pipeline.lib import sorts, warehouse
from beta_pipeline.lib.portfolios import pipeline, signals
from beta_pipeline.lib.portfolios import plots as sort_plots

GROUP = "portfolios"


class BetaSortsConfig(dg.Config):
    """Breakpoints and estimator selection of ``beta_portfolio_sorts``."""

    n_portfolios: int = 0
    """Quantile portfolios; 0 = auto from the symbols in returns.monthly: deciles from 100,
    quintiles from 15 (the embedded 20 stocks), else terciles."""
    percentiles: list[float] = []
    """Explicit interior breakpoints, e.g. [0.3, 0.7]; overrides n_portfolios."""
    min_portfolio_size: int = 1
    """Fewer stocks in a formation month than portfolios x this: month skipped (recorded in
    portfolios.sort_skipped); a portfolio below it has a NULL return."""
    models: list[str] = ["capm", "ff3", "ff5"]
    sources: list[str] = ["daily", "monthly", "neuralbeta"]
    estimators: list[str] = []
    """Glob patterns on the estimator key (e.g. 'capm/*'); empty = every estimator."""
    plot_estimators: list[str] = []
    """Glob patterns of the estimators in the figures; empty = a headline set."""


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # same-month deps (a holding month's run follows its month's data); the sort reads the
    # previous month-end's betas from the warehouse: trailing windows are read, not declared,
    # so a backfill of months A..B materializes exactly A..B
    deps=["monthly_returns", "monthly_betas", "daily_betas", "neuralbeta_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "python", "pandas"},
    group_name=GROUP,
    metadata=writes("portfolios.beta_sorts", "portfolios.sort_skipped"),
    description="Monthly beta-sorted quantile portfolios per estimator: next-month returns, HML.",
)
def beta_portfolio_sorts(
    context: dg.AssetExecutionContext,
    config: BetaSortsConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Partition = holding month t+1; sorts on betas of month t (see the module doc)."""
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    f_lo, f_hi = start - pd.DateOffset(months=1), end - pd.DateOffset(months=1)
    notes: dict[str, object] = {}
    with warehouse_db.reader() as conn:
        betas = signals.formation_signals(
            conn, f_lo, f_hi, models=config.models, sources=config.sources,
            estimators=config.estimators, notes=notes,
        )
        returns = warehouse.read_window(
            conn, "returns.monthly", start, end, ["month", "symbol", "ret_excess"]
        )
        caps, weighting_note = signals.market_caps(conn, f_lo, f_hi)
        n_port, n_note = signals.portfolio_count(conn, config.n_portfolios, config.percentiles)
    batch = pipeline.sort_batch(
        betas, returns, caps, n_port, config.percentiles or None, config.min_portfolio_size
    )
    frame, skipped = batch.frame, batch.skipped
    for message in pipeline.batch_warnings(batch, label, no_signals=betas.empty):
        context.log.warning(f"beta_portfolio_sorts: {message}")
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "portfolios.beta_sorts", frame, start, end)
        warehouse.replace_window(conn, "portfolios.sort_skipped", skipped, start, end)
        history = signals.ew_history(conn)
    context.log.info(f"beta_portfolio_sorts: wrote {n:,} rows for {label}")
    small: dict[str, object] = {
        "dagster/row_count": n,
        "estimators": int(frame["estimator"].nunique()),
        "portfolios": n_note,
        "weighting": weighting_note,
        "skipped_cross_sections": len(skipped),
        "months_without_betas": len(batch.no_betas),
        **notes,
    }
    rich: dict[str, object] = {"preview": preview(frame, 12)}
    hml = pipeline.hml_means(frame)
    if hml is not None:
        rich["hml_mean_ew_by_estimator"] = dg.MetadataValue.json(hml)
    if len(skipped):
        rich["skipped"] = preview(skipped.astype({"month": str, "formation_month": str}), 10)
    figures = sort_plots.sort_figures(history, config.plot_estimators or None)
    for name, png in figures.items():
        path = artifacts.path("portfolios", f"beta_sorts_{name}.png")
        rich.update(plot_entries(name, png, path))
    return materialize_result(context, small, rich)


class SummaryConfig(dg.Config):
    """Newey-West lags and the estimators in the security-market-line figure."""

    nw_lags: int = sorts.NW_LAGS
    plot_estimators: list[str] = []


@dg.asset(
    deps=["beta_portfolio_sorts", "monthly_returns"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "python", "statsmodels"},
    group_name=GROUP,
    metadata=writes("portfolios.summary"),
    description="Beta-sort summary: mean excess return, Newey-West t, CAPM alpha per portfolio.",
)
def beta_portfolio_summary(
    context: dg.AssetExecutionContext,
    config: SummaryConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Every month of portfolios.beta_sorts, regressed on the month's market excess return
    (returns.monthly); replaces portfolios.summary."""
    with warehouse_db.reader() as conn:
        frame = warehouse.read_window(conn, "portfolios.beta_sorts")
        market = signals.market_excess(conn)
    if frame.empty:
        context.log.warning(
            "beta_portfolio_summary: portfolios.beta_sorts is empty (materialize "
            "beta_portfolio_sorts first); the summary is empty"
        )
    summary = pipeline.summary_with_source(frame, market, config.nw_lags)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_keys(conn, "portfolios.summary", summary, {})
    context.log.info(f"beta_portfolio_summary: {n} rows")
    meta: dict[str, object] = {"dagster/row_count": n, "nw_lags": config.nw_lags}
    hml = summary.loc[(summary["portfolio"] == sorts.HML) & (summary["weighting"] == "ew")]
    cols = ["estimator", "n_portfolios", "n_months", "mean_ret_excess", "t_mean", "alpha",
            "t_alpha"]
    meta["high_minus_low_ew"] = preview(hml.loc[:, cols], 40)
    png = sort_plots.sml_figure(summary, frame, market, config.plot_estimators or None)
    if png is not None:
        path = artifacts.path("portfolios", "beta_sorts_sml.png")
        meta.update(plot_entries("security_market_line", png, path, "security market line"))
    return dg.MaterializeResult(metadata=meta)


PORTFOLIO_ASSETS: list[dg.AssetsDefinition] = [beta_portfolio_sorts, beta_portfolio_summary]

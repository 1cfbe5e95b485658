"""``hedging_performance``: the hedging leaderboard (next-day hedging error per estimator,
NeuralBeta included when it has betas)."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.baselines.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import plot_entries
from beta_pipeline.lib import hedging_sql, plots, warehouse
from beta_pipeline.lib.neuralbeta import store as neuralbeta_store


class HedgingConfig(dg.Config):
    """Reference estimator of the leaderboard (the paper's metric: % over rolling OLS)."""

    reference: str = "ols_252"


@dg.asset(
    deps=["daily_betas", "daily_returns", "raw_market", "neuralbeta_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "sql"},
    group_name=GROUP,
    metadata=writes("betas.hedging_performance"),
    description="Leaderboard of next-day hedging RMSE per estimator, overall and by year.",
)
def hedging_performance(
    context: dg.AssetExecutionContext,
    config: HedgingConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    with warehouse_db.writer() as conn:
        table = hedging_sql.leaderboard(conn, reference=config.reference)
        if neuralbeta_store.has_rows(conn, "neuralbeta.betas"):
            guests = hedging_sql.guest_leaderboard(
                conn, hedging_sql.NEURALBETA_GUESTS, reference=config.reference
            )
            table = pd.concat([table, guests], ignore_index=True)
        warehouse.replace_keys(conn, "betas.hedging_performance", table, {})
    overall = table[table["period"] == "all"].sort_values(["model", "rmse"])
    test = table[table["period"] == "test"].sort_values(["model", "rmse"])
    context.log.info(f"hedging_performance: {len(overall)} estimator rows")
    meta: dict[str, object] = {"dagster/row_count": len(table)}
    for name, part in (("leaderboard_test", test), ("leaderboard_all", overall)):
        meta[name] = dg.MetadataValue.md(
            part.to_markdown(index=False, floatfmt=".6g") if len(part) else "_empty_"
        )
    overall = test if len(test) else overall
    plottable = overall.dropna(subset=["improvement_pct"])
    if len(overall) and plottable.empty:
        context.log.warning(
            f"hedging_performance: reference estimator {config.reference!r} has no hedging "
            "errors (not in betas.daily?); improvement_pct is NULL and no plot is made"
        )
    if len(plottable):
        png = plots.bars(
            plottable,
            "estimator",
            "improvement_pct",
            f"% RMSE improvement over {config.reference} (next-day hedge, test span)",
            hue="model",
        )
        path = artifacts.path("baselines", "hedging_performance.png")
        meta.update(plot_entries("improvement_plot", png, path, "improvement over OLS"))
    return dg.MaterializeResult(metadata=meta)

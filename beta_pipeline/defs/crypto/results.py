"""The crypto study's results from its betas: hedging comparison, beta statistics, annual
trajectories, the Fama-French add-on and the beta-quartile sorts."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.crypto.common import (
    GROUP,
    all_betas,
    best_configs,
    md,
    panel,
    read,
    replace,
    save_png,
)
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.lib import plots, warehouse
from beta_pipeline.lib.crypto import analysis, study


class CryptoHedgingConfig(dg.Config):
    reference: str = "ols_36"
    """Method the % improvement is measured against."""


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.hedging"),
    description="Next-month hedging RMSE of MLP, OLS, Kalman and no hedge per config and split.",
)
def crypto_hedging_comparison(
    context: dg.AssetExecutionContext,
    config: CryptoHedgingConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    wide, _ = panel(warehouse_db)
    table = analysis.hedging_table(all_betas(warehouse_db), wide, config.reference)
    n = replace(warehouse_db, "crypto.hedging", table)
    test = table.loc[table["split"] == "test"]
    pivot = test.pivot_table(index="config", columns="method", values="rmse").reset_index()
    context.log.info(f"crypto_hedging_comparison: test RMSE\n{pivot.to_string(index=False)}")
    meta: dict[str, object] = {"dagster/row_count": n, "test_rmse": md(pivot)}
    if len(test):
        png = plots.bars(test, "config", "rmse", "Next-month hedging RMSE, test months",
                         hue="method")
        meta.update(save_png(artifacts, "hedging_rmse", png, "hedging RMSE"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.beta_stats"),
    description="N, mean, std, skew, kurtosis, min, max of the betas per coin x market.",
)
def crypto_beta_stats(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    table = analysis.beta_stats(all_betas(warehouse_db))
    n = replace(warehouse_db, "crypto.beta_stats", table)
    context.log.info(f"crypto_beta_stats: wrote {n:,} rows")
    single = study.single_market(table)
    shown = single.loc[single["sample"] == "test"].drop(columns=["method", "sample", "config"])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": n, "mlp_single_market_test": md(shown)}
    )


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.beta_annual"),
    description="Annual mean betas per coin, market, configuration and method (with a plot).",
)
def crypto_beta_trajectories(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    betas = all_betas(warehouse_db)
    table = analysis.annual_betas(betas)
    n = replace(warehouse_db, "crypto.beta_annual", table)
    context.log.info(f"crypto_beta_trajectories: wrote {n:,} rows")
    meta: dict[str, object] = {"dagster/row_count": n}
    single = study.single_market(table)
    if len(single):
        png = plots.small_multiples(
            single, "year", "mean_beta", "market", "coin",
            "Annual mean neural beta (single-market configurations)",
        )
        meta.update(save_png(artifacts, "annual_betas", png, "annual mean betas"))
        meta["mlp_single_market"] = md(
            single.pivot_table(index=["market", "coin"], columns="year", values="mean_beta")
            .reset_index()
        )
    monthly = study.single_market(betas)
    if len(monthly):
        png = plots.small_multiples(
            monthly, "month", "beta", "market", "coin", "Monthly neural betas (hedged month)"
        )
        meta.update(save_png(artifacts, "monthly_betas", png, "monthly betas"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_neural_betas", "crypto_monthly_returns", "crypto_factors_monthly"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pytorch"},
    group_name=GROUP,
    metadata=writes("crypto.ff5_addon"),
    description="Change in out-of-sample RMSE when the Fama-French five factors are MLP inputs.",
)
def crypto_ff5_addon(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """Each configuration's best MLP retrained with and without the factors' last months as
    extra inputs, on the months the factors cover, with the grid's training settings."""
    wide, coins = panel(warehouse_db)
    best = best_configs(warehouse_db)
    factors = analysis.factor_frame(read(warehouse_db, "SELECT * FROM crypto.factors_monthly"))
    if factors.empty:
        context.log.warning("crypto_ff5_addon: the source has no monthly factors; nothing to do")
        table = pd.DataFrame(columns=warehouse.TABLES["crypto.ff5_addon"].column_names)
    else:
        missing = [f for f in analysis.FF5 if f not in factors.columns]
        if missing:
            context.log.warning(
                f"crypto_ff5_addon: the source lacks {missing}; using {list(factors.columns)}"
            )
        options, points = study.best_points(best)
        table = analysis.ff5_addon(wide, factors, coins, points, options)  # trains (torch)
    n = replace(warehouse_db, "crypto.ff5_addon", table)
    meta: dict[str, object] = {"dagster/row_count": n, "ff5_addon": md(table)}
    if n:
        meta["mean_change_pct"] = float(table["change_pct"].mean())
        context.log.info(
            f"crypto_ff5_addon: factors to {table['factors_end'].iloc[0]}; test RMSE change "
            f"(%) {dict(zip(table['config'], table['change_pct'].round(2), strict=True))}"
        )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas", "crypto_factors_monthly"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.quartile_sorts"),
    description="Monthly beta quartiles of the coins: mean beta and next-month excess return.",
)
def crypto_quartile_sorts(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    """Single-market configurations; excess return = simple return - rf of the holding month
    (rf after the factor file's last month: its last value carried forward)."""
    wide, coins = panel(warehouse_db)
    factors = read(warehouse_db, "SELECT * FROM crypto.factors_monthly")
    sorts = study.quartile_study(wide, coins, factors, all_betas(warehouse_db))
    if sorts.rf_filled:
        context.log.warning(
            f"crypto_quartile_sorts: rf carried forward over {sorts.rf_filled} month(s)"
        )
    n = replace(warehouse_db, "crypto.quartile_sorts", sorts.rows)
    context.log.info(
        f"crypto_quartile_sorts: wrote {n:,} rows ({len(sorts.skipped)} skipped months)"
    )
    mlp = sorts.summary.loc[sorts.summary["method"] == "mlp"]
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "rf_months_carried_forward": sorts.rf_filled,
        "mlp_summary": md(mlp),
        "skipped_cross_sections": len(sorts.skipped),
    }
    # test months only: in train/validation months the MLP betas are in-sample fits of the
    # very hedging errors that the next-month returns enter
    bars = mlp.loc[(mlp["sample"] == "test") & (mlp["quartile"] != "HML")]
    if len(bars):
        png = plots.bars(bars, "config", "excess_return",
                         "Mean next-month excess return by neural-beta quartile (test months)",
                         hue="quartile")
        meta.update(save_png(artifacts, "quartile_returns", png, "quartile returns"))
    return dg.MaterializeResult(metadata=meta)

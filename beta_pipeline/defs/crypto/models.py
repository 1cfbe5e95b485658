"""The crypto study's betas: the MLP grid per market configuration (torch, imported only in
the training step) and the rolling / expanding OLS and Kalman baselines on the same
markets."""

import dagster as dg

from beta_pipeline.defs.crypto.common import GROUP, best_configs, md, panel, replace, save_png
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.lib import plots, warehouse
from beta_pipeline.lib.crypto import grid, study


class CryptoNeuralConfig(dg.Config):
    """The MLP grid and its training (see beta_pipeline.lib.crypto.model)."""

    configs: list[str] = list(grid.MARKET_CONFIGS)
    lookback: int = 12
    hidden: list[int] = list(grid.HIDDEN)
    learning_rates: list[float] = list(grid.LEARNING_RATES)
    activations: list[str] = list(grid.ACTIVATIONS)
    epochs: int = 200
    batch_size: int = 32
    replicates: int = 3
    """Seeds per grid point; a grid point's betas are their mean."""
    seed: int = 0
    train_share: float = 0.6
    val_share: float = 0.2
    """Shares of the target months for training and validation; the rest is the test."""

    def options(self) -> grid.TrainOptions:
        return grid.TrainOptions(
            window=self.lookback, epochs=self.epochs, batch_size=self.batch_size,
            replicates=self.replicates, seed=self.seed, train=self.train_share,
            val=self.val_share,
        )


@dg.asset(
    deps=["crypto_monthly_returns"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pytorch"},
    group_name=GROUP,
    metadata=writes(
        "crypto.betas", "crypto.grid_search", "crypto.best_configs", "crypto.learning_curves"
    ),
    description="MLP grid search per market configuration, best configs, learning curves, betas.",
)
def crypto_neural_betas(
    context: dg.AssetExecutionContext,
    config: CryptoNeuralConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Writes crypto.grid_search (validation RMSE of every grid point), crypto.best_configs,
    crypto.learning_curves (best configs) and crypto.betas (method 'mlp', best configs)."""
    wide, coins = panel(warehouse_db)
    points = grid.make_grid(config.hidden, config.learning_rates, config.activations)
    fit = study.fit_configs(  # trains: imports torch here, never at definition load
        wide, coins, config.configs, points, config.options(),
        log=lambda line: context.log.info(f"crypto_neural_betas: {line}"),
    )
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "crypto.grid_search", fit.grid, {})
        warehouse.replace_keys(conn, "crypto.best_configs", fit.best, {})
        warehouse.replace_keys(conn, "crypto.learning_curves", fit.curves, {})
        n = warehouse.replace_keys(conn, "crypto.betas", fit.betas, {})
    shown = fit.best[["config", "lookback", "hidden", "lr", "activation", "val_rmse",
                      "test_rmse", "best_epoch"]]
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "best_configs": md(shown),
        "split": study.split_text(fit.best),
        "grid_sample": md(study.grid_sample(fit.grid)),
        "train_seconds": float(fit.best["seconds"].sum()),
    }
    png = plots.small_multiples(
        study.curves_long(fit.curves), "epoch", "rmse", "config", "curve",
        "Learning curves of the best configurations",
    )
    meta.update(save_png(artifacts, "learning_curves", png, "learning curves"))
    return dg.MaterializeResult(metadata=meta)


class CryptoBaselineConfig(dg.Config):
    """Classical betas on the same markets (see beta_pipeline.lib.crypto.compare)."""

    ols_windows: list[int] = [12, 36]
    expanding: bool = True
    kalman: bool = True


@dg.asset(
    deps=["crypto_monthly_returns", "crypto_neural_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "numpy"},
    group_name=GROUP,
    metadata=writes("crypto.baseline_betas"),
    description="Rolling/expanding OLS and Kalman betas of the coins on the same market configs.",
)
def crypto_baseline_betas(
    context: dg.AssetExecutionContext, config: CryptoBaselineConfig, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """crypto.baseline_betas; the Kalman variances are fitted on the MLP's training months."""
    wide, coins = panel(warehouse_db)
    table, snr = study.study_baselines(
        wide, coins, best_configs(warehouse_db), config.ols_windows, config.expanding,
        config.kalman,
    )
    n = replace(warehouse_db, "crypto.baseline_betas", table)
    context.log.info(f"crypto_baseline_betas: wrote {n:,} rows")
    counts = table.groupby("method").size().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "rows_by_method": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "kalman_snr": dg.MetadataValue.json(snr),
        }
    )

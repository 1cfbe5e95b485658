"""``monthly_betas``: Tidy Finance monthly betas (60-month windows) per model."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.baselines.common import GROUP
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
from beta_pipeline.lib import beta_tables, plots, warehouse


class MonthlyBetasConfig(dg.Config):
    """Settings of ``monthly_betas`` (Tidy Finance: 60 months, at least 48)."""

    models: list[str] = ["capm", "ff3", "ff5"]
    window: int = 60
    min_obs: int = 48


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # the 60-month window is read from the warehouse, not declared (exact backfills)
    deps=["monthly_returns", "raw_market_monthly"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "numpy"},
    group_name=GROUP,
    metadata=writes("betas.monthly"),
    description="Monthly rolling OLS betas (60 months, min 48) for CAPM, FF3 and FF5.",
)
def monthly_betas(
    context: dg.AssetExecutionContext,
    config: MonthlyBetasConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    lookback = start - pd.DateOffset(months=config.window + 1)
    with warehouse_db.reader() as conn:
        returns = warehouse.read_window(conn, "returns.monthly", lookback, end)
        market = warehouse.read_window(conn, "raw.market_monthly", lookback, end)
    name = f"ols_{config.window}m"
    spec = beta_tables.EstimatorSpec(
        name, "ols", {"window": config.window, "min_obs": config.min_obs}
    )
    counts: dict[str, int] = {}

    def pieces():
        for model in config.models:
            factors = beta_tables.factor_frame(model, returns, market, date_col="month")
            if factors is None:
                context.log.warning(f"monthly_betas: no {model} factors for {label}; skipped")
                continue
            panel = beta_tables.Panel.build(returns, factors, date_col="month")
            for frame in beta_tables.estimate(panel, model, [spec], start, end, "month"):
                counts[model] = len(frame)
                yield frame

    with warehouse_db.writer() as conn:
        n = warehouse.replace_window_chunks(conn, "betas.monthly", pieces(), start, end)
        sample = conn.execute(
            "SELECT * FROM betas.monthly WHERE month >= ? AND month < ? LIMIT 10",
            [start.date(), end.date()],
        ).df()
    context.log.info(f"monthly_betas: wrote {n:,} rows for {label}")
    small = {"dagster/row_count": n, "rows_by_model": dg.MetadataValue.json(counts)}
    rich: dict[str, object] = {"preview": preview(sample)}
    png = _monthly_plot(warehouse_db, name, start, end) if n else None
    if png is not None:
        monthly = (end - start).days > 40
        path = artifacts.path("baselines", f"monthly_betas_{label if monthly else 'latest'}.png")
        rich.update(plot_entries("beta_distribution", png, path, "monthly CAPM betas"))
    return materialize_result(context, small, rich)


def _monthly_plot(
    db: DuckDBWarehouse, estimator: str, start: pd.Timestamp, end: pd.Timestamp
) -> bytes | None:
    """Cross-sectional distribution of the monthly CAPM betas over the run's window (at
    least the ten years before its end); None without rows."""
    first = min(start, end - pd.DateOffset(years=10))
    with db.reader() as conn:
        frame = conn.execute(
            "SELECT month, beta FROM betas.monthly WHERE model = 'capm' AND estimator = ? "
            "AND month >= ? AND month < ? AND isfinite(beta)",
            [estimator, first.date(), end.date()],
        ).df()
    if frame.empty:
        return None
    frame["month"] = pd.to_datetime(frame["month"])
    return plots.quantile_bands(
        frame, "month", "beta", f"Monthly CAPM betas ({estimator}) across stocks", "beta"
    )

"""Audited daily and monthly returns computed from raw prices and market series."""


import dagster as dg
import pandas as pd

from beta_pipeline.defs.partitions import (
    DUCKDB_POOL,
    monthly_partitions,
    session_partitions,
)
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import (
    frame_metadata,
    materialize_result,
    partition_label,
    png_metadata,
    preview,
    window,
)
from beta_pipeline.lib import plots, warehouse
from beta_pipeline.lib.returns import MAX_LOOKBACK_WEEKDAYS, daily_returns, monthly_returns

GROUP = "returns"


class ReturnsConfig(dg.Config):
    """Run parameters of ``daily_returns``."""

    market_source: str = "auto"
    """Market return from the index level ('index'), the factor file's Mkt-RF ('factor'),
    or 'auto' (index when the source has one)."""


@dg.asset(
    name="daily_returns",
    partitions_def=session_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        "raw_prices",
        "raw_market",
    ],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("returns.daily"),
    description="Daily simple, log and excess returns per symbol with the market excess return.",
)
def daily_returns_asset(
    context: dg.AssetExecutionContext,
    config: ReturnsConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end)
    lookback_start = start - pd.offsets.BDay(MAX_LOOKBACK_WEEKDAYS)
    with warehouse_db.reader() as conn:
        prices = warehouse.read_window(conn, "raw.prices", lookback_start, end)
        market = warehouse.read_window(conn, "raw.market", lookback_start, end)
    if prices.loc[prices["date"] >= start].empty:
        context.log.warning(f"daily_returns: no prices for {label}; the partition is empty.")
        frame = pd.DataFrame(columns=warehouse.TABLES["returns.daily"].column_names)
    else:
        frame = daily_returns(prices, market, start, end, market_source=config.market_source)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "returns.daily", frame, start, end)
    context.log.info(f"daily_returns: wrote {n:,} rows for {label}")
    meta = frame_metadata(frame)
    rich: dict[str, object] = {"preview": preview(frame)}
    if len(frame):
        meta["mean_ret"] = float(frame["ret"].mean())
        meta["sd_ret"] = float(frame["ret"].std())
    if len(frame) and frame["date"].nunique() >= 20:
        png = plots.returns_overview(frame)
        path = artifacts.path("returns", f"daily_returns_{label}.png")
        path.write_bytes(png)
        rich["overview"] = png_metadata(png, "daily returns overview")
        rich["overview_file"] = dg.MetadataValue.path(str(path))
    return materialize_result(context, meta, rich)


@dg.asset(
    name="monthly_returns",
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["daily_returns"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("returns.monthly"),
    description="Monthly returns compounded from daily returns (with market and excess legs).",
)
def monthly_returns_asset(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    with warehouse_db.reader() as conn:
        daily = warehouse.read_window(conn, "returns.daily", start, end)
    if daily.empty:
        context.log.warning(f"monthly_returns: no daily returns for {label}; empty partition.")
    frame = monthly_returns(daily)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "returns.monthly", frame, start, end)
    context.log.info(f"monthly_returns: wrote {n:,} rows for {label}")
    return materialize_result(
        context, frame_metadata(frame, date_column="month"), {"preview": preview(frame)}
    )

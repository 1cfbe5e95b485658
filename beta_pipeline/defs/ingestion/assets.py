"""Raw ingestion: prices, market series and factors from the configured source into DuckDB."""


import dagster as dg

from beta_pipeline.defs.partitions import DUCKDB_POOL, monthly_partitions, weekday_partitions
from beta_pipeline.defs.resources import DuckDBWarehouse, PriceSourceResource
from beta_pipeline.defs.util import (
    frame_metadata,
    materialize_result,
    partition_label,
    preview,
    window,
)
from beta_pipeline.lib import warehouse

GROUP = "ingestion"


def _empty_warning(context: dg.AssetExecutionContext, what: str, label: str) -> None:
    context.log.warning(
        f"{what}: the source has no rows for {label} (exchange holiday, or outside the "
        "source's coverage); the partition is written empty."
    )


@dg.asset(
    partitions_def=weekday_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Daily OHLCV prices of the equity universe from the configured source.",
)
def raw_prices(
    context: dg.AssetExecutionContext,
    warehouse_db: DuckDBWarehouse,
    prices: PriceSourceResource,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end)
    frame = prices.get().load_prices(start, end, symbols=prices.symbols, universe="equity")
    if frame.empty:
        _empty_warning(context, "raw_prices", label)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "raw.prices", frame, start, end)
    context.log.info(f"raw_prices: wrote {n:,} rows for {label}")
    return materialize_result(context, frame_metadata(frame), {"preview": preview(frame)})


@dg.asset(
    partitions_def=weekday_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Daily market index levels, risk-free rate and factor returns (long format).",
)
def raw_market(
    context: dg.AssetExecutionContext,
    warehouse_db: DuckDBWarehouse,
    prices: PriceSourceResource,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end)
    frame = prices.get().load_market(start, end)
    if frame.empty:
        _empty_warning(context, "raw_market", label)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "raw.market", frame, start, end)
    context.log.info(f"raw_market: wrote {n:,} rows for {label}")
    meta = frame_metadata(frame)
    if len(frame):
        meta["series"] = ", ".join(sorted(frame["series"].unique()))
    return materialize_result(context, meta, {"preview": preview(frame)})


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Monthly factor returns and risk-free rate (e.g. Fama-French) in decimals.",
)
def raw_market_monthly(
    context: dg.AssetExecutionContext,
    warehouse_db: DuckDBWarehouse,
    prices: PriceSourceResource,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    frame = prices.get().load_market_monthly(start, end)
    if frame.empty:
        _empty_warning(context, "raw_market_monthly", label)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "raw.market_monthly", frame, start, end)
    context.log.info(f"raw_market_monthly: wrote {n:,} rows for {label}")
    meta = frame_metadata(frame, date_column="month")
    if len(frame):
        meta["series"] = ", ".join(sorted(frame["series"].unique()))
    return materialize_result(context, meta, {"preview": preview(frame)})


@dg.asset(
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Security master: name, sector and asset class of every symbol the source has.",
)
def security_master(
    context: dg.AssetExecutionContext,
    warehouse_db: DuckDBWarehouse,
    prices: PriceSourceResource,
) -> dg.MaterializeResult:
    frame = prices.get().securities()
    with warehouse_db.writer() as conn:
        n = warehouse.replace_keys(conn, "raw.securities", frame, {})
    context.log.info(f"security_master: wrote {n:,} securities")
    meta = frame_metadata(frame)
    meta["preview"] = preview(frame)
    if len(frame) and "sector" in frame.columns:
        meta["sectors"] = dg.MetadataValue.md(
            frame["sector"].fillna("Unknown").value_counts().rename_axis("sector")
            .reset_index().to_markdown(index=False)
        )
    return dg.MaterializeResult(metadata=meta)

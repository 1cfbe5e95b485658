"""Raw ingestion: prices, market series and factors from the configured source into DuckDB."""


from collections.abc import Callable

import dagster as dg
import pandas as pd

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


def _ingestion_asset(
    name: str,
    description: str,
    table: str,
    partitions_def: dg.PartitionsDefinition,
    load: Callable[[PriceSourceResource, pd.Timestamp, pd.Timestamp], pd.DataFrame],
) -> dg.AssetsDefinition:
    """A single-run partitioned asset copying the source's rows for its window to ``table``."""
    monthly = partitions_def == monthly_partitions
    date_column = warehouse.TABLES[table].partition_column or "date"

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        kinds={"duckdb", "pandas"},
        group_name=GROUP,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse_db: DuckDBWarehouse,
        prices: PriceSourceResource,
    ) -> dg.MaterializeResult:
        start, end = window(context)
        label = partition_label(start, end, monthly=monthly)
        frame = load(prices, start, end)
        if frame.empty:
            context.log.warning(
                f"{name}: the source has no rows for {label} (exchange holiday, or outside "
                "the source's coverage); the partition is written empty."
            )
        with warehouse_db.writer() as conn:
            n = warehouse.replace_window(conn, table, frame, start, end)
        context.log.info(f"{name}: wrote {n:,} rows for {label}")
        meta = frame_metadata(frame, date_column=date_column)
        if len(frame) and "series" in frame.columns:
            meta["series"] = ", ".join(sorted(frame["series"].unique()))
        return materialize_result(context, meta, {"preview": preview(frame)})

    return _asset


raw_prices = _ingestion_asset(
    "raw_prices",
    "Daily OHLCV prices of the equity universe from the configured source.",
    "raw.prices",
    weekday_partitions,
    lambda src, start, end: src.get().load_prices(
        start, end, symbols=src.symbols, universe="equity"
    ),
)
raw_market = _ingestion_asset(
    "raw_market",
    "Daily market index levels, risk-free rate and factor returns (long format).",
    "raw.market",
    weekday_partitions,
    lambda src, start, end: src.get().load_market(start, end),
)
raw_market_monthly = _ingestion_asset(
    "raw_market_monthly",
    "Monthly factor returns and risk-free rate (e.g. Fama-French) in decimals.",
    "raw.market_monthly",
    monthly_partitions,
    lambda src, start, end: src.get().load_market_monthly(start, end),
)


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

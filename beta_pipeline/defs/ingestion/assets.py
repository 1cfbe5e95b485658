"""Raw ingestion: prices, market series and factors from the configured source into DuckDB."""


from collections.abc import Callable

import dagster as dg
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL, monthly_partitions, session_partitions
from beta_pipeline.defs.resources import DuckDBWarehouse, PriceSourceResource
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import (
    frame_metadata,
    ingestion_window,
    materialize_result,
    partition_label,
    preview,
    window,
)
from beta_pipeline.lib import calendar, warehouse

GROUP = "ingestion"


def _ingestion_asset(
    name: str,
    description: str,
    table: str,
    partitions_def: dg.PartitionsDefinition,
    load: Callable[[PriceSourceResource, pd.Timestamp, pd.Timestamp], pd.DataFrame],
    every_session: bool = False,
    sessions_only: bool = False,
    also_writes: tuple[str, ...] = (),
) -> dg.AssetsDefinition:
    """A single-run partitioned asset copying the source's rows for its window to ``table``.

    Session assets read and replace the run's sessions plus the non-session days after the
    last one (:func:`ingestion_window`). ``every_session``: every session of the window must
    have rows, else the run fails before writing (a partition is never reported without
    rows). ``sessions_only``: rows dated on non-sessions are dropped (market series that
    trade on exchange holidays, e.g. WTI). ``also_writes``: further tables its metadata names."""
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
        metadata=writes(table, "meta.source_binding", *also_writes),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse_db: DuckDBWarehouse,
        prices: PriceSourceResource,
    ) -> dg.MaterializeResult:
        start, end = ingestion_window(context) if not monthly else window(context)
        label = partition_label(*window(context), monthly=monthly)
        binding = warehouse_db.check_source(prices)  # one source per warehouse
        frame = load(prices, start, end)
        if sessions_only and len(frame):
            keep = calendar.session_mask(frame[date_column])
            if not keep.all():
                dropped = frame.loc[~keep, date_column].dt.strftime("%Y-%m-%d").unique()
                context.log.info(
                    f"{name}: {int((~keep).sum())} rows on non-sessions not loaded "
                    f"({', '.join(dropped[:5])}{', ...' if len(dropped) > 5 else ''})"
                )
                frame = frame.loc[keep].reset_index(drop=True)
        if every_session:
            _require_every_session(name, frame, start, end, date_column)
        if frame.empty:
            context.log.warning(
                f"{name}: the source has no rows for {label} (outside the source's "
                "coverage); the partition is written empty."
            )
        with warehouse_db.writer() as conn:
            warehouse_db.bind_source(conn, binding)  # the first write binds the warehouse
            n = warehouse.replace_window(conn, table, frame, start, end)
        context.log.info(f"{name}: wrote {n:,} rows for {label}")
        meta = frame_metadata(frame, date_column=date_column)
        if len(frame) and "series" in frame.columns:
            meta["series"] = ", ".join(sorted(frame["series"].unique()))
        return materialize_result(context, meta, {"preview": preview(frame)})

    return _asset


def _require_every_session(
    name: str, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, column: str
) -> None:
    """Fail (nothing written) when a session of [start, end) has no row in ``frame``."""
    expected = calendar.sessions(start, end - pd.Timedelta(days=1))
    present = pd.DatetimeIndex(pd.to_datetime(frame[column]).unique()) if len(frame) else []
    missing = expected.difference(present)
    if len(missing):
        shown = ", ".join(d.strftime("%Y-%m-%d") for d in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise dg.Failure(
            f"{name}: the source has no rows for {len(missing)} of {len(expected)} trading "
            f"sessions: {shown}{more} (not yet published, or outside the source's coverage: "
            "see `beta-pipeline info`); nothing was written. Ask for sessions the source "
            "covers.",
            metadata={"missing_sessions": len(missing), "first_missing": shown},
        )


raw_prices = _ingestion_asset(
    "raw_prices",
    "Daily OHLCV prices of the equity universe from the configured source.",
    "raw.prices",
    session_partitions,
    lambda src, start, end: src.get().load_prices(
        start, end, symbols=src.symbols, universe="equity"
    ),
    every_session=True,
    also_writes=("quality.check_results",),  # by its checks (defs/quality/checks.py)
)
raw_market = _ingestion_asset(
    "raw_market",
    "Daily market index levels, risk-free rate and factor returns (long format).",
    "raw.market",
    session_partitions,
    lambda src, start, end: src.get().load_market(start, end),
    sessions_only=True,
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
    metadata=writes("raw.securities", "meta.source_binding"),
    description="Security master: name, sector and asset class of every symbol the source has.",
)
def security_master(
    context: dg.AssetExecutionContext,
    warehouse_db: DuckDBWarehouse,
    prices: PriceSourceResource,
) -> dg.MaterializeResult:
    binding = warehouse_db.check_source(prices)  # one source per warehouse
    frame = prices.get().securities()
    with warehouse_db.writer() as conn:
        warehouse_db.bind_source(conn, binding)  # the first write binds the warehouse
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

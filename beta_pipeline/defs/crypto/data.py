"""The crypto study's inputs: coin and cross-asset daily prices, the monthly Fama-French
factors over the coins' span, and the month-end log returns of the coins and markets."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.crypto.common import GROUP, crypto_span, md, read, replace, save_png
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse, PriceSourceResource
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import frame_metadata, preview
from beta_pipeline.lib import plots
from beta_pipeline.lib.crypto import data as crypto_data
from beta_pipeline.lib.crypto import study
from beta_pipeline.lib.crypto.data import DEFAULT_MARKET_SERIES, MarketChoice, study_source_error

#: Days of cross-asset history loaded before the first coin price (one month-end before).
LEAD_DAYS = 45


@dg.asset(
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.prices"),
    description="Daily prices of the coins (BTC, ETH, LTC, BCH; 7-day calendar) from the source.",
)
def crypto_prices(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, prices: PriceSourceResource
) -> dg.MaterializeResult:
    source = prices.get()
    problem = study_source_error(source)
    if problem:
        raise dg.Failure(description=problem, allow_retries=False)
    frame = source.load_prices(universe="crypto")
    n = replace(warehouse_db, "crypto.prices", frame)
    context.log.info(f"crypto_prices: wrote {n:,} rows")
    return _frame_result(frame)


def _frame_result(frame: pd.DataFrame) -> dg.MaterializeResult:
    """Materialization metadata of a price table written as is: summary and preview."""
    return dg.MaterializeResult(metadata={**frame_metadata(frame), "preview": preview(frame)})


@dg.asset(
    deps=["crypto_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.cross_asset_prices"),
    description="Daily cross-asset prices (dollar index, FX, gold, crude, ETFs) over the coins.",
)
def cross_asset_prices(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, prices: PriceSourceResource
) -> dg.MaterializeResult:
    """Exchange days only; loaded from one month-end before the first coin price to the last
    coin date (later months are not used)."""
    lo, hi = crypto_span(warehouse_db)
    start = lo - pd.Timedelta(days=LEAD_DAYS)
    frame = prices.get().load_prices(start, hi + pd.Timedelta(days=1), universe="cross_asset")
    n = replace(warehouse_db, "crypto.cross_asset_prices", frame)
    context.log.info(f"cross_asset_prices: wrote {n:,} rows for {start.date()}..{hi.date()}")
    return _frame_result(frame)


@dg.asset(
    deps=["crypto_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.factors_monthly"),
    description="Monthly Fama-French factors and risk-free rate (decimals) over the coins' span.",
)
def crypto_factors_monthly(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, prices: PriceSourceResource
) -> dg.MaterializeResult:
    """From the source's monthly market file(s) (csv: ff3/ff5 monthly; yfinance: mkt_rf and
    rf only). Starts a year before the first coin month (room for a 12-month window)."""
    lo, hi = crypto_span(warehouse_db)
    start = (lo - pd.DateOffset(months=13)).to_period("M").to_timestamp()
    frame = prices.get().load_market_monthly(start, hi + pd.Timedelta(days=1))
    n = replace(warehouse_db, "crypto.factors_monthly", frame)
    last = frame.groupby("series")["month"].max() if len(frame) else pd.Series(dtype=object)
    ends = {s: f"{m:%Y-%m}" for s, m in last.items()}
    context.log.info(f"crypto_factors_monthly: wrote {n:,} rows; last month per series {ends}")
    if len(frame) and max(last) < hi.to_period("M").to_timestamp() - pd.DateOffset(months=1):
        context.log.warning(
            f"crypto_factors_monthly: the factors end {max(last):%Y-%m}, before the coins "
            f"({hi:%Y-%m}); the FF5 add-on uses the overlap and excess returns carry the last rf"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "last_month": dg.MetadataValue.json(ends),
            "preview": preview(frame),
        }
    )


class CryptoReturnsConfig(dg.Config):
    """Which series stands for each market and how non-positive prices are treated."""

    fiat: str = DEFAULT_MARKET_SERIES["FIAT"]
    equity: str = DEFAULT_MARKET_SERIES["EQUITY"]
    gold: str = DEFAULT_MARKET_SERIES["GOLD"]
    energy: str = DEFAULT_MARKET_SERIES["ENERGY"]
    """CL=F (WTI front month, default) or XLE (energy-sector ETF)."""
    nonpositive: str = "drop"
    """'drop': non-positive daily prints (CL=F 2020-04-20, -37.63) are left out before
    month-end resampling; 'error': refuse them."""

    def choice(self) -> MarketChoice:
        """The series of FIAT, EQUITY, GOLD and ENERGY."""
        return MarketChoice(
            {"FIAT": self.fiat, "EQUITY": self.equity, "GOLD": self.gold, "ENERGY": self.energy}
        )


@dg.asset(
    deps=["crypto_prices", "cross_asset_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    metadata=writes("crypto.monthly_returns"),
    description="Month-end log returns of the coins and of FIAT, EQUITY, GOLD and ENERGY.",
)
def crypto_monthly_returns(
    context: dg.AssetExecutionContext,
    config: CryptoReturnsConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    coins = read(warehouse_db, "SELECT * FROM crypto.prices")
    cross = read(warehouse_db, "SELECT * FROM crypto.cross_asset_prices")
    frame, summary = crypto_data.crypto_monthly_returns(
        coins, cross, config.choice(), config.nonpositive
    )
    n = replace(warehouse_db, "crypto.monthly_returns", frame)
    for line in summary["nonpositive_dropped"]:
        context.log.warning(f"crypto_monthly_returns: non-positive price dropped: {line}")
    context.log.info(f"crypto_monthly_returns: wrote {n:,} rows; series {summary['series']}")
    wide, _ = study.study_panel(frame)
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "series": dg.MetadataValue.json(summary["series"]),
        "span": dg.MetadataValue.json(summary["span"]),
        "nonpositive_dropped": ", ".join(summary["nonpositive_dropped"]) or "none",
        "preview": md(wide.head(6).reset_index(), ".4f"),
        "std": md(wide.std().rename("std").rename_axis("asset").reset_index(), ".4f"),
    }
    if len(wide):
        png = plots.lines_over_time(
            study.cumulative_log_returns(wide), "month", "cum_log_ret", "asset",
            "Cumulative monthly log returns",
        )
        meta.update(save_png(artifacts, "cumulative_returns", png, "cumulative returns"))
    return dg.MaterializeResult(metadata=meta)

"""Crypto and cross-asset study (group ``crypto``): coin and market prices, monthly log
returns, the MLP grid and its betas, OLS / Kalman betas, hedging comparison, statistics,
annual trajectories, the Fama-French add-on and quartile sorts, all in ``crypto.*`` tables.

Unpartitioned: the study is a whole-history model (a time split into train / validation /
test), so every run recomputes it from the full files in seconds to minutes. The group is
left out of the default jobs (the default embedded source has no crypto prices) and runs
as ``crypto_job`` / ``beta-pipeline run --select group:crypto``. Without a source listing
crypto and cross-asset prices, ``crypto_prices`` fails at once with one message saying how
to configure one, and nothing downstream runs.
"""


import json
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse, PriceSourceResource
from beta_pipeline.defs.util import frame_metadata, png_metadata, preview
from beta_pipeline.lib import plots, warehouse
from beta_pipeline.lib.crypto import analysis, compare, grid, quality
from beta_pipeline.lib.crypto import data as crypto_data
from beta_pipeline.lib.crypto.data import (
    COINS,
    DEFAULT_MARKET_SERIES,
    MARKETS,
    MarketChoice,
    allowed_nonpositive,
    common_sample,
    monthly_rf,
    study_source_error,
    wide_returns,
)
from beta_pipeline.lib.quality import CheckOutcome, outcomes_to_records

GROUP = "crypto"
#: Partition label of the unpartitioned crypto checks in quality.check_results.
ALL = "all"
#: Days of cross-asset history loaded before the first coin price (one month-end before).
LEAD_DAYS = 45


def _md(frame: pd.DataFrame, floatfmt: str = ".4f") -> dg.MetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("_empty_")
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=floatfmt))


def _replace(db: DuckDBWarehouse, table: str, frame: pd.DataFrame, keys=None) -> int:
    with db.writer() as conn:
        return warehouse.replace_keys(conn, table, frame, keys or {})


def _read(db: DuckDBWarehouse, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    with db.reader() as conn:
        frame = conn.execute(sql, params or []).df()
    for col in ("month", "data_end", "date", "close_date"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    return frame


def _save_png(artifacts: ArtifactStore, name: str, png: bytes, alt: str) -> dict[str, object]:
    path = artifacts.path("crypto", f"{name}.png")
    path.write_bytes(png)
    return {name: png_metadata(png, alt), f"{name}_file": dg.MetadataValue.path(str(path))}


# --- prices --------------------------------------------------------------------------------------


@dg.asset(
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
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
    n = _replace(warehouse_db, "crypto.prices", frame)
    context.log.info(f"crypto_prices: wrote {n:,} rows")
    meta = frame_metadata(frame)
    meta["preview"] = preview(frame)
    return dg.MaterializeResult(metadata=meta)


def _crypto_span(db: DuckDBWarehouse) -> tuple[pd.Timestamp, pd.Timestamp]:
    span = _read(db, "SELECT min(date) AS lo, max(date) AS hi FROM crypto.prices")
    lo, hi = span["lo"].iloc[0], span["hi"].iloc[0]
    if pd.isna(lo):
        raise dg.Failure(description="crypto.prices is empty: materialize crypto_prices first")
    return pd.Timestamp(lo), pd.Timestamp(hi)


@dg.asset(
    deps=["crypto_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Daily cross-asset prices (dollar index, FX, gold, crude, ETFs) over the coins.",
)
def cross_asset_prices(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, prices: PriceSourceResource
) -> dg.MaterializeResult:
    """Exchange days only; loaded from one month-end before the first coin price to the last
    coin date (later months are not used)."""
    lo, hi = _crypto_span(warehouse_db)
    start = lo - pd.Timedelta(days=LEAD_DAYS)
    frame = prices.get().load_prices(start, hi + pd.Timedelta(days=1), universe="cross_asset")
    n = _replace(warehouse_db, "crypto.cross_asset_prices", frame)
    context.log.info(f"cross_asset_prices: wrote {n:,} rows for {start.date()}..{hi.date()}")
    meta = frame_metadata(frame)
    meta["preview"] = preview(frame)
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Monthly Fama-French factors and risk-free rate (decimals) over the coins' span.",
)
def crypto_factors_monthly(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, prices: PriceSourceResource
) -> dg.MaterializeResult:
    """From the source's monthly market file(s) (csv: ff3/ff5 monthly; yfinance: mkt_rf and
    rf only). Starts a year before the first coin month (room for a 12-month window)."""
    lo, hi = _crypto_span(warehouse_db)
    start = (lo - pd.DateOffset(months=13)).to_period("M").to_timestamp()
    frame = prices.get().load_market_monthly(start, hi + pd.Timedelta(days=1))
    n = _replace(warehouse_db, "crypto.factors_monthly", frame)
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


# --- monthly returns ------------------------------------------------------------------------------


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


@dg.asset(
    deps=["crypto_prices", "cross_asset_prices"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Month-end log returns of the coins and of FIAT, EQUITY, GOLD and ENERGY.",
)
def crypto_monthly_returns(
    context: dg.AssetExecutionContext,
    config: CryptoReturnsConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    coins = _read(warehouse_db, "SELECT * FROM crypto.prices")
    cross = _read(warehouse_db, "SELECT * FROM crypto.cross_asset_prices")
    choice = MarketChoice(
        {"FIAT": config.fiat, "EQUITY": config.equity, "GOLD": config.gold,
         "ENERGY": config.energy}
    )
    frame, summary = crypto_data.crypto_monthly_returns(coins, cross, choice, config.nonpositive)
    n = _replace(warehouse_db, "crypto.monthly_returns", frame)
    for line in summary["nonpositive_dropped"]:
        context.log.warning(f"crypto_monthly_returns: non-positive price dropped: {line}")
    context.log.info(f"crypto_monthly_returns: wrote {n:,} rows; series {summary['series']}")
    wide = common_sample(wide_returns(frame), _coins(frame))
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "series": dg.MetadataValue.json(summary["series"]),
        "span": dg.MetadataValue.json(summary["span"]),
        "nonpositive_dropped": ", ".join(summary["nonpositive_dropped"]) or "none",
        "preview": _md(wide.head(6).reset_index(), ".4f"),
        "std": _md(wide.std().rename("std").rename_axis("asset").reset_index(), ".4f"),
    }
    if len(wide):
        cum = wide.cumsum().stack().rename("cum_log_ret").reset_index()
        cum.columns = ["month", "asset", "cum_log_ret"]
        png = plots.lines_over_time(
            cum, "month", "cum_log_ret", "asset", "Cumulative monthly log returns"
        )
        meta.update(_save_png(artifacts, "cumulative_returns", png, "cumulative returns"))
    return dg.MaterializeResult(metadata=meta)


def _coins(frame: pd.DataFrame) -> list[str]:
    """Coin names in the study's order (BTC, ETH, LTC, BCH first, others after)."""
    have = sorted(frame.loc[frame["role"] == "coin", "asset"].unique())
    return [c for c in COINS if c in have] + [c for c in have if c not in COINS]


def _panel(db: DuckDBWarehouse) -> tuple[pd.DataFrame, list[str]]:
    frame = _read(db, "SELECT * FROM crypto.monthly_returns")
    if frame.empty:
        raise dg.Failure(description="crypto.monthly_returns is empty: run the crypto group")
    coins = _coins(frame)
    return common_sample(wide_returns(frame), coins), coins


# --- neural betas ---------------------------------------------------------------------------------


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
    from beta_pipeline.lib.crypto import model  # torch, only in this step

    wide, coins = _panel(warehouse_db)
    opt = config.options()
    points = grid.make_grid(config.hidden, config.learning_rates, config.activations)
    tables, best, curves, betas = [], [], [], []
    for name in config.configs:
        samples = grid.build_samples(wide, coins, grid.config_markets(name), opt)
        fit = model.fit_grid(samples, points, opt, name)
        p = fit.best
        tables.append(fit.table())
        row = model.best_row(fit)
        row["options"] = json.dumps(opt.__dict__)
        best.append(row)
        curves.append(model.learning_curve(fit, p))
        betas.append(model.betas_frame(fit, p))
        context.log.info(
            f"crypto_neural_betas: {name}: {len(points)} grid points x {opt.replicates} seeds in "
            f"{fit.seconds:.1f}s; best hidden={row['hidden']} lr={row['lr']} "
            f"{row['activation']} val RMSE {row['val_rmse']:.4f} test {row['test_rmse']:.4f}"
        )
    grid_table = pd.concat(tables, ignore_index=True)
    best_table = pd.DataFrame(best)
    for col in [c for c in best_table.columns if c.endswith(("_start", "_end"))]:
        best_table[col] = pd.to_datetime(best_table[col])
    curve_table = pd.concat(curves, ignore_index=True)
    beta_table = pd.concat(betas, ignore_index=True)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "crypto.grid_search", grid_table, {})
        warehouse.replace_keys(conn, "crypto.best_configs", best_table, {})
        warehouse.replace_keys(conn, "crypto.learning_curves", curve_table, {})
        n = warehouse.replace_keys(conn, "crypto.betas", beta_table, {})
    shown = best_table[["config", "lookback", "hidden", "lr", "activation", "val_rmse",
                        "test_rmse", "best_epoch"]]
    first = best_table.iloc[0]
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "best_configs": _md(shown),
        "split": (
            f"train {first['train_start']:%Y-%m}..{first['train_end']:%Y-%m}, val "
            f"{first['val_start']:%Y-%m}..{first['val_end']:%Y-%m}, test "
            f"{first['test_start']:%Y-%m}..{first['test_end']:%Y-%m} (target months)"
        ),
        "grid_sample": _md(grid_table.sort_values(["config", "val_rmse"]).groupby("config")
                           .head(3)),
        "train_seconds": float(best_table["seconds"].sum()),
    }
    long = curve_table.melt(
        id_vars=["config", "epoch"], value_vars=["train_rmse", "val_rmse"], var_name="curve",
        value_name="rmse",
    )
    png = plots.small_multiples(
        long, "epoch", "rmse", "config", "curve", "Learning curves of the best configurations"
    )
    meta.update(_save_png(artifacts, "learning_curves", png, "learning curves"))
    return dg.MaterializeResult(metadata=meta)


def _best(db: DuckDBWarehouse) -> pd.DataFrame:
    best = _read(db, "SELECT * FROM crypto.best_configs ORDER BY config")
    if best.empty:
        raise dg.Failure(description="crypto.best_configs is empty: run crypto_neural_betas")
    return best


def _bounds(row: pd.Series) -> dict[str, str]:
    return {f"{s}_end": f"{pd.Timestamp(row[f'{s}_end']):%Y-%m}" for s in ("train", "val", "test")}


# --- baselines ------------------------------------------------------------------------------------


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
    description="Rolling/expanding OLS and Kalman betas of the coins on the same market configs.",
)
def crypto_baseline_betas(
    context: dg.AssetExecutionContext, config: CryptoBaselineConfig, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """crypto.baseline_betas; the Kalman variances are fitted on the MLP's training months."""
    wide, coins = _panel(warehouse_db)
    best = _best(warehouse_db)
    parts, snr = [], {}
    for _, row in best.iterrows():
        frame, info = compare.baseline_betas(
            wide, coins, grid.config_markets(row["config"]), row["config"],
            pd.Timestamp(row["train_end"]), config.ols_windows, config.expanding, config.kalman,
        )
        frame["split"] = analysis.label_months(frame["month"], _bounds(row))
        parts.append(frame)
        if "kalman_snr" in info:
            snr[row["config"]] = float(info["kalman_snr"])
    table = pd.concat(parts, ignore_index=True)
    n = _replace(warehouse_db, "crypto.baseline_betas", table)
    context.log.info(f"crypto_baseline_betas: wrote {n:,} rows")
    counts = table.groupby("method").size().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "rows_by_method": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "kalman_snr": dg.MetadataValue.json(snr),
        }
    )


def _all_betas(db: DuckDBWarehouse) -> pd.DataFrame:
    return _read(
        db, "SELECT * FROM crypto.betas UNION ALL BY NAME SELECT * FROM crypto.baseline_betas"
    )


# --- results --------------------------------------------------------------------------------------


class CryptoHedgingConfig(dg.Config):
    reference: str = "ols_36"
    """Method the % improvement is measured against."""


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Next-month hedging RMSE of MLP, OLS, Kalman and no hedge per config and split.",
)
def crypto_hedging_comparison(
    context: dg.AssetExecutionContext,
    config: CryptoHedgingConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    wide, _ = _panel(warehouse_db)
    table = analysis.hedging_table(_all_betas(warehouse_db), wide, config.reference)
    n = _replace(warehouse_db, "crypto.hedging", table)
    test = table.loc[table["split"] == "test"]
    pivot = test.pivot_table(index="config", columns="method", values="rmse").reset_index()
    context.log.info(f"crypto_hedging_comparison: test RMSE\n{pivot.to_string(index=False)}")
    meta: dict[str, object] = {"dagster/row_count": n, "test_rmse": _md(pivot)}
    if len(test):
        png = plots.bars(test, "config", "rmse", "Next-month hedging RMSE, test months",
                         hue="method")
        meta.update(_save_png(artifacts, "hedging_rmse", png, "hedging RMSE"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="N, mean, std, skew, kurtosis, min, max of the betas per coin x market.",
)
def crypto_beta_stats(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    table = analysis.beta_stats(_all_betas(warehouse_db))
    n = _replace(warehouse_db, "crypto.beta_stats", table)
    context.log.info(f"crypto_beta_stats: wrote {n:,} rows")
    shown = table.loc[
        (table["method"] == "mlp") & (table["config"] == table["market"])
        & (table["sample"] == "test")
    ].drop(columns=["method", "sample", "config"])
    return dg.MaterializeResult(
        metadata={"dagster/row_count": n, "mlp_single_market_test": _md(shown)}
    )


@dg.asset(
    deps=["crypto_neural_betas", "crypto_baseline_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    group_name=GROUP,
    description="Annual mean betas per coin, market, configuration and method (with a plot).",
)
def crypto_beta_trajectories(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    betas = _all_betas(warehouse_db)
    table = analysis.annual_betas(betas)
    n = _replace(warehouse_db, "crypto.beta_annual", table)
    context.log.info(f"crypto_beta_trajectories: wrote {n:,} rows")
    meta: dict[str, object] = {"dagster/row_count": n}
    single = table.loc[(table["method"] == "mlp") & (table["config"] == table["market"])]
    if len(single):
        png = plots.small_multiples(
            single, "year", "mean_beta", "market", "coin",
            "Annual mean neural beta (single-market configurations)",
        )
        meta.update(_save_png(artifacts, "annual_betas", png, "annual mean betas"))
        meta["mlp_single_market"] = _md(
            single.pivot_table(index=["market", "coin"], columns="year", values="mean_beta")
            .reset_index()
        )
    monthly = betas.loc[(betas["method"] == "mlp") & (betas["config"] == betas["market"])]
    if len(monthly):
        png = plots.small_multiples(
            monthly, "month", "beta", "market", "coin", "Monthly neural betas (hedged month)"
        )
        meta.update(_save_png(artifacts, "monthly_betas", png, "monthly betas"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    deps=["crypto_neural_betas", "crypto_monthly_returns", "crypto_factors_monthly"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "pytorch"},
    group_name=GROUP,
    description="Change in out-of-sample RMSE when the Fama-French five factors are MLP inputs.",
)
def crypto_ff5_addon(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """Each configuration's best MLP retrained with and without the factors' last months as
    extra inputs, on the months the factors cover, with the grid's training settings."""
    wide, coins = _panel(warehouse_db)
    best = _best(warehouse_db)
    factors = analysis.factor_frame(
        _read(warehouse_db, "SELECT * FROM crypto.factors_monthly")
    )
    if factors.empty:
        context.log.warning("crypto_ff5_addon: the source has no monthly factors; nothing to do")
        table = pd.DataFrame(columns=warehouse.TABLES["crypto.ff5_addon"].column_names)
    else:
        missing = [f for f in analysis.FF5 if f not in factors.columns]
        if missing:
            context.log.warning(
                f"crypto_ff5_addon: the source lacks {missing}; using {list(factors.columns)}"
            )
        opt = grid.TrainOptions(**json.loads(best["options"].iloc[0]))
        points = {
            r["config"]: grid.GridPoint(int(r["hidden"]), float(r["lr"]), str(r["activation"]))
            for _, r in best.iterrows()
        }
        table = analysis.ff5_addon(wide, factors, coins, points, opt)
    n = _replace(warehouse_db, "crypto.ff5_addon", table)
    meta: dict[str, object] = {"dagster/row_count": n, "ff5_addon": _md(table)}
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
    description="Monthly beta quartiles of the coins: mean beta and next-month excess return.",
)
def crypto_quartile_sorts(
    context: dg.AssetExecutionContext, warehouse_db: DuckDBWarehouse, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    """Single-market configurations; excess return = simple return - rf of the holding month
    (rf after the factor file's last month: its last value carried forward)."""
    wide, coins = _panel(warehouse_db)
    factors = _read(warehouse_db, "SELECT * FROM crypto.factors_monthly")
    rf, filled = monthly_rf(factors, pd.DatetimeIndex(wide.index))
    if filled:
        context.log.warning(f"crypto_quartile_sorts: rf carried forward over {filled} month(s)")
    excess = analysis.excess_returns(wide, coins, rf)
    rows, skipped = analysis.quartile_sorts(_all_betas(warehouse_db), excess)
    n = _replace(warehouse_db, "crypto.quartile_sorts", rows)
    summary = analysis.quartile_summary(rows)
    context.log.info(f"crypto_quartile_sorts: wrote {n:,} rows ({len(skipped)} skipped months)")
    mlp = summary.loc[summary["method"] == "mlp"]
    meta: dict[str, object] = {
        "dagster/row_count": n,
        "rf_months_carried_forward": filled,
        "mlp_summary": _md(mlp),
        "skipped_cross_sections": len(skipped),
    }
    # test months only: in train/validation months the MLP betas are in-sample fits of the
    # very hedging errors that the next-month returns enter
    bars = mlp.loc[(mlp["sample"] == "test") & (mlp["quartile"] != "HML")]
    if len(bars):
        png = plots.bars(bars, "config", "excess_return",
                         "Mean next-month excess return by neural-beta quartile (test months)",
                         hue="quartile")
        meta.update(_save_png(artifacts, "quartile_returns", png, "quartile returns"))
    return dg.MaterializeResult(metadata=meta)


CRYPTO_ASSETS: list[dg.AssetsDefinition] = [
    crypto_prices,
    cross_asset_prices,
    crypto_factors_monthly,
    crypto_monthly_returns,
    crypto_neural_betas,
    crypto_baseline_betas,
    crypto_hedging_comparison,
    crypto_beta_stats,
    crypto_beta_trajectories,
    crypto_ff5_addon,
    crypto_quartile_sorts,
]


# --- quality checks -------------------------------------------------------------------------------


def _check_suite(
    asset: str,
    rules: Sequence[tuple[str, bool, str]],
    run: Callable[[DuckDBWarehouse, PriceSourceResource], list[CheckOutcome]],
) -> dg.AssetChecksDefinition:
    """A multi-check over ``asset`` (one spec per rule: name, blocking, description) that
    records its outcomes in quality.check_results (partition 'all')."""
    specs = [
        dg.AssetCheckSpec(name=name, asset=asset, description=desc, blocking=blocking)
        for name, blocking, desc in rules
    ]

    @dg.multi_asset_check(
        name=f"{asset}_quality", specs=specs, pool=DUCKDB_POOL,
        description=f"Data-quality rules of {asset}.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse_db: DuckDBWarehouse,
        prices: PriceSourceResource,
    ) -> Iterator[dg.AssetCheckResult]:
        outcomes = run(warehouse_db, prices)
        records = outcomes_to_records(outcomes, asset=asset, partition=ALL)
        with warehouse_db.writer() as conn:
            warehouse.replace_keys(
                conn, "quality.check_results", records, {"asset": asset, "partition": ALL}
            )
        by_name = {o.check_name: o for o in outcomes}
        for name, _, _ in rules:
            o = by_name[name]
            if not o.passed:
                log = context.log.error if o.severity == "error" else context.log.warning
                log(f"{asset} {name}: {o.details}")
            meta: dict[str, object] = {
                "details": o.details, "offending_rows": o.n_rows,
                "preview": dg.MetadataValue.md(o.preview_markdown()),
            }
            if o.observed is not None:
                meta["observed"] = float(o.observed)
            yield dg.AssetCheckResult(
                asset_key=asset, check_name=name, passed=o.passed, metadata=meta,
                severity=(dg.AssetCheckSeverity.ERROR if o.severity == "error"
                          else dg.AssetCheckSeverity.WARN),
            )

    return _check


def _run_crypto(db: DuckDBWarehouse, _: PriceSourceResource) -> list[CheckOutcome]:
    return quality.check_crypto_prices(_read(db, "SELECT * FROM crypto.prices"))


def _run_cross(db: DuckDBWarehouse, prices: PriceSourceResource) -> list[CheckOutcome]:
    frame = _read(db, "SELECT * FROM crypto.cross_asset_prices")
    return quality.check_cross_asset_prices(frame, allowed_nonpositive(prices.get()))


def _run_monthly(db: DuckDBWarehouse, _: PriceSourceResource) -> list[CheckOutcome]:
    wide, coins = _panel(db)
    coin_rows = wide.loc[wide[coins].notna().any(axis=1)]
    return [quality.check_monthly_panel(coin_rows, [*coins, *MARKETS])]


CRYPTO_CHECKS: list[dg.AssetChecksDefinition] = [
    _check_suite(
        "crypto_prices",
        [
            ("crypto_prices_keys_unique", True, "one row per (symbol, date)"),
            ("crypto_prices_positive", True, "every price > 0"),
            ("crypto_prices_gaps", False, "no missing calendar day between observations"),
        ],
        _run_crypto,
    ),
    _check_suite(
        "cross_asset_prices",
        [
            ("cross_asset_prices_keys_unique", True, "one row per (symbol, date)"),
            ("cross_asset_prices_positive", True, "every price > 0 (allowed symbols aside)"),
            ("cross_asset_prices_nonpositive_allowed", False,
             "non-positive prints of allowed symbols (e.g. CL=F 2020-04-20), dropped"),
            ("cross_asset_prices_gaps", False, "observations at most 5 weekdays apart"),
        ],
        _run_cross,
    ),
    _check_suite(
        "crypto_monthly_returns",
        [("crypto_monthly_returns_complete", False,
          "every coin and market has a return in every month of the study sample")],
        _run_monthly,
    ),
]


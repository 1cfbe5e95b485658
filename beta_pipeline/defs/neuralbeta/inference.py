"""Daily NeuralBeta betas and NBI weights from the newest model trained before each date."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL, session_partitions
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import materialize_result, partition_label, preview, window
from beta_pipeline.lib.neuralbeta import inference, store
from beta_pipeline.lib.neuralbeta.experiments import MARKET_EXPERIMENTS, MODELS

#: Weekday rows read before a partition so that its first day has a full window (the
#: paper's longest lookback, 256 days, plus holidays).
LOOKBACK_WEEKDAYS = 300


class NeuralBetaBetasConfig(dg.Config):
    """Which market models write daily betas (and NBI weights)."""

    experiments: list[str] = list(MARKET_EXPERIMENTS)
    models: list[str] = list(MODELS)
    weights: bool = True
    studies: list[str] = list(inference.STUDIES)
    """Runs to serve from, by preference: walkforward (one model per cut-off year), then
    table1 (the single split of neuralbeta_model) for models without walk-forward runs."""


def _log_gaps(context: dg.AssetExecutionContext, out: inference.DailyBetas, label: str) -> None:
    """Warn about experiments, dates and stock-days left without a beta."""
    for experiment, why in out.skipped_experiments.items():
        context.log.warning(f"{experiment}: skipped for {label}: {why}")
    if out.short_history:
        context.log.warning(
            f"{out.short_history:,} dates in {label} have less history than a model's window "
            "in the data read (the first days of the data): no beta for them"
        )
    if out.before_any_model:
        context.log.warning(
            f"{out.before_any_model:,} stock-days in {label} precede every trained model's "
            "data end (no beta without look-ahead); they get no row"
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "neuralbeta_betas",
            deps=[
                "neuralbeta_runs",
                "daily_returns",
                "raw_market",
            ],
            kinds={"pytorch", "duckdb"},
            group_name=GROUP,
            description="Daily NeuralBeta betas from the newest model trained before the date.",
            metadata=writes("neuralbeta.betas"),
        ),
        dg.AssetSpec(
            "nbi_weights",
            deps=["neuralbeta_runs"],
            kinds={"pytorch", "duckdb"},
            group_name=GROUP,
            description="Per-lag NBI weights behind each daily NeuralBeta-Interpretable beta.",
            metadata=writes("neuralbeta.weights"),
        ),
    ],
    partitions_def=session_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
)
def neuralbeta_betas(
    context: dg.AssetExecutionContext,
    config: NeuralBetaBetasConfig,
    warehouse_db: DuckDBWarehouse,
) -> Iterator[dg.MaterializeResult]:
    """For every date of the run's window and every market model: the beta dated t (inputs
    t-63..t, hedging t+1) from the newest run whose training and validation data end on or
    before t -> ``neuralbeta.betas``; NBI weights -> ``neuralbeta.weights``."""
    start, end = window(context)
    label = partition_label(start, end)
    read_from = start - pd.offsets.BDay(LOOKBACK_WEEKDAYS)
    with warehouse_db.reader() as conn:
        if not store.table_exists(conn, "neuralbeta.runs"):
            raise dg.Failure(
                "no NeuralBeta model yet: materialize neuralbeta_walkforward_model or "
                "neuralbeta_model, then neuralbeta_runs"
            )
        runs = store.market_runs(conn, config.experiments)
        runs = runs[runs["model"].isin(config.models) & runs["trained_through"].notna()]
        runs = inference.choose_runs(runs, config.studies)
        returns, market = store.read_market(conn, end, read_from)
    if runs.empty:
        raise dg.Failure(
            "no trained market NeuralBeta model: materialize neuralbeta_walkforward_model "
            "or neuralbeta_model for experiment univariate or multivariate, then "
            "neuralbeta_runs"
        )
    out = inference.daily_betas(returns, market, runs, start, end, config.weights)
    with warehouse_db.writer() as conn:
        inference.write_daily_betas(conn, out, runs, start, end, config.weights)
    _log_gaps(context, out, label)
    summary = {
        "dagster/row_count": len(out.betas),
        "runs_used": ", ".join(sorted(set(out.runs_used))) or "none",
        "stock_days_before_any_model": out.before_any_model,
        "experiments_skipped": ", ".join(out.skipped_experiments) or "none",
    }
    rich = {"preview": preview(out.betas)}
    yield materialize_result(context, summary, rich, asset_key="neuralbeta_betas")
    yield materialize_result(
        context,
        {"dagster/row_count": len(out.weights)},
        {"preview": preview(out.weights)},
        asset_key="nbi_weights",
    )

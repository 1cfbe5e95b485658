"""Walk-forward retraining: one market NeuralBeta model per cut-off year x (experiment,
model), trained without writing the warehouse.

Cut-off year ``C``: train on target dates through 31 Dec of ``C - 1``, validate on year
``C``, serve year ``C + 1`` (``neuralbeta_betas`` picks, per date, the newest run trained on
data up to that date). A cut-off's partition exists once its year has ended and depends on
that year's sessions, so the automation retrains when a year completes. Training steps may
run anywhere (the Celery executor's workers: ``defs/executors.py``); each leaves a run
bundle under ``ArtifactStore.models_url`` that ``neuralbeta_runs`` loads (``runs.py``).
"""

import dagster as dg

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.neuralbeta.training import (
    MarketSplit,
    TrainingConfig,
    fit_model,
    publish,
    training_folder,
)
from beta_pipeline.defs.partitions import PARTITIONS_START
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.lib.neuralbeta import walkforward as wf
from beta_pipeline.lib.neuralbeta.experiments import MARKET_EXPERIMENTS, MODELS

#: Every market (experiment, model) pair, e.g. ``univariate.gru_nbi``.
WALKFORWARD_SPECS: tuple[str, ...] = tuple(
    wf.spec_key(e, m) for e in MARKET_EXPERIMENTS for m in MODELS
)

#: The first cut-off: one year after the sessions start (a year to train on).
FIRST_CUTOFF = str(int(PARTITIONS_START[:4]) + 1)

#: Cut-off years (a year's partition exists once the year has ended) x market models.
walkforward_partitions = dg.MultiPartitionsDefinition(
    {
        "cutoff": dg.TimeWindowPartitionsDefinition(
            cron_schedule="0 0 1 1 *", start=FIRST_CUTOFF, fmt="%Y"
        ),
        "model": dg.StaticPartitionsDefinition(list(WALKFORWARD_SPECS)),
    }
)


class WalkForwardConfig(TrainingConfig):
    """Training settings of a walk-forward run (its split comes from the cut-off)."""


@dg.asset(
    partitions_def=walkforward_partitions,
    deps=[
        # the cut-off year's sessions (earlier years are read too: an expanding window)
        dg.AssetDep("daily_returns"),
        dg.AssetDep("raw_market"),
    ],
    kinds={"pytorch", "lightning"},
    group_name=GROUP,
    description="Train one market NeuralBeta model on data through a cut-off year (walk-forward).",
)
def neuralbeta_walkforward_model(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Reads returns and factors through 31 Dec of the cut-off year (read-only), trains on
    the years before it and validates on it; leaves the run bundle (checkpoint, run row,
    history) under the model store for ``neuralbeta_runs``."""
    # a run tagged only with dagster/partition (e.g. `dagster job execute --tags`) has a str
    keys = walkforward_partitions.get_partition_key_from_str(
        str(context.partition_key)
    ).keys_by_dimension
    cutoff = int(keys["cutoff"])
    experiment, model = wf.parse_spec(keys["model"])
    split = wf.cutoff_split(cutoff)
    with training_folder(artifacts, str(cutoff), keys["model"]) as folder:
        fit = fit_model(
            context,
            experiment,
            model,
            config,
            MarketSplit(**split.as_strings()),
            artifacts,
            warehouse_db,
            folder,
            study="walkforward",
            cutoff=cutoff,
        )
        meta = publish(context, artifacts, str(cutoff), fit)
    return dg.MaterializeResult(metadata={**meta, "serves_from": str(split.serves_from.date())})

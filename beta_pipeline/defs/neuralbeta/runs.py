"""The single writer of NeuralBeta training runs: every training (Table 1 or walk-forward,
in-process or on a Celery worker) leaves a run bundle; this step loads them."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import preview
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.neuralbeta import bundles
from beta_pipeline.lib.neuralbeta import walkforward as wf

RUN_COLUMNS = ["run_id", "study", "experiment", "model", "cutoff", "best_val_loss", "seconds"]


@dg.asset(
    deps=[
        dg.AssetDep("neuralbeta_model", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("neuralbeta_walkforward_model", partition_mapping=dg.AllPartitionMapping()),
    ],
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    group_name=GROUP,
    metadata=writes("neuralbeta.runs", "neuralbeta.history"),
    description="Load every training's run bundle into neuralbeta.runs and neuralbeta.history.",
)
def neuralbeta_runs(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Every complete bundle under the model store replaces its run's rows, all in one
    short transaction (a re-run loads the same rows again: no duplicates); a bundle whose
    checkpoint holds a NaN or infinity is skipped with a warning."""
    from beta_pipeline.lib.quality.model_rules import checkpoint_non_finite

    root = artifacts.models_root()
    urls = bundles.list_bundles(root)
    runs, history = bundles.read_bundles(urls)
    # the trainings' blocking check, again: a model with NaN/inf weights never serves
    bad = {r.run_id: checkpoint_non_finite(r.checkpoint) for r in runs.itertuples()}
    bad = {run_id: names for run_id, names in bad.items() if names}
    for run_id, names in bad.items():
        context.log.warning(f"run {run_id}: non-finite weights in {names[:3]}; not loaded")
    runs = runs[~runs["run_id"].isin(list(bad))]
    history = history[history["run_id"].isin(runs["run_id"])]
    ids = list(runs["run_id"])
    with warehouse_db.writer() as conn:
        warehouse.replace_keys_together(
            conn,
            [
                ("neuralbeta.runs", runs, {"run_id": ids}),
                ("neuralbeta.history", history, {"run_id": ids}),
            ],
        )
    context.log.info(f"loaded {len(runs)} training runs from {root}")
    walk = runs[runs["study"] == "walkforward"]
    cov = wf.coverage(walk)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(runs),
            "bundles": len(urls),
            "bundles_rejected": len(bad),
            "models_url": root,
            "walkforward_coverage": dg.MetadataValue.md(
                cov.to_markdown(index=False) if len(cov) else "no walk-forward run"
            ),
            "runs": preview(runs[RUN_COLUMNS] if len(runs) else pd.DataFrame()),
        }
    )

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
    """Every complete bundle under the model store whose run is not in the warehouse yet
    is loaded, all in one short transaction (a re-run finds nothing new: no duplicates, and
    the bundles already loaded are not read again); a bundle whose checkpoint holds a NaN
    or infinity is skipped with a warning (and looked at again next time)."""
    from beta_pipeline.lib.quality.model_rules import checkpoint_non_finite

    root = artifacts.models_root()
    urls = bundles.list_bundles(root)
    with warehouse_db.reader() as conn:
        loaded = set(conn.execute("SELECT run_id FROM neuralbeta.runs").df()["run_id"])
    new = [u for u in urls if bundles.run_id_of(u) not in loaded]
    runs, history = bundles.read_bundles(new)
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
        every = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM neuralbeta.runs").df()
    context.log.info(f"loaded {len(runs)} new training runs of {len(urls)} bundles in {root}")
    cov = wf.coverage(every[every["study"] == "walkforward"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(every),
            "bundles": len(urls),
            "runs_loaded": len(runs),
            "bundles_rejected": len(bad),
            "models_url": root,
            "walkforward_coverage": dg.MetadataValue.md(
                cov.to_markdown(index=False) if len(cov) else "no walk-forward run"
            ),
            "runs": preview(every if len(every) else pd.DataFrame()),
        }
    )

"""Evaluation of the trained NeuralBeta models: Table 1 beside the paper's and Figs. 3-8."""

from collections.abc import Iterator

import dagster as dg

from beta_pipeline.defs.neuralbeta.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.synthetic import scenario_test_sets
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import plot_entries, preview
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.neuralbeta import evaluation, figure_data, store
from beta_pipeline.lib.neuralbeta.experiments import MARKET_EXPERIMENTS, SYNTHETIC_EXPERIMENTS


@dg.asset(
    deps=[
        "neuralbeta_runs",
        dg.AssetDep("synthetic_baselines", partition_mapping=dg.AllPartitionMapping()),
    ],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "duckdb"},
    group_name=GROUP,
    metadata=writes("neuralbeta.evaluation"),
    description="Table 1 (ours beside the paper's) and Figs. 3-8 from the latest trained models.",
    output_required=False,
)
def neuralbeta_evaluation(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, warehouse_db: DuckDBWarehouse
) -> Iterator[dg.MaterializeResult]:
    """Evaluates the newest run of every (experiment, model) on its test set(s) beside the
    baselines -> ``neuralbeta.evaluation``; Table 1 as Markdown; figures as PNG. With no
    trained model yet (e.g. an analytics run before any training) nothing is materialized
    and a warning says so: the previous evaluation stays as it was."""
    with warehouse_db.reader() as conn:
        runs, baselines, history = store.evaluation_inputs(conn)
    if runs.empty:
        context.log.warning(
            "neuralbeta_evaluation: no trained NeuralBeta model with a test split yet; "
            "materialize neuralbeta_model, then neuralbeta_runs (nothing evaluated)"
        )
        return
    syn_runs = runs[runs["experiment"].isin(SYNTHETIC_EXPERIMENTS)]
    mkt_runs = runs[runs["experiment"].isin(MARKET_EXPERIMENTS)]
    rows, systems = evaluation.synthetic_model_rows(
        syn_runs, lambda experiment: scenario_test_sets(artifacts, experiment)
    )
    with warehouse_db.reader() as conn:
        returns, market = store.read_market(conn)
    m_rows, m_base, m_weights = evaluation.market_model_rows(mkt_runs, returns, market)
    table = evaluation.evaluation_table(rows + m_rows, baselines, m_base, history)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.evaluation", table, {})
    md = evaluation.table1_markdown(table)
    artifacts.path("neuralbeta", "table1.md").write_text(md + "\n")
    shown = table.drop(columns=["run_id", "params"], errors="ignore")
    meta: dict[str, object] = {
        "dagster/row_count": len(table),
        "table1": dg.MetadataValue.md(
            "% RMSE(y) improvement over OLS, ours (paper); synthetic: the 10 % test split\n\n" + md
        ),
        "evaluation": preview(shown.sort_values(["experiment", "test_set", "rmse_y"]), rows=60),
    }
    pngs, extra = figure_data.evaluation_figures(systems, baselines, history, m_weights)
    if "fig4_curve" in extra:
        extra["fig4_curve"] = preview(extra["fig4_curve"].round(2), rows=60)
    meta.update(extra)
    for name, png in pngs.items():
        meta.update(plot_entries(name, png, artifacts.path("plots", f"neuralbeta_{name}.png")))
    yield dg.MaterializeResult(metadata=meta)

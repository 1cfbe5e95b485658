"""The synthetic study of NeuralBeta (METHODS §4): seeded scenarios as Parquet with DuckDB
views, the baselines on their test sets and the Kalman study."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import png_metadata, preview
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.neuralbeta import baselines, scenarios, store
from beta_pipeline.lib.neuralbeta import kalman_study as study
from beta_pipeline.lib.neuralbeta.experiments import SCENARIO_KEYS, SYNTHETIC_EXPERIMENTS
from beta_pipeline.lib.neuralbeta.synthetic import SyntheticData

SYNTHETIC_GROUP = "synthetic"

scenario_partitions = dg.StaticPartitionsDefinition(list(SCENARIO_KEYS))
baseline_partitions = dg.StaticPartitionsDefinition(list(SYNTHETIC_EXPERIMENTS))


def scenario_folder(artifacts: ArtifactStore) -> Path:
    """Folder of the scenarios' Parquet files (``artifacts/synthetic``)."""
    return artifacts.path("synthetic")


@contextlib.contextmanager
def _scenario_failure(scenario: str) -> Iterator[None]:
    """A missing scenario file as a failure saying which partition to materialize."""
    try:
        yield
    except FileNotFoundError as err:
        raise dg.Failure(
            f"{err.args[0]} is missing: materialize synthetic_scenarios[{scenario}] first"
        ) from err


def load_scenario(artifacts: ArtifactStore, scenario: str) -> SyntheticData:
    """A written scenario (a failure when it is missing)."""
    with _scenario_failure(scenario):
        return scenarios.load_scenario(scenario_folder(artifacts), scenario)


def scenario_test_sets(artifacts: ArtifactStore, scenario: str) -> dict[str, SyntheticData]:
    """The scenario's test sets (its 10 % split and the independent set, if written)."""
    with _scenario_failure(scenario):
        return scenarios.scenario_test_sets(scenario_folder(artifacts), scenario)


class SyntheticConfig(dg.Config):
    """Size and seed of the synthetic scenarios (METHODS §4)."""

    n_samples: int = 100_000
    independent_test_samples: int = 50_000
    seed: int = 0
    window: int = 64


@dg.asset(
    partitions_def=scenario_partitions,
    pool=DUCKDB_POOL,
    kinds={"numpy", "parquet", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    description="Seeded synthetic scenarios of the NeuralBeta paper as Parquet with DuckDB views.",
)
def synthetic_scenarios(
    context: dg.AssetExecutionContext,
    config: SyntheticConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """constant/stepwise/cyclical: ``n_samples`` windows (70/20/10 split) plus an independent
    test set (seed + 1); kalman_step: the 1,000-step series of the Kalman study."""
    scenario = context.partition_key
    files = scenarios.write_scenario(
        scenario_folder(artifacts),
        scenario,
        config.n_samples,
        config.window,
        config.seed,
        config.independent_test_samples,
    )
    with warehouse_db.writer() as conn:
        for name in files.stale:
            store.drop_scenario_view(conn, name)
        store.create_scenario_views(conn, files.views)
    artifacts.path("plots", f"synthetic_{scenario}.png").write_bytes(files.png)
    return dg.MaterializeResult(
        metadata={
            "seed": config.seed,
            "dagster/row_count": files.rows,
            **files.info,
            "preview": preview(files.preview),
            "files": dg.MetadataValue.json(files.views),
            "plot": png_metadata(files.png, scenario),
        }
    )


@dg.asset(
    partitions_def=baseline_partitions,
    deps=[
        dg.AssetDep(
            "synthetic_scenarios",
            partition_mapping=dg.StaticPartitionMapping({s: s for s in SYNTHETIC_EXPERIMENTS}),
        )
    ],
    pool=DUCKDB_POOL,
    kinds={"numpy", "statsmodels", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    metadata=writes("neuralbeta.baselines"),
    description="OLS, tuned EW-WLS, Kalman, Bayes and oracle betas on the synthetic test sets.",
)
def synthetic_baselines(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, warehouse_db: DuckDBWarehouse
) -> dg.MaterializeResult:
    """RMSE(y), RMSE(beta), % improvement over OLS and oracle-gap share of every baseline on
    the 10 % test split and the independent test set -> ``neuralbeta.baselines``."""
    scenario = context.partition_key
    data = load_scenario(artifacts, scenario)
    out, params = baselines.baseline_rows(scenario, data, scenario_test_sets(artifacts, scenario))
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.baselines", out, {"experiment": scenario})
    shown = out.drop(columns=["params", "experiment"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "wls_half_life": float(params["wls_half_life"]),
            "kalman": dg.MetadataValue.json(params.get("kalman", {})),
            "baselines": preview(shown, rows=20),
        }
    )


class KalmanStudyConfig(dg.Config):
    """Monte Carlo of the Kalman study (METHODS §4, kalman_step)."""

    seeds: int = 200
    burn_in: int = 50
    window: int = 30


@dg.asset(
    deps=[
        dg.AssetDep(
            "synthetic_scenarios",
            partition_mapping=dg.SpecificPartitionsPartitionMapping(["kalman_step"]),
        )
    ],
    pool=DUCKDB_POOL,
    kinds={"statsmodels", "duckdb"},
    group_name=SYNTHETIC_GROUP,
    metadata=writes("neuralbeta.kalman_study"),
    description="Kalman filter vs entire-period and rolling-30 OLS on kalman_step over many seeds.",
)
def kalman_study(
    context: dg.AssetExecutionContext,
    config: KalmanStudyConfig,
    artifacts: ArtifactStore,
    warehouse_db: DuckDBWarehouse,
) -> dg.MaterializeResult:
    """Per seed: MLE random-walk Kalman filter, entire-period OLS and rolling OLS; the MSE of
    beta after burn-in and over the 60 steps after the break -> ``neuralbeta.kalman_study``."""
    from beta_pipeline.lib.neuralbeta import figures

    if config.window != 30:
        raise dg.Failure("the kalman_study table stores the rolling-30 column; keep window=30")
    mc = study.kalman_monte_carlo(range(config.seeds), burn_in=config.burn_in, window=config.window)
    summary = study.kalman_summary(mc, config.window)
    example, _ = study.kalman_study(seed=0, window=config.window)
    png = figures.kalman_study_plot(example, config.window)
    artifacts.path("plots", "kalman_study.png").write_bytes(png)
    with warehouse_db.writer() as conn:
        warehouse.replace_keys(conn, "neuralbeta.kalman_study", mc, {})
    context.log.info(f"Kalman study: {summary}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(mc),
            **{k: float(v) for k, v in summary.items()},
            "plot": png_metadata(png, "kalman study"),
        }
    )


SYNTHETIC_ASSETS = [synthetic_scenarios, synthetic_baselines, kalman_study]

"""The asset jobs, declared once as asset selections (:data:`JOBS`), in the order
``beta-pipeline run`` executes them.

A run targets assets that share one partitions definition, so the pipeline has
``static_job`` (unpartitioned reference data, e.g. the security master), ``daily_job``
(weekday partitions), ``monthly_job`` (months), ``analytics_job`` (unpartitioned assets
downstream of partitioned ones: leaderboards, SQL marts, evaluations), one job per other
partitioning (``synthetic_scenarios_job``, ``synthetic_baselines_job``,
``neuralbeta_model_job``, ``neuralbeta_walkforward_job``), the single writer of training
runs (``neuralbeta_runs_job``), ``neuralbeta_daily_job`` (weekday assets that need a trained
model) and one job per opt-in group (``crypto_job``). :func:`build_jobs` checks that every
asset is in exactly one job and that a job's assets share its partitions definition.

The jobs serve one-shot runs and backfills (``beta-pipeline run``, the UI's launchpad);
unattended runs come from the automation conditions (``defs/automation.py``), not from
schedules chained by clock offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dagster as dg

from beta_pipeline.defs.executors import training_executor
from beta_pipeline.defs.neuralbeta.training import model_partitions
from beta_pipeline.defs.neuralbeta.walkforward import walkforward_partitions
from beta_pipeline.defs.partitions import monthly_partitions, session_partitions
from beta_pipeline.defs.sql_models.assets import GROUP as MARTS_GROUP
from beta_pipeline.defs.synthetic.assets import baseline_partitions, scenario_partitions

#: How ``beta-pipeline run`` picks a job's partitions: ``range``: the days / months of
#: ``--start..--end`` (one single-run backfill; none for an unpartitioned job);
#: ``experiments``: one run per chosen ``--nb-experiments`` key (plus ``kalman_step``);
#: ``experiment_models``: one run per ``--nb-experiments`` x ``--nb-models`` key;
#: ``walkforward``: one run per cut-off year the data supports x chosen market model.
CliKeys = Literal["range", "experiments", "experiment_models", "walkforward"]


@dataclass(frozen=True)
class JobDecl:
    """One asset job: its selection and how ``beta-pipeline run`` treats it."""

    name: str
    selection: dg.AssetSelection
    description: str
    partitions_def: dg.PartitionsDefinition | None = None
    #: a failed run stops every later job of ``beta-pipeline run`` (they read its tables)
    stops_later_jobs: bool = False
    cli_keys: CliKeys = "range"
    #: op that gets the CLI's NeuralBeta training config (``--nb-budget``, ``--nb-threads``)
    training_config_op: str | None = None
    #: skipped by the CLI unless a market NeuralBeta experiment is chosen
    needs_market_model: bool = False
    #: the job's executor (None: the code location's default); see ``defs/executors.py``
    executor_def: dg.ExecutorDefinition | None = None

    def define(self) -> dg.UnresolvedAssetJobDefinition:
        """The Dagster job."""
        return dg.define_asset_job(
            name=self.name,
            selection=self.selection,
            partitions_def=self.partitions_def,
            description=self.description,
            executor_def=self.executor_def,
        )


#: Groups left out of the default jobs (and of ``beta-pipeline run``'s default selection):
#: each runs as its own ``<group>_job`` when selected. The crypto study needs a csv or
#: yfinance source; the default embedded source has no crypto prices.
OPT_IN_GROUPS: tuple[str, ...] = ("crypto",)

_assets = dg.AssetSelection.assets

#: Every job, in the order ``beta-pipeline run`` executes them.
JOBS: tuple[JobDecl, ...] = (
    JobDecl(
        "static_job",
        _assets("security_master"),
        "Unpartitioned reference data (security master).",
        stops_later_jobs=True,  # everything after needs the security master
    ),
    JobDecl(
        "daily_job",
        _assets("raw_prices", "raw_market", "daily_returns", "daily_betas"),
        "Every weekday-partitioned asset for one weekday (or a range).",
        session_partitions,
        stops_later_jobs=True,  # everything after needs prices and returns
    ),
    JobDecl(
        "synthetic_scenarios_job",
        _assets("synthetic_scenarios"),
        "Every partition of synthetic_scenarios",
        scenario_partitions,
        cli_keys="experiments",
    ),
    JobDecl(
        "synthetic_baselines_job",
        _assets("synthetic_baselines"),
        "Every partition of synthetic_baselines",
        baseline_partitions,
        cli_keys="experiments",
    ),
    JobDecl(
        "neuralbeta_model_job",
        _assets("neuralbeta_model"),
        "Every partition of neuralbeta_model",
        model_partitions,
        cli_keys="experiment_models",
        training_config_op="neuralbeta_model",
    ),
    JobDecl(
        "neuralbeta_walkforward_job",
        _assets("neuralbeta_walkforward_model"),
        "Walk-forward trainings (cut-off year x market model); steps may run on Celery workers.",
        walkforward_partitions,
        cli_keys="walkforward",
        training_config_op="neuralbeta_walkforward_model",
        needs_market_model=True,
        executor_def=training_executor(),
    ),
    JobDecl(
        "neuralbeta_runs_job",
        _assets("neuralbeta_runs"),
        "Load the training runs' bundles into the warehouse (the single writer step).",
    ),
    JobDecl(
        "neuralbeta_daily_job",
        _assets("neuralbeta_betas", "nbi_weights"),
        "Daily assets that need a trained model (NeuralBeta betas, weights).",
        session_partitions,
        needs_market_model=True,
    ),
    JobDecl(
        "monthly_job",
        _assets("raw_market_monthly", "monthly_returns", "monthly_betas", "beta_portfolio_sorts"),
        "Every month-partitioned asset for one month (or a range).",
        monthly_partitions,
    ),
    JobDecl(
        "analytics_job",
        dg.AssetSelection.groups(MARTS_GROUP)
        | _assets(
            "hedging_performance",
            "kalman_study",
            "neuralbeta_evaluation",
            "beta_portfolio_summary",
        ),
        "Leaderboards and SQL marts over the partitioned tables.",
    ),
    *(
        JobDecl(
            f"{group}_job",
            dg.AssetSelection.groups(group),
            f"The {group} group (opt-in: not in the default jobs).",
        )
        for group in OPT_IN_GROUPS
    ),
)


def job_decl(name: str) -> JobDecl:
    """The declaration of job ``name``."""
    for job in JOBS:
        if job.name == name:
            return job
    raise KeyError(f"no job {name!r}; jobs: {', '.join(j.name for j in JOBS)}")


def opt_in_keys(assets: Sequence[dg.AssetsDefinition]) -> dict[str, list[dg.AssetKey]]:
    """Keys of each opt-in group that has assets among ``assets``."""
    found = {
        g: [k for a in assets for k in a.keys if a.group_names_by_key.get(k) == g]
        for g in OPT_IN_GROUPS
    }
    return {g: keys for g, keys in found.items() if keys}


def check_jobs(assets: Sequence[dg.AssetsDefinition], jobs: Sequence[JobDecl] = JOBS) -> None:
    """Raise ``ValueError`` unless every asset is in exactly one job whose partitions
    definition is the asset's (so a new asset cannot silently miss ``beta-pipeline run``)."""
    pdefs = {k: a.partitions_def for a in assets for k in a.keys}
    owner: dict[dg.AssetKey, str] = {}
    problems: list[str] = []
    for job in jobs:
        for key in sorted(job.selection.resolve(assets), key=lambda k: k.to_user_string()):
            if key in owner:
                problems.append(f"{key.to_user_string()} is in {owner[key]} and {job.name}")
            owner[key] = job.name
            if pdefs[key] != job.partitions_def:
                problems.append(f"{key.to_user_string()} is not partitioned like {job.name}")
    problems += [f"{k.to_user_string()} is in no job" for k in pdefs if k not in owner]
    if problems:
        raise ValueError("asset jobs (defs/jobs.py JOBS): " + "; ".join(problems))


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list[dg.UnresolvedAssetJobDefinition]:
    """The Dagster jobs of :data:`JOBS`, checked against ``assets`` (:func:`check_jobs`)."""
    check_jobs(assets)
    return [job.define() for job in JOBS]

"""Partitioned jobs and their schedules, one job per partitioning.

A run targets assets that share one partitions definition, so the pipeline has
``static_job`` (unpartitioned reference data, e.g. the security master), ``daily_job``
(weekday partitions), ``monthly_job`` (months), ``analytics_job`` (unpartitioned assets
downstream of partitioned ones: leaderboards, SQL marts, evaluations), one job per other
partitioning (``synthetic_scenarios_job``, ``synthetic_baselines_job``,
``neuralbeta_model_job``), ``neuralbeta_daily_job`` (weekday assets that need a trained
model) and one job per opt-in group (``crypto_job``).

The jobs serve one-shot runs and backfills (``beta-pipeline run``, the UI's launchpad);
unattended runs come from the automation conditions (``defs/automation.py``), not from
schedules chained by clock offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from beta_pipeline.defs.partitions import monthly_partitions, session_partitions


def keys_with_partitions(
    assets: Sequence[dg.AssetsDefinition], partitions_def: dg.PartitionsDefinition | None
) -> list[dg.AssetKey]:
    """Keys of the assets partitioned by ``partitions_def`` (``None``: unpartitioned)."""
    return [k for a in assets if a.partitions_def == partitions_def for k in a.keys]


def _downstream_of_models(assets: Sequence[dg.AssetsDefinition]) -> set[dg.AssetKey]:
    """Keys with an upstream asset partitioned by neither weekdays nor months nor nothing
    (the NeuralBeta model keyed by experiment x model): they run after training."""
    special = {
        k
        for a in assets
        if a.partitions_def not in (None, session_partitions, monthly_partitions)
        for k in a.keys
    }
    return {
        k
        for a in assets
        for k in a.keys
        if k not in special and any(d.asset_key in special for d in a.specs_by_key[k].deps)
    }


def _split_unpartitioned(
    assets: Sequence[dg.AssetsDefinition],
) -> tuple[list[dg.AssetKey], list[dg.AssetKey]]:
    """Unpartitioned keys without / with a (transitive) partitioned upstream asset."""
    by_key = {k: a for a in assets for k in a.keys}
    memo: dict[dg.AssetKey, bool] = {}

    def downstream_of_partitioned(key: dg.AssetKey) -> bool:
        if key not in memo:
            memo[key] = False
            asset = by_key.get(key)
            deps = [d.asset_key for d in asset.specs_by_key[key].deps] if asset else []
            memo[key] = any(by_key[d].partitions_def is not None for d in deps if d in by_key)
            memo[key] = memo[key] or any(downstream_of_partitioned(d) for d in deps if d in by_key)
        return memo[key]

    plain = keys_with_partitions(assets, None)
    return (
        [k for k in plain if not downstream_of_partitioned(k)],
        [k for k in plain if downstream_of_partitioned(k)],
    )


#: Groups left out of the default jobs (and of ``beta-pipeline run``'s default selection):
#: each runs as its own ``<group>_job`` when selected. The crypto study needs a csv or
#: yfinance source; the default embedded source has no crypto prices.
OPT_IN_GROUPS: tuple[str, ...] = ("crypto",)


def opt_in_keys(assets: Sequence[dg.AssetsDefinition]) -> dict[str, list[dg.AssetKey]]:
    """Keys of each opt-in group that has assets among ``assets``."""
    found = {
        g: [k for a in assets for k in a.keys if a.group_names_by_key.get(k) == g]
        for g in OPT_IN_GROUPS
    }
    return {g: keys for g, keys in found.items() if keys}


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list[dg.UnresolvedAssetJobDefinition]:
    """The static, daily, monthly and analytics asset jobs over the given assets (opt-in
    groups aside: one ``<group>_job`` each, e.g. ``crypto_job``)."""
    opt_in = opt_in_keys(assets)
    skip = {k for keys in opt_in.values() for k in keys}
    assets = [a for a in assets if not any(k in skip for k in a.keys)]
    static, analytics = _split_unpartitioned(assets)
    after_models = _downstream_of_models(assets)
    daily = keys_with_partitions(assets, session_partitions)
    other_defs: list[dg.PartitionsDefinition] = []
    for a in assets:
        pdef = a.partitions_def
        if pdef not in (None, session_partitions, monthly_partitions) and pdef not in other_defs:
            other_defs.append(pdef)
    # one job per other partitioning (synthetic scenarios, baselines, NeuralBeta models),
    # named after its first asset
    other_jobs = [
        dg.define_asset_job(
            name=f"{keys_with_partitions(assets, pdef)[0].to_user_string()}_job",
            selection=dg.AssetSelection.assets(*keys_with_partitions(assets, pdef)),
            partitions_def=pdef,
            description="Every partition of "
            + ", ".join(k.to_user_string() for k in keys_with_partitions(assets, pdef)),
        )
        for pdef in other_defs
    ]
    late_daily = [k for k in daily if k in after_models]
    if late_daily:
        other_jobs.append(
            dg.define_asset_job(
                name="neuralbeta_daily_job",
                selection=dg.AssetSelection.assets(*late_daily),
                partitions_def=session_partitions,
                description="Daily assets that need a trained model (NeuralBeta betas, weights).",
            )
        )
    return [
        *other_jobs,
        *(
            dg.define_asset_job(
                name=f"{group}_job",
                selection=dg.AssetSelection.assets(*keys),
                description=f"The {group} group (opt-in: not in the default jobs).",
            )
            for group, keys in opt_in.items()
        ),
        dg.define_asset_job(
            name="daily_job",
            selection=dg.AssetSelection.assets(*[k for k in daily if k not in after_models]),
            partitions_def=session_partitions,
            description="Every weekday-partitioned asset for one weekday (or a range).",
        ),
        dg.define_asset_job(
            name="monthly_job",
            selection=dg.AssetSelection.assets(*keys_with_partitions(assets, monthly_partitions)),
            partitions_def=monthly_partitions,
            description="Every month-partitioned asset for one month (or a range).",
        ),
        dg.define_asset_job(
            name="static_job",
            selection=dg.AssetSelection.assets(*static),
            description="Unpartitioned reference data (security master).",
        ),
        dg.define_asset_job(
            name="analytics_job",
            selection=dg.AssetSelection.assets(*analytics),
            description="Leaderboards and SQL marts over the partitioned tables.",
        ),
    ]

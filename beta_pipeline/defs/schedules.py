"""Partitioned jobs and their schedules, one job per partitioning.

A run targets assets that share one partitions definition, so the pipeline has four
jobs: ``static_job`` (unpartitioned reference data, e.g. the security master),
``daily_job`` (weekday partitions), ``monthly_job`` (months) and ``analytics_job``
(unpartitioned assets downstream of partitioned ones: leaderboards, SQL marts). The
schedules run the latest partition of the daily and monthly jobs, and the analytics job
after each.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from beta_pipeline.defs.partitions import monthly_partitions, weekday_partitions


def keys_with_partitions(
    assets: Sequence[dg.AssetsDefinition], partitions_def: dg.PartitionsDefinition | None
) -> list[dg.AssetKey]:
    """Keys of the assets partitioned by ``partitions_def`` (``None``: unpartitioned)."""
    return [a.key for a in assets if a.partitions_def == partitions_def]


def _split_unpartitioned(
    assets: Sequence[dg.AssetsDefinition],
) -> tuple[list[dg.AssetKey], list[dg.AssetKey]]:
    """Unpartitioned keys without / with a (transitive) partitioned upstream asset."""
    by_key = {a.key: a for a in assets}
    memo: dict[dg.AssetKey, bool] = {}

    def downstream_of_partitioned(key: dg.AssetKey) -> bool:
        if key not in memo:
            memo[key] = False
            asset = by_key.get(key)
            deps = [d.asset_key for d in asset.specs_by_key[key].deps] if asset else []
            memo[key] = any(
                by_key[d].partitions_def is not None or downstream_of_partitioned(d)
                for d in deps
                if d in by_key
            )
        return memo[key]

    plain = keys_with_partitions(assets, None)
    return (
        [k for k in plain if not downstream_of_partitioned(k)],
        [k for k in plain if downstream_of_partitioned(k)],
    )


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list[dg.UnresolvedAssetJobDefinition]:
    """The static, daily, monthly and analytics asset jobs over the given assets."""
    static, analytics = _split_unpartitioned(assets)
    return [
        dg.define_asset_job(
            name="daily_job",
            selection=dg.AssetSelection.assets(*keys_with_partitions(assets, weekday_partitions)),
            partitions_def=weekday_partitions,
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


def build_schedules(
    jobs: Sequence[dg.UnresolvedAssetJobDefinition],
) -> list[dg.ScheduleDefinition]:
    """Daily schedule (00:00 UTC Mon-Fri, when a weekday partition closes: it runs the
    weekday that just finished, Monday's tick the previous Friday), monthly schedule (the
    2nd, 03:00 UTC) and the analytics refresh."""
    by_name = {job.name: job for job in jobs}
    return [
        dg.build_schedule_from_partitioned_job(
            by_name["daily_job"], name="daily_schedule"
        ),
        dg.build_schedule_from_partitioned_job(
            by_name["monthly_job"], name="monthly_schedule", hour_of_day=3, day_of_month=2
        ),
        dg.ScheduleDefinition(
            name="analytics_schedule",
            job=by_name["analytics_job"],
            cron_schedule="0 5 * * 2-6",
            description="Leaderboards and marts after the daily run (05:00 UTC Tue-Sat).",
        ),
    ]

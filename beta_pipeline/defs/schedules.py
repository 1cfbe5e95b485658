"""Partitioned jobs and their schedules, one job per partitioning.

A run targets assets that share one partitions definition, so the pipeline has three
jobs: ``daily_job`` (weekday partitions), ``monthly_job`` (months) and ``static_job``
(unpartitioned reference data). The schedules run the latest partition of each.
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


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list[dg.UnresolvedAssetJobDefinition]:
    """The daily, monthly and static asset jobs over the given assets."""
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
            selection=dg.AssetSelection.assets(*keys_with_partitions(assets, None)),
            description="Unpartitioned reference data (security master, study tables).",
        ),
    ]


def build_schedules(
    jobs: Sequence[dg.UnresolvedAssetJobDefinition],
) -> list[dg.ScheduleDefinition]:
    """Daily schedule (at each weekday partition's end, 00:00 UTC Tue-Sat and Mon for Fri:
    the weekday that just finished) and monthly schedule (the 2nd, 03:00 UTC)."""
    by_name = {job.name: job for job in jobs}
    return [
        dg.build_schedule_from_partitioned_job(
            by_name["daily_job"], name="daily_schedule"
        ),
        dg.build_schedule_from_partitioned_job(
            by_name["monthly_job"], name="monthly_schedule", hour_of_day=3, day_of_month=2
        ),
    ]

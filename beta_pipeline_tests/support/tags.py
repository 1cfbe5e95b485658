"""Dagster's run tag keys used by the tests, as the literal strings Dagster documents
(``dagster/...`` system tags; e.g. a single-run backfill of a partition range carries
``dagster/asset_partition_range_start`` and ``dagster/asset_partition_range_end``), so that
no test imports them from ``dagster._core.storage.tags``."""

from __future__ import annotations

#: First and last partition key of a run over a partition range (single-run backfill).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
#: Partition key of a single-partition run.
PARTITION_NAME_TAG = "dagster/partition"
#: Id of the backfill that launched a run.
BACKFILL_ID_TAG = "dagster/backfill"


def partition_range_tags(first: str, last: str | None = None) -> dict[str, str]:
    """Tags of a run over the partitions ``first``..``last`` (``last`` defaults to ``first``)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last or first}

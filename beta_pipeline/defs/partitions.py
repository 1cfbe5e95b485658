"""Partitions shared by the domains: weekdays from 1990 and calendar months."""

from __future__ import annotations

import dagster as dg

PARTITIONS_START = "1990-01-01"

#: One partition per weekday (Mon-Fri). Exchange holidays are empty partitions: their
#: assets succeed with a warning rather than fail.
weekday_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5", start=PARTITIONS_START, fmt="%Y-%m-%d"
)

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START)

#: Writers to the DuckDB file share this pool, limited to one step at a time (dagster.yaml).
DUCKDB_POOL = "duckdb_writer"


def trailing(weekdays: int) -> dg.TimeWindowPartitionMapping:
    """Upstream window = this partition plus ``weekdays`` earlier weekday partitions."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-weekdays, allow_nonexistent_upstream_partitions=True
    )

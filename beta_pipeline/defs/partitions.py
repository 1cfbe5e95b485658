"""Partitions shared by the domains: NYSE trading sessions from 1990 and calendar months.

A daily partition is one XNYS session: a calendar day ``[D 00:00, D+1 00:00)`` UTC, with
weekends and exchange holidays excluded (``beta_pipeline.lib.calendar``). A session's
partition therefore closes at midnight UTC, after the US close (16:00 New York), so the
automation can load it the same evening; a holiday is not a partition at all, so nothing
expects data on it.
"""

from __future__ import annotations

import dagster as dg

from beta_pipeline.lib import calendar

PARTITIONS_START = calendar.CALENDAR_START


def _session_partitions() -> dg.TimeWindowPartitionsDefinition:
    holidays = calendar.holidays(PARTITIONS_START, calendar.calendar_end())
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * *",
        start=PARTITIONS_START,
        fmt="%Y-%m-%d",
        exclusions=["0 0 * * 6", "0 0 * * 0", *(d.to_pydatetime() for d in holidays)],
    )


#: One partition per NYSE trading session (weekends and exchange holidays excluded).
session_partitions = _session_partitions()

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START)

#: Writers to the DuckDB file share this pool, limited to one step at a time (dagster.yaml).
DUCKDB_POOL = "duckdb_writer"

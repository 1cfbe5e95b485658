"""Data-quality core: Great Expectations 1.x suites plus vectorised pandas rules.

Pure Python (no Dagster import). Every check returns ``CheckOutcome`` objects; the Dagster
layer turns them into asset-check results and ``outcomes_to_records`` into rows of the
``quality.check_results`` table.
"""

from __future__ import annotations

from beta_pipeline.lib.quality.gx_engine import gx_context
from beta_pipeline.lib.quality.outcome import (
    CHECK_RESULT_COLUMNS,
    MAX_ROWS_KEPT,
    ROW_COLUMNS,
    CheckOutcome,
    outcomes_to_markdown,
    outcomes_to_records,
    rows_to_markdown,
)
from beta_pipeline.lib.quality.prices import (
    EXCHANGE_CALENDAR_CLASSES,
    MAX_GAP_SESSIONS,
    MAX_GAP_WEEKDAYS,
    MIN_COVERAGE,
    PRICE_CHECKS,
    STALE_MIN_RUN,
    WEEKEND_TRADING_CLASSES,
    check_prices,
)
from beta_pipeline.lib.quality.returns import (
    JUMP,
    MARKET_MOVE,
    RET_MAX,
    RET_MIN,
    RETURN_CHECKS,
    REVERSAL_JUMP,
    REVERSAL_RATIO,
    REVERSAL_TOLERANCE,
    check_returns,
    suspicious_moves,
)

__all__ = [
    "CHECK_RESULT_COLUMNS",
    "EXCHANGE_CALENDAR_CLASSES",
    "JUMP",
    "MARKET_MOVE",
    "MAX_GAP_SESSIONS",
    "MAX_GAP_WEEKDAYS",
    "MAX_ROWS_KEPT",
    "MIN_COVERAGE",
    "PRICE_CHECKS",
    "RETURN_CHECKS",
    "REVERSAL_JUMP",
    "RET_MAX",
    "RET_MIN",
    "REVERSAL_RATIO",
    "REVERSAL_TOLERANCE",
    "ROW_COLUMNS",
    "STALE_MIN_RUN",
    "WEEKEND_TRADING_CLASSES",
    "CheckOutcome",
    "check_prices",
    "check_returns",
    "gx_context",
    "outcomes_to_markdown",
    "outcomes_to_records",
    "rows_to_markdown",
    "suspicious_moves",
]

"""Data-quality asset checks (Great Expectations + pandas rules from ``lib.quality``).

Each audited asset gets one multi-check whose specs are the rules of its suite. A check
reads the run's partition window (read-only), runs the suite, records every outcome in
``quality.check_results`` and reports one Dagster check result per rule. Error-severity
rules are blocking: when one fails, downstream assets of that run do not execute.

The checks are scoped to the run's partitions (one partition, or a single-run backfill's
whole range) but are not themselves partitioned: a 33-year backfill yields one evaluation
per rule instead of one per rule and session (8,300 x 15 events).

The price suite reads the run's window plus context on the XNYS calendar
(``lib.calendar``): ``LOOKBACK_SESSIONS`` sessions before it and ``LOOKAHEAD_SESSIONS``
after it (when already loaded), and reports only what falls in the window (see
``lib.quality.prices``): an exchange holiday expects no data, a session with no rows at
all between rows is a blocking error, one ticker missing on a session a warning.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from beta_pipeline.defs.automation import check_with_its_asset
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.defs.util import ingestion_window, partition_label, window
from beta_pipeline.lib import calendar, warehouse
from beta_pipeline.lib.quality import (
    MAX_GAP_SESSIONS,
    PRICE_CHECKS,
    RETURN_CHECKS,
    CheckOutcome,
    check_prices,
    check_returns,
    outcomes_to_records,
)
from beta_pipeline.lib.returns import MAX_LOOKBACK_WEEKDAYS

#: Sessions of returns after the window that the reversal rule may look at.
NEXT_DAY_SESSIONS = 5
#: Sessions of prices before the window: context of the stale, gap and hole rules.
LOOKBACK_SESSIONS = MAX_LOOKBACK_WEEKDAYS
#: Sessions of prices after the window (when loaded): a ticker back within a gap's length.
LOOKAHEAD_SESSIONS = MAX_GAP_SESSIONS


@dataclass(frozen=True)
class Rule:
    """One rule of a suite as the UI shows it."""

    name: str
    blocking: bool
    description: str


PRICE_RULES: tuple[Rule, ...] = (
    Rule("prices_keys_not_null", True, "date and symbol are never null (GE)"),
    Rule("prices_keys_unique", True, "one row per (symbol, date) (GE)"),
    Rule("prices_positive", True, "close and adj_close > 0 where present (GE)"),
    Rule("prices_no_weekend_rows", True, "no Saturday/Sunday rows for equities"),
    Rule("prices_holiday_rows", True, "no equity rows on XNYS holidays or closures (dates)"),
    Rule(
        "prices_missing_sessions",
        True,
        "every XNYS session between the first and last date with rows has rows (a failed "
        "load otherwise; listed)",
    ),
    Rule(
        "prices_missing_symbol_days",
        False,
        "a symbol missing 1-4 sessions that other symbols have, trading before and after "
        "(listed by symbol and date)",
    ),
    Rule("prices_stale", False, "same close on 5+ consecutive observations (listed)"),
    Rule("prices_gaps", False, "consecutive observations more than 5 sessions apart (listed)"),
    Rule("prices_coverage", False, "share of listed symbols priced each session >= 90%"),
    Rule("prices_all_nan_day", True, "no date whose prices are all missing"),
)
RETURN_RULES: tuple[Rule, ...] = (
    Rule("returns_keys_not_null", True, "date and symbol are never null (GE)"),
    Rule("returns_keys_unique", True, "one row per (symbol, date) (GE)"),
    Rule("returns_hard_bounds", True, "-100% < ret <= 1000% and finite (GE)"),
    Rule(
        "returns_suspicious_moves",
        False,
        "|ret| > 15% reversed next day, or |ret| > 25% with |market| < 2% (listed)",
    ),
)
assert tuple(r.name for r in PRICE_RULES) == PRICE_CHECKS
assert tuple(r.name for r in RETURN_RULES) == RETURN_CHECKS


def _results(
    outcomes: Sequence[CheckOutcome], rules: Sequence[Rule], asset: str
) -> Iterator[dg.AssetCheckResult]:
    by_name = {o.check_name: o for o in outcomes}
    missing = [r.name for r in rules if r.name not in by_name]
    if missing:
        raise RuntimeError(f"quality suite of {asset} produced no outcome for {missing}")
    for rule in rules:
        o = by_name[rule.name]
        metadata: dict[str, object] = {
            "details": o.details,
            "offending_rows": o.n_rows,
            "preview": dg.MetadataValue.md(o.preview_markdown()),
        }
        if o.observed is not None:
            metadata["observed"] = float(o.observed)
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=rule.name,
            passed=o.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR if o.severity == "error" else dg.AssetCheckSeverity.WARN
            ),
            metadata=metadata,
        )


def record_outcomes(
    db: DuckDBWarehouse, outcomes: Sequence[CheckOutcome], asset: str, partition: str
) -> None:
    """Replace the asset's outcomes for ``partition`` in ``quality.check_results``."""
    records = outcomes_to_records(outcomes, asset=asset, partition=partition)
    with db.writer() as conn:
        warehouse.replace_keys(
            conn, "quality.check_results", records, {"asset": asset, "partition": partition}
        )


def _suite(
    *,
    asset: str,
    rules: Sequence[Rule],
    run: Callable[[DuckDBWarehouse, pd.Timestamp, pd.Timestamp], list[CheckOutcome]],
    monthly: bool = False,
    ingested: bool = False,
) -> dg.AssetChecksDefinition:
    """``ingested``: the checked window is the ingestion's (the sessions plus the
    non-session days after the last one), so a weekend or holiday row is seen."""
    specs = [
        dg.AssetCheckSpec(
            name=r.name,
            asset=asset,
            description=r.description,
            blocking=r.blocking,
            automation_condition=check_with_its_asset(),
        )
        for r in rules
    ]

    @dg.multi_asset_check(
        name=f"{asset}_quality",
        specs=specs,
        pool=DUCKDB_POOL,
        description=f"Data-quality suite of {asset} over the run's partitions.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse_db: DuckDBWarehouse
    ) -> Iterator[dg.AssetCheckResult]:
        start, end = window(context)
        label = partition_label(start, end, monthly=monthly)
        outcomes = run(warehouse_db, *(ingestion_window(context) if ingested else (start, end)))
        record_outcomes(warehouse_db, outcomes, asset, label)
        failed = [o for o in outcomes if not o.passed]
        for o in failed:
            log = context.log.error if o.severity == "error" else context.log.warning
            log(f"{asset} [{label}] {o.check_name}: {o.details}")
        yield from _results(outcomes, rules, asset)

    return _check


def price_context(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The days read around the window ``[start, end)``: ``LOOKBACK_SESSIONS`` sessions
    before it and ``LOOKAHEAD_SESSIONS`` after it, as ``[first, end)``."""
    first = calendar.shift_sessions(start, -LOOKBACK_SESSIONS)
    last = calendar.shift_sessions(end - pd.Timedelta(days=1), LOOKAHEAD_SESSIONS)
    return first, last + pd.Timedelta(days=1)


def _run_prices(db: DuckDBWarehouse, start: pd.Timestamp, end: pd.Timestamp) -> list[CheckOutcome]:
    # sessions before and after give the stale/gap/hole rules context on a one-day window;
    # only what falls in [start, end) is reported
    lo, hi = price_context(start, end)
    with db.reader() as conn:
        prices = warehouse.read_window(conn, "raw.prices", lo, hi)
    return check_prices(prices, asset_class="equity", scope=(start, end))


def _run_returns(db: DuckDBWarehouse, start: pd.Timestamp, end: pd.Timestamp) -> list[CheckOutcome]:
    with db.reader() as conn:
        returns = warehouse.read_window(conn, "returns.daily", start, end)
        after_end = calendar.shift_sessions(end - pd.Timedelta(days=1), NEXT_DAY_SESSIONS)
        after = warehouse.read_window(conn, "returns.daily", end, after_end + pd.Timedelta(days=1))
    return check_returns(returns, next_day=after if len(after) else None)


QUALITY_CHECKS: list[dg.AssetChecksDefinition] = [
    _suite(
        asset="raw_prices",
        rules=PRICE_RULES,
        run=_run_prices,
        ingested=True,
    ),
    _suite(
        asset="daily_returns",
        rules=RETURN_RULES,
        run=_run_returns,
    ),
]

"""Data-quality asset checks (Great Expectations + pandas rules from ``lib.quality``).

Each audited asset gets one multi-check whose specs are the rules of its suite, built by
:func:`quality_suite`, the one factory of every domain (prices and returns here, the crypto
study in ``defs/crypto/checks.py``). A check reads its scope (read-only: the run's partition
window, or a whole-history table), runs the suite, records every outcome in
``quality.check_results`` and reports one Dagster check result per rule. Error-severity
rules are blocking: when one fails, downstream assets of that run do not execute.

The partitioned checks are scoped to the run's partitions (one partition, or a single-run backfill's
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


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a suite: its outcomes and the partition label they are recorded
    under in ``quality.check_results`` (``in_log``: the label is shown in log lines)."""

    label: str
    outcomes: list[CheckOutcome]
    in_log: bool = True


@dataclass(frozen=True)
class Scope:
    """What a suite reads and how it is declared.

    ``evaluate`` runs the rules for one check execution (resources from
    ``context.resources``); ``resources``: the resource keys it needs; ``description``: the
    multi-check's (``{asset}`` filled in); ``automated``: the specs run with every automated
    update of their asset (``check_with_its_asset``)."""

    evaluate: Callable[[dg.AssetCheckExecutionContext], Evaluation]
    description: str
    resources: frozenset[str] = frozenset({"warehouse_db"})
    automated: bool = True


WindowRun = Callable[[DuckDBWarehouse, pd.Timestamp, pd.Timestamp], list[CheckOutcome]]


def partition_scope(run: WindowRun, *, monthly: bool = False, ingested: bool = False) -> Scope:
    """The run's partitions: ``run(db, start, end)`` on their window, recorded under the
    window's label. ``ingested``: the window read is the ingestion's (the sessions plus the
    non-session days after the last one), so a weekend or holiday row is seen."""

    def evaluate(context: dg.AssetCheckExecutionContext) -> Evaluation:
        start, end = window(context)
        label = partition_label(start, end, monthly=monthly)
        span = ingestion_window(context) if ingested else (start, end)
        return Evaluation(label, run(context.resources.warehouse_db, *span))

    return Scope(evaluate, "Data-quality suite of {asset} over the run's partitions.")


def unpartitioned_scope(
    run: Callable[..., list[CheckOutcome]], resources: Sequence[str] = (), label: str = "all"
) -> Scope:
    """A whole-history asset: ``run(db, *resources)`` (the named resources in order),
    recorded under ``label``; the checks run with their asset's job, not by automation."""

    def evaluate(context: dg.AssetCheckExecutionContext) -> Evaluation:
        res = context.resources
        outcomes = run(res.warehouse_db, *(getattr(res, r) for r in resources))
        return Evaluation(label, outcomes, in_log=False)

    return Scope(
        evaluate,
        "Data-quality rules of {asset}.",
        frozenset({"warehouse_db", *resources}),
        automated=False,
    )


def quality_suite(*, asset: str, rules: Sequence[Rule], scope: Scope) -> dg.AssetChecksDefinition:
    """One multi-check ``<asset>_quality`` over ``asset`` with a spec per rule: evaluates
    ``scope``, records every outcome in ``quality.check_results``, logs the failures and
    reports one check result per rule (error severity for error outcomes)."""
    specs = [
        dg.AssetCheckSpec(
            name=r.name,
            asset=asset,
            description=r.description,
            blocking=r.blocking,
            automation_condition=check_with_its_asset() if scope.automated else None,
        )
        for r in rules
    ]

    @dg.multi_asset_check(
        name=f"{asset}_quality",
        specs=specs,
        pool=DUCKDB_POOL,
        description=scope.description.format(asset=asset),
        required_resource_keys=set(scope.resources),
    )
    def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        ev = scope.evaluate(context)
        record_outcomes(context.resources.warehouse_db, ev.outcomes, asset, ev.label)
        where = f"{asset} [{ev.label}]" if ev.in_log else asset
        for o in ev.outcomes:
            if not o.passed:
                log = context.log.error if o.severity == "error" else context.log.warning
                log(f"{where} {o.check_name}: {o.details}")
        yield from _results(ev.outcomes, rules, asset)

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
    quality_suite(
        asset="raw_prices", rules=PRICE_RULES, scope=partition_scope(_run_prices, ingested=True)
    ),
    quality_suite(asset="daily_returns", rules=RETURN_RULES, scope=partition_scope(_run_returns)),
]

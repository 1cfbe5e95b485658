"""Quality checks of the canonical prices frame (``schema.PRICE_COLUMNS``).

Great Expectations decides the row-level rules (keys not null and unique, positive prices);
vectorised pandas/numpy rules cover what needs the sequence of a symbol's observations or
the cross-section of a day. Days are counted on the asset class's trading calendar:

- ``equity`` (``EXCHANGE_CALENDAR_CLASSES``): NYSE sessions (``lib.calendar``, XNYS); an
  exchange holiday expects no data, a row on one is an error, gaps count sessions.
- ``crypto`` (``WEEKEND_TRADING_CLASSES``): every calendar day.
- any other class (e.g. ``cross_asset``: FX and futures trade on some US holidays): weekdays.

Rules (one ``CheckOutcome`` each, in ``PRICE_CHECKS`` order):

===========================  =====  ========================================================
rule                         sev.   fails when
===========================  =====  ========================================================
prices_keys_not_null         error  a date or symbol is null (GE)
prices_keys_unique           error  (date, symbol) repeats (GE)
prices_positive              error  close or adj_close <= 0 (GE)
prices_no_weekend_rows       error  a row on a Saturday/Sunday (not for crypto)
prices_holiday_rows          error  a row on a weekday that is no session (equity only)
prices_missing_sessions      error  a session with no row at all, strictly between the
                                    first and last date with rows in the frame (equity only)
prices_missing_symbol_days   warn   a symbol has no row on a day where other symbols have
                                    rows, with rows before and after it, the hole shorter
                                    than a gap (1 .. ``max_gap_sessions`` - 1 days)
prices_stale                 warn   the same close on ``stale_min_run``+ observations
prices_gaps                  warn   consecutive observations of a symbol more than
                                    ``max_gap_sessions`` trading days apart
prices_coverage              warn   a day with rows has < ``min_coverage`` of the listed
                                    symbols priced
prices_all_nan_day           error  a day has rows but no price at all
===========================  =====  ========================================================

Every hole in a symbol's series is reported once: a day nobody has is
``prices_missing_sessions``, a short hole of one symbol ``prices_missing_symbol_days``, a
long one ``prices_gaps``. Sessions before a symbol's first or after its last row (listing,
delisting, the source's coverage) are never missing.

``scope=(start, end)`` restricts what is reported to the run's window ``[start, end)``; rows
outside it are context (a trailing lookback, a few sessions after) that the sequence rules
read. Holes and stale runs are reported when they touch the scope (a hole whose next
observation is in the scope counts, so a daily run notices a ticker that came back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from beta_pipeline.lib import calendar
from beta_pipeline.lib.quality._frames import (
    fmt_date,
    require_columns,
    same_symbol_as_previous,
    valid_keys,
    working_copy,
)
from beta_pipeline.lib.quality.gx_engine import GxRule, expectations, gx_outcome, run_rules
from beta_pipeline.lib.quality.outcome import MAX_ROWS_KEPT, CheckOutcome, make_rows

#: Asset classes that trade on weekends (no weekend-row rule; every calendar day counts).
WEEKEND_TRADING_CLASSES: frozenset[str] = frozenset({"crypto"})
#: Asset classes on the NYSE session calendar (holidays expect no data).
EXCHANGE_CALENDAR_CLASSES: frozenset[str] = frozenset({"equity"})

STALE_MIN_RUN = 5  # same close on this many consecutive observations of a symbol
MAX_GAP_SESSIONS = 5  # consecutive observations more than this many sessions apart
MAX_GAP_WEEKDAYS = MAX_GAP_SESSIONS  # former name (gaps counted weekdays before the calendar)
MIN_COVERAGE = 0.9  # share of listed symbols with a price on a day
DETAIL_DATES = 10  # dates named in a details line

PRICE_CHECKS: tuple[str, ...] = (
    "prices_keys_not_null",
    "prices_keys_unique",
    "prices_positive",
    "prices_no_weekend_rows",
    "prices_holiday_rows",
    "prices_missing_sessions",
    "prices_missing_symbol_days",
    "prices_stale",
    "prices_gaps",
    "prices_coverage",
    "prices_all_nan_day",
)

_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class TradingDays:
    """The days an asset class trades on: ``sessions`` (XNYS), ``weekdays`` or ``days``."""

    kind: str

    @classmethod
    def for_class(cls, asset_class: str) -> TradingDays:
        name = asset_class.lower()
        if name in WEEKEND_TRADING_CLASSES:
            return cls("days")
        if name in EXCHANGE_CALENDAR_CLASSES:
            return cls("sessions")
        return cls("weekdays")

    @property
    def unit(self) -> str:
        return {"sessions": "sessions", "weekdays": "weekdays", "days": "days"}[self.kind]

    def is_open(self, days: np.ndarray) -> np.ndarray:
        """Boolean mask of ``datetime64[D]`` days the class trades on."""
        if self.kind == "sessions":
            return calendar.session_mask(days)
        if self.kind == "weekdays":
            return np.is_busday(days)
        return np.ones(len(days), dtype=bool)

    def between(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Trading days strictly between ``first`` and ``last`` (``datetime64[D]`` arrays)."""
        if len(first) == 0:
            return np.array([], dtype=np.int64)
        if self.kind == "sessions":
            return np.maximum(calendar.count_sessions(first + _DAY, last), 0)
        if self.kind == "weekdays":
            return np.maximum(np.busday_count(first + _DAY, last), 0)
        return np.maximum((last - first).astype(np.int64) - 1, 0)

    def after(self, first: np.ndarray, n: np.ndarray) -> np.ndarray:
        """The ``n``-th trading day after each ``first`` (``n`` >= 1)."""
        if len(first) == 0:
            return np.array([], dtype="datetime64[D]")
        if self.kind == "sessions":
            return calendar.offset_sessions(first, n)
        if self.kind == "weekdays":
            return np.busday_offset(first, n, roll="backward")
        return first + n.astype("timedelta64[D]")


@dataclass(frozen=True)
class Scope:
    """The run's window ``[start, end)``; ``None`` bounds are open."""

    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    @classmethod
    def of(cls, scope: tuple[object, object] | None) -> Scope:
        if scope is None:
            return cls()
        lo, hi = scope
        return cls(
            None if lo is None else pd.Timestamp(lo).normalize(),
            None if hi is None else pd.Timestamp(hi).normalize(),
        )

    def mask(self, dates: np.ndarray) -> np.ndarray:
        """Which ``datetime64`` values fall in the scope."""
        values = np.asarray(dates).astype("datetime64[ns]")
        out = np.ones(len(values), dtype=bool)
        if self.start is not None:
            out &= values >= self.start.to_datetime64()
        if self.end is not None:
            out &= values < self.end.to_datetime64()
        return out


def _gx_rules() -> list[GxRule]:
    gxe = expectations()
    return [
        GxRule(
            "prices_keys_not_null",
            gxe.ExpectColumnValuesToNotBeNull(column="date"),
            "date is null",
        ),
        GxRule(
            "prices_keys_not_null",
            gxe.ExpectColumnValuesToNotBeNull(column="symbol"),
            "symbol is null",
        ),
        GxRule(
            "prices_keys_unique",
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["date", "symbol"]),
            "duplicate (date, symbol) key",
        ),
        GxRule(
            "prices_positive",
            gxe.ExpectColumnValuesToBeBetween(column="close", min_value=0, strict_min=True),
            "close <= 0",
            value_column="close",
        ),
        GxRule(
            "prices_positive",
            gxe.ExpectColumnValuesToBeBetween(column="adj_close", min_value=0, strict_min=True),
            "adj_close <= 0",
            value_column="adj_close",
        ),
    ]


def check_prices(
    prices: pd.DataFrame,
    asset_class: str = "equity",
    *,
    stale_min_run: int = STALE_MIN_RUN,
    max_gap_sessions: int = MAX_GAP_SESSIONS,
    min_coverage: float = MIN_COVERAGE,
    expected_dates: Iterable[pd.Timestamp] | None = None,
    scope: tuple[object, object] | None = None,
    max_rows: int = MAX_ROWS_KEPT,
) -> list[CheckOutcome]:
    """Run every price check; one CheckOutcome per name in ``PRICE_CHECKS``, in that order.

    ``asset_class`` picks the trading calendar (module docstring). ``scope`` is the run's
    window ``[start, end)``: only its rows, days and the holes touching it are reported,
    the other rows are context (default: the whole frame). ``expected_dates`` adds days to
    the coverage check (a day without rows then counts as 0 % covered).
    """
    require_columns(prices, ["date", "symbol", "close", "adj_close"], "prices")
    frame = working_copy(prices, ["date", "symbol", "close", "adj_close"])
    for col in ("close", "adj_close"):
        if not pd.api.types.is_float_dtype(frame[col]):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    window = Scope.of(scope)
    days = TradingDays.for_class(asset_class)

    dates = frame["date"].to_numpy()
    scoped = frame.loc[frame["date"].isna().to_numpy() | window.mask(dates)]
    scoped = scoped.reset_index(drop=True)
    results = run_rules(scoped, _gx_rules(), max_rows)
    outcomes = [
        gx_outcome(
            "prices_keys_not_null",
            scoped,
            results,
            "error",
            "every row has a date and a symbol",
            "{n} key value(s) (date or symbol) are null",
            max_rows,
        ),
        gx_outcome(
            "prices_keys_unique",
            scoped,
            results,
            "error",
            "(date, symbol) is unique",
            "{n} rows share their (date, symbol) key with another row",
            max_rows,
        ),
        gx_outcome(
            "prices_positive",
            scoped,
            results,
            "error",
            "every close and adj_close present is > 0",
            "{n} close/adj_close value(s) are <= 0",
            max_rows,
        ),
    ]

    keyed = valid_keys(frame)
    in_scope = keyed.loc[window.mask(keyed["date"].to_numpy())]
    outcomes.append(_weekend_rows(in_scope, asset_class, days, max_rows))
    outcomes.append(_holiday_rows(in_scope, asset_class, days, max_rows))
    outcomes.append(_missing_sessions(keyed, window, days, max_rows))
    holes = _holes(keyed, days)
    present = np.unique(keyed["date"].to_numpy().astype("datetime64[D]"))
    outcomes.append(_missing_symbol_days(holes, present, window, days, max_gap_sessions, max_rows))
    outcomes.append(_stale_prices(keyed, window, stale_min_run, max_rows))
    outcomes.append(_gaps(holes, window, days, max_gap_sessions, max_rows))
    day_stats = _day_stats(in_scope)
    outcomes.append(
        _coverage(keyed, day_stats, window, days, min_coverage, expected_dates, max_rows)
    )
    outcomes.append(_all_nan_days(day_stats, max_rows))
    return outcomes


def _name_dates(values: Iterable[object], limit: int = DETAIL_DATES) -> str:
    """``2024-01-02, 2024-01-03, ... (12 in all)``."""
    shown = [fmt_date(v) for v in values]
    if len(shown) <= limit:
        return ", ".join(shown)
    return ", ".join(shown[:limit]) + f", ... ({len(shown)} in all)"


def _weekend_rows(
    keyed: pd.DataFrame, asset_class: str, days: TradingDays, max_rows: int
) -> CheckOutcome:
    name = "prices_no_weekend_rows"
    if days.kind == "days":
        return CheckOutcome(
            name, True, "error", 0, f"not applicable: {asset_class} trades on weekends"
        )
    weekend = keyed.loc[keyed["date"].dt.dayofweek.to_numpy() >= 5]
    n = len(weekend)
    if n == 0:
        return CheckOutcome(name, True, "error", 0, "no Saturday or Sunday rows")
    rows = pd.DataFrame(
        {
            "symbol": weekend["symbol"].to_numpy(),
            "date": weekend["date"].to_numpy(),
            "value": weekend["close"].to_numpy(),
            "reason": "row on a " + weekend["date"].dt.day_name().to_numpy(dtype=object),
        }
    ).sort_values(["date", "symbol"], kind="mergesort")
    dates = sorted(weekend["date"].unique())
    return CheckOutcome(
        name,
        False,
        "error",
        n,
        f"{n} row(s) of {asset_class} prices fall on a weekend "
        f"({len(dates)} day(s): {_name_dates(dates)})",
        make_rows(rows, max_rows),
        n,
    )


def _holiday_rows(
    keyed: pd.DataFrame, asset_class: str, days: TradingDays, max_rows: int
) -> CheckOutcome:
    """Rows on weekdays that are no exchange session (holidays, closures)."""
    name = "prices_holiday_rows"
    if days.kind != "sessions":
        return CheckOutcome(
            name, True, "error", 0, f"not applicable: {asset_class} has no exchange calendar"
        )
    day = keyed["date"].to_numpy().astype("datetime64[D]")
    weekday = np.is_busday(day)
    closed = weekday & ~calendar.session_mask(day) if len(day) else weekday
    n = int(closed.sum())
    if n == 0:
        return CheckOutcome(
            name, True, "error", 0, f"no rows on {calendar.EXCHANGE} holidays or closures"
        )
    bad = keyed.loc[closed]
    rows = pd.DataFrame(
        {
            "symbol": bad["symbol"].to_numpy(),
            "date": bad["date"].to_numpy(),
            "value": bad["close"].to_numpy(),
            "reason": f"row on a weekday the exchange ({calendar.EXCHANGE}) was closed",
        }
    ).sort_values(["date", "symbol"], kind="mergesort")
    dates = sorted(bad["date"].unique())
    return CheckOutcome(
        name,
        False,
        "error",
        n,
        f"{n} row(s) of {asset_class} prices fall on {calendar.EXCHANGE} holidays or closures "
        f"({len(dates)} day(s): {_name_dates(dates)})",
        make_rows(rows, max_rows),
        n,
    )


def _missing_sessions(
    keyed: pd.DataFrame, window: Scope, days: TradingDays, max_rows: int
) -> CheckOutcome:
    """Sessions in the scope with no row at all, between the frame's first and last dates."""
    name = "prices_missing_sessions"
    if days.kind != "sessions":
        return CheckOutcome(name, True, "error", 0, "not applicable: no exchange calendar")
    if keyed.empty:
        return CheckOutcome(
            name, True, "error", 0, "no rows: nothing expected (a holiday or outside coverage)"
        )
    present = pd.DatetimeIndex(np.unique(keyed["date"].to_numpy()))
    lo, hi = present[0], present[-1]
    if window.start is not None:
        lo = max(lo, window.start)
    if window.end is not None:
        hi = min(hi, window.end - pd.Timedelta(days=1))
    missing = calendar.sessions(lo, hi).difference(present) if lo <= hi else present[:0]
    first, last = fmt_date(present[0]), fmt_date(present[-1])
    if len(missing) == 0:
        return CheckOutcome(
            name,
            True,
            "error",
            0,
            f"every session between the first and last date with rows ({first}..{last}) has rows",
        )
    span = keyed.groupby("symbol", sort=False)["date"].agg(["min", "max"])
    d = missing.to_numpy()
    listed = np.searchsorted(np.sort(span["min"].to_numpy()), d, side="right") - np.searchsorted(
        np.sort(span["max"].to_numpy()), d, side="left"
    )
    pos = np.searchsorted(present.to_numpy(), d)
    rows = pd.DataFrame(
        {
            "symbol": None,
            "date": d,
            "value": listed.astype("float64"),
            "reason": [
                f"no row at all ({k} listed symbols); rows on {fmt_date(present[p - 1])} "
                f"and {fmt_date(present[p])}: a failed load, not a holiday"
                for k, p in zip(listed, pos, strict=True)
            ],
        }
    )
    n = len(missing)
    return CheckOutcome(
        name,
        False,
        "error",
        n,
        f"{n} {calendar.EXCHANGE} session(s) have no rows at all between {first} and {last}: "
        f"{_name_dates(missing)}",
        make_rows(rows, max_rows),
        n,
    )


@dataclass(frozen=True)
class _Holes:
    """Consecutive observations of a symbol with trading days missing between them."""

    symbol: np.ndarray
    prev: np.ndarray  # datetime64[D]: last observation before the hole
    next: np.ndarray  # datetime64[D]: first observation after it
    missing: np.ndarray  # trading days strictly between


def _holes(keyed: pd.DataFrame, days: TradingDays) -> _Holes:
    symbols = keyed["symbol"].to_numpy()
    day = keyed["date"].to_numpy().astype("datetime64[D]")
    idx = np.flatnonzero(same_symbol_as_previous(symbols))
    missing = days.between(day[idx - 1], day[idx])
    keep = idx[missing > 0]
    return _Holes(symbols[keep], day[keep - 1], day[keep], missing[missing > 0])


def _touches(window: Scope, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Holes (prev, next) whose next observation or whose inside is in the scope."""
    out = np.ones(len(prev), dtype=bool)
    if window.start is not None:
        out &= nxt >= window.start.to_datetime64().astype("datetime64[D]")
    if window.end is not None:
        out &= prev + _DAY < window.end.to_datetime64().astype("datetime64[D]")
    return out


def _missing_symbol_days(
    holes: _Holes,
    present: np.ndarray,
    window: Scope,
    days: TradingDays,
    max_gap: int,
    max_rows: int,
) -> CheckOutcome:
    """One row per (symbol, day) of a short hole, on days other symbols have rows."""
    name = "prices_missing_symbol_days"
    short = (holes.missing < max_gap) & _touches(window, holes.prev, holes.next)
    count = holes.missing[short]
    which = np.repeat(np.flatnonzero(short), count)
    step = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count) + 1
    day = days.after(holes.prev[which], step)
    keep = np.isin(day, present)  # a day nobody has is prices_missing_sessions
    which, day = which[keep], day[keep]
    n = len(day)
    unit = days.unit
    if n == 0:
        return CheckOutcome(
            name,
            True,
            "warn",
            0,
            f"no symbol misses a day other symbols have (holes shorter than {max_gap} {unit})",
        )
    symbols = holes.symbol[which]
    rows = pd.DataFrame(
        {
            "symbol": symbols,
            "date": day.astype("datetime64[ns]"),
            "value": np.nan,
            "reason": [
                f"no row; {s} has rows on {fmt_date(a)} and {fmt_date(b)}"
                for s, a, b in zip(symbols, holes.prev[which], holes.next[which], strict=True)
            ],
        }
    ).sort_values(["date", "symbol"], kind="mergesort")
    named = ", ".join(
        f"{s} {fmt_date(d)}" for s, d in zip(rows["symbol"], rows["date"], strict=True)
    )
    if n > DETAIL_DATES:
        named = ", ".join(named.split(", ")[:DETAIL_DATES]) + f", ... ({n} in all)"
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} missing (symbol, day) pair(s) in {len(set(symbols))} symbol(s) where other "
        f"symbols have rows and the symbol trades before and after: {named}",
        make_rows(rows, max_rows),
        n,
    )


def _stale_prices(keyed: pd.DataFrame, window: Scope, min_run: int, max_rows: int) -> CheckOutcome:
    """Runs of the same close on >= ``min_run`` consecutive observations of one symbol."""
    name = "prices_stale"
    symbols = keyed["symbol"].to_numpy()
    close = keyed["close"].to_numpy(dtype="float64")
    dates = keyed["date"].to_numpy()
    n = len(keyed)
    if n:
        same = same_symbol_as_previous(symbols)
        same[1:] &= close[1:] == close[:-1]  # NaN never equals: a NaN breaks a run
        starts = np.flatnonzero(~same)
        lengths = np.diff(np.append(starts, n))
        stale = (lengths >= min_run) & np.isfinite(close[starts])
        first = starts[stale]
        last = first + lengths[stale] - 1
        count = lengths[stale]
        touch = np.ones(len(first), dtype=bool)  # runs that overlap the scope
        if window.start is not None:
            touch &= dates[last] >= window.start.to_datetime64()
        if window.end is not None:
            touch &= dates[first] < window.end.to_datetime64()
        first, last, count = first[touch], last[touch], count[touch]
    else:
        first = last = count = np.array([], dtype=np.int64)
    runs = len(first)
    if runs == 0:
        return CheckOutcome(
            name, True, "warn", 0, f"no close repeated on {min_run}+ consecutive observations"
        )
    rows = pd.DataFrame(
        {
            "symbol": symbols[first],
            "date": dates[first],
            "end_date": dates[last],
            "value": close[first],
            "reason": [f"same close on {k} consecutive observations" for k in count],
        }
    )
    longest = int(count.max())
    worst = rows.iloc[int(np.argmax(count))]
    return CheckOutcome(
        name,
        False,
        "warn",
        runs,
        f"{runs} stale run(s) of {min_run}+ identical closes in "
        f"{rows['symbol'].nunique()} symbol(s); longest {longest} observations "
        f"({worst['symbol']} from {fmt_date(worst['date'])} to {fmt_date(worst['end_date'])})",
        make_rows(rows, max_rows, with_end_date=True),
        runs,
    )


def _gaps(
    holes: _Holes, window: Scope, days: TradingDays, max_gap: int, max_rows: int
) -> CheckOutcome:
    """Consecutive observations of a symbol more than ``max_gap`` trading days apart."""
    name = "prices_gaps"
    unit = days.unit
    apart = holes.missing + 1
    bad = (apart > max_gap) & _touches(window, holes.prev, holes.next)
    n = int(bad.sum())
    if n == 0:
        return CheckOutcome(
            name, True, "warn", 0, f"no symbol has observations more than {max_gap} {unit} apart"
        )
    apart_bad = apart[bad]
    rows = pd.DataFrame(
        {
            "symbol": holes.symbol[bad],
            "date": holes.prev[bad].astype("datetime64[ns]"),
            "end_date": holes.next[bad].astype("datetime64[ns]"),
            "value": apart_bad.astype("float64"),
            "reason": [f"next observation {k} {unit} later ({k - 1} missing)" for k in apart_bad],
        }
    )
    worst = rows.iloc[int(np.argmax(apart_bad))]
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} gap(s) of more than {max_gap} {unit} in {rows['symbol'].nunique()} symbol(s); "
        f"longest {int(apart_bad.max())} {unit} ({worst['symbol']} "
        f"{fmt_date(worst['date'])} to {fmt_date(worst['end_date'])})",
        make_rows(rows, max_rows, with_end_date=True),
        n,
    )


def _day_stats(keyed: pd.DataFrame) -> pd.DataFrame:
    """Per date with rows: rows, symbols priced (close or adj_close present)."""
    priced = keyed["close"].notna() | keyed["adj_close"].notna()
    grouped = priced.groupby(keyed["date"].to_numpy())
    return pd.DataFrame({"n_rows": grouped.size(), "n_priced": grouped.sum().astype("int64")})


def _coverage(
    keyed: pd.DataFrame,
    day_stats: pd.DataFrame,
    window: Scope,
    days: TradingDays,
    min_coverage: float,
    expected_dates: Iterable[pd.Timestamp] | None,
    max_rows: int,
) -> CheckOutcome:
    """Share of listed symbols (first <= day <= last observation) priced on each trading day
    with rows in the scope (plus ``expected_dates``)."""
    name = "prices_coverage"
    measured = pd.DatetimeIndex(day_stats.index)
    if expected_dates is not None:
        extra = pd.DatetimeIndex(pd.to_datetime(list(expected_dates))).normalize()
        measured = measured.union(extra[window.mask(extra.to_numpy())])
    if len(measured):
        measured = measured[days.is_open(measured.to_numpy().astype("datetime64[D]"))]
    if keyed.empty or len(measured) == 0:
        return CheckOutcome(name, True, "warn", None, "no days to measure coverage on")
    span = keyed.groupby("symbol", sort=False)["date"].agg(["min", "max"])
    first = np.sort(span["min"].to_numpy())
    last = np.sort(span["max"].to_numpy())
    d = measured.to_numpy()
    listed = np.searchsorted(first, d, side="right") - np.searchsorted(last, d, side="left")
    priced = day_stats["n_priced"].reindex(measured, fill_value=0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(listed > 0, priced / np.maximum(listed, 1), np.nan)
    low = np.flatnonzero(share < min_coverage)
    lowest = float(np.nanmin(share)) if np.isfinite(share).any() else None
    if len(low) == 0:
        shown = "n/a" if lowest is None else f"{lowest:.1%}"
        return CheckOutcome(
            name,
            True,
            "warn",
            lowest,
            f"every day has >= {min_coverage:.0%} of listed symbols priced "
            f"(lowest {shown} over {len(measured)} days)",
        )
    rows = pd.DataFrame(
        {
            "symbol": None,
            "date": d[low],
            "value": share[low],
            "reason": [
                f"{p} of {n} listed symbols priced"
                for p, n in zip(priced[low], listed[low], strict=True)
            ],
        }
    )
    worst = int(low[np.argmin(share[low])])
    return CheckOutcome(
        name,
        False,
        "warn",
        lowest,
        f"{len(low)} day(s) below {min_coverage:.0%} coverage of listed symbols; lowest "
        f"{share[worst]:.1%} on {fmt_date(d[worst])} ({priced[worst]} of {listed[worst]})",
        make_rows(rows, max_rows),
        len(low),
    )


def _all_nan_days(day_stats: pd.DataFrame, max_rows: int) -> CheckOutcome:
    """Days with rows but no price at all (a failed load, not a holiday)."""
    name = "prices_all_nan_day"
    bad = day_stats.loc[(day_stats["n_rows"] > 0) & (day_stats["n_priced"] == 0)]
    n = len(bad)
    if n == 0:
        return CheckOutcome(name, True, "error", 0, "every day with rows has at least one price")
    rows = pd.DataFrame(
        {
            "symbol": None,
            "date": bad.index.to_numpy(),
            "value": bad["n_rows"].to_numpy(dtype="float64"),
            "reason": [f"{k} rows, none with a close or adj_close" for k in bad["n_rows"]],
        }
    )
    return CheckOutcome(
        name,
        False,
        "error",
        n,
        f"{n} day(s) have rows but no price at all (first {fmt_date(bad.index[0])})",
        make_rows(rows, max_rows),
        n,
    )

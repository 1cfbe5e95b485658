"""Quality checks of the canonical prices frame (``schema.PRICE_COLUMNS``).

Great Expectations decides the row-level rules (keys not null and unique, positive prices);
vectorised pandas/numpy rules cover what needs the sequence of a symbol's observations or
the cross-section of a day (weekend rows, stale closes, gaps, coverage, all-NaN days).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from beta_pipeline.lib.quality._frames import (
    fmt_date,
    require_columns,
    same_symbol_as_previous,
    valid_keys,
    working_copy,
)
from beta_pipeline.lib.quality.gx_engine import GxRule, expectations, gx_outcome, run_rules
from beta_pipeline.lib.quality.outcome import MAX_ROWS_KEPT, CheckOutcome, make_rows

#: Asset classes that trade on weekends (no weekend-row rule for them).
WEEKEND_TRADING_CLASSES: frozenset[str] = frozenset({"crypto"})

STALE_MIN_RUN = 5  # same close on this many consecutive observations of a symbol
MAX_GAP_WEEKDAYS = 5  # consecutive observations more than this many weekdays apart
MIN_COVERAGE = 0.9  # share of listed symbols with a price on a day

PRICE_CHECKS: tuple[str, ...] = (
    "prices_keys_not_null",
    "prices_keys_unique",
    "prices_positive",
    "prices_no_weekend_rows",
    "prices_stale",
    "prices_gaps",
    "prices_coverage",
    "prices_all_nan_day",
)


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
    max_gap_weekdays: int = MAX_GAP_WEEKDAYS,
    min_coverage: float = MIN_COVERAGE,
    expected_dates: Iterable[pd.Timestamp] | None = None,
    max_rows: int = MAX_ROWS_KEPT,
) -> list[CheckOutcome]:
    """Run every price check; one CheckOutcome per name in ``PRICE_CHECKS``, in that order.

    ``asset_class`` "crypto" (any of ``WEEKEND_TRADING_CLASSES``) skips the weekend rule and
    measures coverage on every calendar day; other classes on weekdays only.
    ``expected_dates`` (e.g. an exchange calendar) adds days with no rows at all to the
    coverage check; by default only days with at least one row are measured, so holidays
    are not reported as missing.
    """
    require_columns(prices, ["date", "symbol", "close", "adj_close"], "prices")
    frame = working_copy(prices, ["date", "symbol", "close", "adj_close"])
    for col in ("close", "adj_close"):
        if not pd.api.types.is_float_dtype(frame[col]):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")

    results = run_rules(frame, _gx_rules(), max_rows)
    outcomes = [
        gx_outcome(
            "prices_keys_not_null",
            frame,
            results,
            "error",
            "every row has a date and a symbol",
            "{n} key value(s) (date or symbol) are null",
            max_rows,
        ),
        gx_outcome(
            "prices_keys_unique",
            frame,
            results,
            "error",
            "(date, symbol) is unique",
            "{n} rows share their (date, symbol) key with another row",
            max_rows,
        ),
        gx_outcome(
            "prices_positive",
            frame,
            results,
            "error",
            "every close and adj_close present is > 0",
            "{n} close/adj_close value(s) are <= 0",
            max_rows,
        ),
    ]

    keyed = valid_keys(frame)
    weekend_trading = asset_class.lower() in WEEKEND_TRADING_CLASSES
    outcomes.append(_weekend_rows(keyed, asset_class, weekend_trading, max_rows))
    outcomes.append(_stale_prices(keyed, stale_min_run, max_rows))
    outcomes.append(_gaps(keyed, max_gap_weekdays, max_rows))
    day_stats = _day_stats(keyed)
    outcomes.append(
        _coverage(keyed, day_stats, weekend_trading, min_coverage, expected_dates, max_rows)
    )
    outcomes.append(_all_nan_days(day_stats, max_rows))
    return outcomes


def _weekend_rows(
    keyed: pd.DataFrame, asset_class: str, weekend_trading: bool, max_rows: int
) -> CheckOutcome:
    name = "prices_no_weekend_rows"
    if weekend_trading:
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
    days = sorted({fmt_date(d) for d in weekend["date"].unique()})
    return CheckOutcome(
        name,
        False,
        "error",
        n,
        f"{n} row(s) of {asset_class} prices fall on a weekend "
        f"({len(days)} day(s), first {days[0]})",
        make_rows(rows, max_rows),
        n,
    )


def _stale_prices(keyed: pd.DataFrame, min_run: int, max_rows: int) -> CheckOutcome:
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


def _gaps(keyed: pd.DataFrame, max_gap: int, max_rows: int) -> CheckOutcome:
    """Consecutive observations of a symbol more than ``max_gap`` weekdays apart."""
    name = "prices_gaps"
    symbols = keyed["symbol"].to_numpy()
    days = keyed["date"].to_numpy().astype("datetime64[D]")
    same = same_symbol_as_previous(symbols)
    idx = np.flatnonzero(same)
    apart = np.busday_count(days[idx - 1], days[idx]) if len(idx) else np.array([], dtype=int)
    bad = idx[apart > max_gap]
    apart_bad = apart[apart > max_gap]
    n = len(bad)
    if n == 0:
        return CheckOutcome(
            name, True, "warn", 0, f"no symbol has observations more than {max_gap} weekdays apart"
        )
    dates = keyed["date"].to_numpy()
    rows = pd.DataFrame(
        {
            "symbol": symbols[bad],
            "date": dates[bad - 1],
            "end_date": dates[bad],
            "value": apart_bad.astype("float64"),
            "reason": [f"next observation {k} weekdays later ({k - 1} missing)" for k in apart_bad],
        }
    )
    worst = rows.iloc[int(np.argmax(apart_bad))]
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} gap(s) of more than {max_gap} weekdays in {rows['symbol'].nunique()} symbol(s); "
        f"longest {int(apart_bad.max())} weekdays ({worst['symbol']} "
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
    weekend_trading: bool,
    min_coverage: float,
    expected_dates: Iterable[pd.Timestamp] | None,
    max_rows: int,
) -> CheckOutcome:
    """Share of listed symbols (first <= day <= last observation) priced on each day."""
    name = "prices_coverage"
    days = pd.DatetimeIndex(day_stats.index)
    if expected_dates is not None:
        days = days.union(pd.DatetimeIndex(pd.to_datetime(list(expected_dates))).normalize())
    if not weekend_trading:
        days = days[days.dayofweek < 5]
    if keyed.empty or len(days) == 0:
        return CheckOutcome(name, True, "warn", None, "no days to measure coverage on")
    span = keyed.groupby("symbol", sort=False)["date"].agg(["min", "max"])
    first = np.sort(span["min"].to_numpy())
    last = np.sort(span["max"].to_numpy())
    d = days.to_numpy()
    listed = np.searchsorted(first, d, side="right") - np.searchsorted(last, d, side="left")
    priced = day_stats["n_priced"].reindex(days, fill_value=0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(listed > 0, priced / np.maximum(listed, 1), np.nan)
    low = np.flatnonzero(share < min_coverage)
    lowest = float(np.nanmin(share)) if np.isfinite(share).any() else None
    if len(low) == 0:
        return CheckOutcome(
            name,
            True,
            "warn",
            lowest,
            f"every day has >= {min_coverage:.0%} of listed symbols priced "
            f"(lowest {lowest:.1%} over {len(days)} days)",
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

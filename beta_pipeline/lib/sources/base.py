"""The price-source interface and the helpers every source shares.

A source turns its inputs into the canonical frames of :mod:`beta_pipeline.lib.schema`:

- ``load_prices`` -> ``PRICE_COLUMNS`` (one row per symbol and date, sorted by date, symbol)
- ``load_market`` -> ``MARKET_COLUMNS`` (daily ``date, series, value``)
- ``load_market_monthly`` -> ``MONTHLY_MARKET_COLUMNS`` (``month`` = first day of the month)
- ``securities`` -> ``SECURITY_COLUMNS``
- ``describe`` -> a JSON-friendly coverage dict; every source gives each universe of
  ``describe()["prices"]`` the keys ``configured``, ``first_date`` and ``last_date``
  (``None`` when not configured): the CLI's default range is the equity ones.

Windows are half-open ``[start, end)`` on the date (or the month) column. A window
without any trading session (a holiday, a weekend) simply has no rows: an empty frame,
never an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from beta_pipeline.lib import calendar
from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.schema import (
    MARKET_COLUMNS,
    MONTHLY_MARKET_COLUMNS,
    PRICE_COLUMNS,
    SECURITY_COLUMNS,
)

UNIVERSES: tuple[str, ...] = ("equity", "crypto", "cross_asset")
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
NUMERIC_PRICE_COLUMNS: tuple[str, ...] = (*PRICE_FIELDS, "volume")

DateLike = str | pd.Timestamp | np.datetime64 | None


@runtime_checkable
class PriceSource(Protocol):
    """What the Dagster layer relies on; every source in this package implements it."""

    kind: str

    def load_prices(
        self,
        start: DateLike = None,
        end: DateLike = None,
        symbols: Iterable[str] | None = None,
        universe: str = "equity",
    ) -> pd.DataFrame: ...

    def load_market(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame: ...

    def load_market_monthly(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame: ...

    def securities(self) -> pd.DataFrame: ...

    def describe(self) -> dict[str, Any]: ...


def to_timestamp(value: DateLike, name: str) -> pd.Timestamp | None:
    """A window bound as a naive midnight Timestamp (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} is not a date") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def check_universe(universe: str) -> str:
    if universe not in UNIVERSES:
        raise ValueError(f"unknown universe {universe!r}: use one of {', '.join(UNIVERSES)}")
    return universe


def normalise_symbols(symbols: Iterable[str] | str | None) -> list[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = [symbols]
    out: list[str] = []
    for sym in symbols:
        s = str(sym).strip().upper()
        if s and s not in out:
            out.append(s)
    return out


def empty_prices() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in PRICE_COLUMNS})
    frame["date"] = pd.Series(dtype="datetime64[ns]")
    frame["symbol"] = pd.Series(dtype="object")
    frame["source"] = pd.Series(dtype="object")
    return frame.loc[:, list(PRICE_COLUMNS)]


def empty_market(monthly: bool = False) -> pd.DataFrame:
    cols = MONTHLY_MARKET_COLUMNS if monthly else MARKET_COLUMNS
    return pd.DataFrame(
        {
            cols[0]: pd.Series(dtype="datetime64[ns]"),
            cols[1]: pd.Series(dtype="object"),
            cols[2]: pd.Series(dtype="float64"),
        }
    )


def canonical_prices(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns, dtypes and order of ``PRICE_COLUMNS``; sorted by (date, symbol)."""
    if frame.empty:
        return empty_prices()
    out = pd.DataFrame(
        {
            "date": pd.to_datetime(frame["date"]).astype("datetime64[ns]"),
            "symbol": frame["symbol"].astype(str).to_numpy(dtype=object),
        }
    )
    for col in NUMERIC_PRICE_COLUMNS:
        out[col] = frame[col].astype("float64").to_numpy() if col in frame else np.nan
    out["source"] = frame["source"].astype(str).to_numpy(dtype=object)
    out = out.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
    return out.loc[:, list(PRICE_COLUMNS)]


def canonical_market(frame: pd.DataFrame, monthly: bool = False) -> pd.DataFrame:
    cols = MONTHLY_MARKET_COLUMNS if monthly else MARKET_COLUMNS
    if frame.empty:
        return empty_market(monthly)
    out = pd.DataFrame(
        {
            cols[0]: pd.to_datetime(frame[cols[0]]).astype("datetime64[ns]").to_numpy(),
            cols[1]: frame[cols[1]].astype(str).to_numpy(dtype=object),
            cols[2]: frame[cols[2]].astype("float64").to_numpy(),
        }
    )
    out = out.dropna(subset=[cols[2]])
    out = out.sort_values([cols[0], cols[1]], kind="mergesort").reset_index(drop=True)
    return out


def window(frame: pd.DataFrame, column: str, start: DateLike, end: DateLike) -> pd.DataFrame:
    """Rows with ``start <= frame[column] < end`` (always a copy)."""
    lo = to_timestamp(start, "start")
    hi = to_timestamp(end, "end")
    mask = np.ones(len(frame), dtype=bool)
    if lo is not None:
        mask &= (frame[column] >= lo).to_numpy()
    if hi is not None:
        mask &= (frame[column] < hi).to_numpy()
    return frame.loc[mask].reset_index(drop=True)


def select_symbols(
    frame: pd.DataFrame, symbols: Iterable[str] | str | None, known: Iterable[str], where: str
) -> pd.DataFrame:
    """Keep the requested symbols; any symbol the source does not know is an error."""
    wanted = normalise_symbols(symbols)
    if wanted is None:
        return frame
    known_set = set(known)
    unknown = [s for s in wanted if s not in known_set]
    if unknown:
        raise DataValidationError(
            "unknown_ticker",
            f"{where} has no data for {', '.join(unknown)}; known symbols: "
            f"{_preview(sorted(known_set))}",
            symbol=",".join(unknown),
        )
    return frame.loc[frame["symbol"].isin(wanted)].reset_index(drop=True)


def _preview(items: list[str], n: int = 12) -> str:
    if len(items) <= n:
        return ", ".join(items) if items else "(none)"
    return ", ".join(items[:n]) + f", ... ({len(items)} in all)"


def calendar_coverage(dates: Iterable[Any], shown: int = 5) -> dict[str, Any]:
    """How a set of dates sits on the XNYS calendar between its first and last date:
    sessions without any date (``missing_sessions``) and dates that are no session
    (``non_session_dates``: weekends, holidays), counts and the first ``shown``."""
    values = dates if isinstance(dates, pd.Series) else pd.Series(list(dates))
    stamps = pd.to_datetime(values).dropna()
    days = pd.DatetimeIndex(stamps.dt.normalize().unique()).sort_values()
    if len(days) == 0:
        expected = missing = extra = pd.DatetimeIndex([])
    else:
        expected = calendar.sessions(days[0], days[-1])
        missing, extra = expected.difference(days), days.difference(expected)
    return {
        "exchange": calendar.EXCHANGE,
        "sessions": int(len(expected)),
        "missing_sessions": int(len(missing)),
        "missing_first": [_d(d) for d in missing[:shown]],
        "non_session_dates": int(len(extra)),
        "non_session_first": [_d(d) for d in extra[:shown]],
    }


def unconfigured(**extra: Any) -> dict[str, Any]:
    """The ``describe()["prices"][universe]`` entry of a universe a source does not have."""
    return {"configured": False, "first_date": None, "last_date": None, **extra}


def coverage_prices(frame: pd.DataFrame, exchange_calendar: bool = False) -> dict[str, Any]:
    """Coverage summary of a canonical price frame for describe(); with
    ``exchange_calendar`` also its ``calendar_coverage`` (equity universes)."""
    cal = {"calendar": calendar_coverage(frame["date"])} if exchange_calendar else {}
    if frame.empty:
        return {
            "rows": 0,
            "n_symbols": 0,
            "symbols": {},
            "first_date": None,
            "last_date": None,
            **cal,
        }
    g = frame.groupby("symbol", sort=True)["date"].agg(["min", "max", "size"])
    return {
        "rows": int(len(frame)),
        "n_symbols": int(len(g)),
        "first_date": _d(frame["date"].min()),
        "last_date": _d(frame["date"].max()),
        **cal,
        "symbols": {
            str(sym): {
                "first_date": _d(r["min"]),
                "last_date": _d(r["max"]),
                "rows": int(r["size"]),
            }
            for sym, r in g.iterrows()
        },
    }


def coverage_market(frame: pd.DataFrame, monthly: bool = False) -> dict[str, Any]:
    key, series = ("month", "series") if monthly else ("date", "series")
    if frame.empty:
        return {"rows": 0, "series": {}}
    g = frame.groupby(series, sort=True)[key].agg(["min", "max", "size"])
    return {
        "rows": int(len(frame)),
        "first": _d(frame[key].min()),
        "last": _d(frame[key].max()),
        "series": {
            str(s): {"first": _d(r["min"]), "last": _d(r["max"]), "rows": int(r["size"])}
            for s, r in g.iterrows()
        },
    }


def _d(ts: Any) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return str(pd.Timestamp(ts).date())


def not_configured(universe: str, kind: str, hint: str) -> DataValidationError:
    return DataValidationError(
        "universe_not_configured",
        f"the {kind!r} source has no {universe!r} universe: {hint}",
    )


class BaseSource(ABC):
    """Shared behaviour: window and symbol filters over full canonical frames."""

    kind: str = "base"

    # --- what a concrete source provides (full history, canonical, cached) -------------
    @abstractmethod
    def _prices(self, universe: str) -> pd.DataFrame: ...

    @abstractmethod
    def _market(self) -> pd.DataFrame: ...

    @abstractmethod
    def _market_monthly(self) -> pd.DataFrame: ...

    @abstractmethod
    def securities(self) -> pd.DataFrame: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...

    def _where(self, universe: str) -> str:
        """How error messages name a universe's data (files, package...)."""
        return f"the {self.kind!r} source's {universe} universe"

    # --- the public API -------------------------------------------------------------------
    def load_prices(
        self,
        start: DateLike = None,
        end: DateLike = None,
        symbols: Iterable[str] | str | None = None,
        universe: str = "equity",
    ) -> pd.DataFrame:
        check_universe(universe)
        full = self._prices(universe)
        known = full["symbol"].unique()
        chosen = select_symbols(full, symbols, known, self._where(universe))
        return window(chosen, "date", start, end)

    def load_market(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame:
        return window(self._market(), "date", start, end)

    def load_market_monthly(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame:
        lo = to_timestamp(start, "start")
        hi = to_timestamp(end, "end")
        # a month is in [start, end) when its first day is; round start up to a month start
        if lo is not None and lo.day != 1:
            lo = (lo + pd.offsets.MonthBegin(1)).normalize()
        return window(self._market_monthly(), "month", lo, hi)


def security_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SECURITY_COLUMNS})
    out = pd.DataFrame(rows).reindex(columns=list(SECURITY_COLUMNS))
    out = out.astype(object).where(out.notna(), None)
    return out.sort_values("symbol", kind="mergesort").reset_index(drop=True)

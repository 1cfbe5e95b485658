"""The ``yfinance`` source: live daily bars from Yahoo Finance through ``yfinance.download``.

- Prices: ``yfinance.download(tickers, start, end, auto_adjust=False, progress=False,
  group_by="ticker", actions=False)``; both column layouts are handled (``(Ticker, Price)``
  from ``group_by="ticker"`` and ``(Price, Ticker)``, yfinance's default), as well as the
  flat columns of a single-ticker download. ``close`` is Yahoo's raw close, ``adj_close``
  its dividend/split adjusted close. Rows a ticker has no data for (yfinance pads
  multi-ticker downloads to the union of dates) are dropped.
- Calendar (``lib.calendar``): a window ``[start, end)`` is checked against the days the
  universe trades on (equity and the market series: XNYS sessions; cross_asset: weekdays;
  crypto: every day) before anything is downloaded:

  * no trading day in the window (a holiday, a weekend): an empty frame, no download;
  * only sessions that are not complete yet (before today's close, or in the future):
    ``no_data`` at once, no download; bars of incomplete sessions are dropped from a
    longer window (they are intraday prices, not closes);
  * the download empty for every ticker while the window has trading days: ``no_data``
    ("not yet published, network or every ticker unknown?"), naming the days;
  * one ticker empty while others have data: a hole, logged as a warning, when the others
    have data on at most ``ABSENT_TICKER_SESSIONS`` days (a halt or a missing bar: the
    quality check ``prices_missing_symbol_days`` names the ticker and day); ``unknown_ticker``
    (delisted, misspelled or not listed in the window) when they have more, i.e. longer
    than a gap (``prices_gaps``) — the same line the quality checks draw.
- Coverage (``describe``): ``first_date`` = the configured start (``start=`` option, else
  ``DEFAULT_START`` 2000-01-01), ``last_date`` = the last complete XNYS session
  (``calendar.last_complete_session``; crypto: the last complete UTC day), so
  ``beta-pipeline run --source yfinance`` without dates runs through the last trading day.
- ``mkt_level``: ``^GSPC`` Adj Close. ``<name>_level``: the configured ETFs' Adj Close.
- ``rf``: ``^IRX`` (13-week T-bill, annualised percent) converted to a daily simple rate
  ``(1 + irx / 100) ** (1 / 252) - 1`` (treating the quote as an annual effective yield;
  the discount-vs-investment-yield difference is a few basis points a year), put on the
  ^GSPC trading dates (the last quote carried forward at most 7 calendar days).
- Monthly (``load_market_monthly``): derived, not downloaded: ``rf`` = the month's daily rf
  compounded, ``mkt_rf`` = month-end ^GSPC return minus that rf. No SMB/HML from Yahoo.
- Tickers per universe and the market tickers come from the ``yfinance:`` block of a YAML
  config (default ``beta_pipeline/configs/yfinance.yaml``).

The download function is a constructor argument, so tests pass a stub built from local
files; nothing here touches the network unless the real ``yfinance.download`` is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib import calendar
from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources.base import (
    UNIVERSES,
    DateLike,
    canonical_market,
    canonical_prices,
    check_universe,
    empty_market,
    empty_prices,
    normalise_symbols,
    not_configured,
    security_frame,
    to_timestamp,
    window,
)
from beta_pipeline.lib.sources.config import PriceFileSpec, load_config
from beta_pipeline.lib.sources.parsing import _finish_prices
from beta_pipeline.lib.sources.securities import lookup_securities

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "yfinance.yaml"
CONFIG_ENV = "BETA_PIPELINE_YFINANCE_CONFIG"
FIELDS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}
TRADING_DAYS = 252
EARLIEST = "1927-01-01"
#: Documented first day of a run without dates (``describe()["prices"][u]["first_date"]``).
DEFAULT_START = "2000-01-01"
#: A ticker without data while the others have data on more days than this is unknown
#: (the quality checks' ``MAX_GAP_SESSIONS``: a shorter absence is a hole, not an error).
ABSENT_TICKER_SESSIONS = 5

Downloader = Callable[..., pd.DataFrame | None]
Clock = Callable[[], pd.Timestamp]


def trading_days(universe: str, start: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """Days in [start, last] the universe trades on: XNYS sessions for equity (and the
    market), weekdays for cross_asset (FX and futures trade on some US holidays), every
    day for crypto."""
    if universe == "crypto":
        return pd.date_range(start, last, freq="D")
    if universe == "cross_asset":
        return pd.bdate_range(start, last)
    return calendar.sessions(start, last)


def last_complete_day(universe: str, now: pd.Timestamp) -> pd.Timestamp:
    """The newest day whose bar is final at ``now``: the last complete XNYS session, or
    for crypto (UTC days) yesterday in UTC."""
    if universe == "crypto":
        moment = now if now.tzinfo is not None else now.tz_localize("UTC")
        return moment.tz_convert("UTC").tz_localize(None).normalize() - pd.Timedelta(days=1)
    return calendar.last_complete_session(now)


def _span(days: pd.DatetimeIndex) -> str:
    if len(days) == 0:
        return "(none)"
    first, last = str(days[0].date()), str(days[-1].date())
    return first if first == last else f"{first}..{last} ({len(days)} days)"


def _default_download(**kwargs: Any) -> pd.DataFrame | None:  # pragma: no cover - network
    import yfinance

    return yfinance.download(**kwargs)


def split_download(raw: pd.DataFrame | None, tickers: list[str]) -> dict[str, pd.DataFrame]:
    """One frame per ticker (columns Open, High, Low, Close, Adj Close, Volume)."""
    if raw is None or raw.empty:
        return {}
    cols = raw.columns
    out: dict[str, pd.DataFrame] = {}
    if isinstance(cols, pd.MultiIndex):
        lv0 = {str(x) for x in cols.get_level_values(0)}
        price_first = len(lv0 & set(FIELDS)) >= max(1, len(lv0) // 2)
        tick_level = 1 if price_first else 0
        available = {str(t).upper(): t for t in cols.get_level_values(tick_level).unique()}
        for t in tickers:
            key = available.get(t.upper())
            if key is not None:
                out[t] = raw.xs(key, axis=1, level=tick_level)
    elif len(tickers) == 1:
        out[tickers[0]] = raw
    else:
        raise DataValidationError(
            "missing_column",
            f"yfinance returned flat columns {list(cols)[:8]} for {len(tickers)} tickers; "
            "expected a (Ticker, Price) or (Price, Ticker) MultiIndex",
            file="yfinance.download",
            row=1,
        )
    return out


def irx_to_daily(irx_percent: pd.Series) -> pd.Series:
    """^IRX (annualised percent) -> daily simple rate in decimals."""
    return np.power(1.0 + irx_percent.astype("float64") / 100.0, 1.0 / TRADING_DAYS) - 1.0


class YFinanceSource:
    kind = "yfinance"

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        download: Downloader | None = None,
        universes: dict[str, list[str]] | None = None,
        start: DateLike = None,
        clock: Clock | None = None,
    ) -> None:
        ref = config_path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
        cfg = load_config(ref)
        if not cfg.yfinance:  # e.g. a csv config passed along: use the shipped ticker lists
            cfg = load_config(DEFAULT_CONFIG)
        self.config_path: Path | None = cfg.path
        block = cfg.yfinance or {}
        conf_unis = {
            k: normalise_symbols(v) or [] for k, v in (block.get("universes") or {}).items()
        }
        self.universes: dict[str, list[str]] = {
            **conf_unis,
            **{k: normalise_symbols(v) or [] for k, v in (universes or {}).items()},
        }
        allow = block.get("allow_nonpositive", [])
        self.allow_nonpositive: tuple[str, ...] = tuple(normalise_symbols(allow) or [])
        market = block.get("market") or {}
        self.market_ticker: str = str(market.get("mkt_level", "^GSPC"))
        self.rf_ticker: str | None = market.get("rf", "^IRX")
        self.levels: dict[str, str] = {
            str(k): str(v) for k, v in (market.get("levels") or {}).items()
        }
        self._download: Downloader = download or _default_download
        self._memo: dict[tuple[Any, ...], dict[str, pd.DataFrame]] = {}
        first = to_timestamp(start if start is not None else block.get("start"), "start")
        self.start: pd.Timestamp = first if first is not None else pd.Timestamp(DEFAULT_START)
        self._clock: Clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))

    # --- calendar ------------------------------------------------------------------------
    def _expected(
        self, universe: str, lo: pd.Timestamp | None, hi: pd.Timestamp | None
    ) -> pd.DatetimeIndex | None:
        """Complete trading days in [lo, hi) (None for an open window); raises ``no_data``
        when the window's trading days are all still incomplete."""
        if lo is None or hi is None:
            return None
        days = trading_days(universe, lo, hi - pd.Timedelta(days=1))
        final = self._final(universe)
        complete = days[days <= final]
        if len(days) and not len(complete):
            raise DataValidationError(
                "no_data",
                f"no complete trading day in [{lo.date()}, {hi.date()}) yet: {_span(days)} "
                f"not closed (last complete day {final.date()}); nothing downloaded",
                file="yfinance.download",
                date=str(days[0].date()),
            )
        return complete

    def _final(self, universe: str) -> pd.Timestamp:
        """The newest day whose bar is final now (by the source's clock)."""
        return last_complete_day(universe, self._clock())

    def _absent(
        self,
        missing: list[str],
        seen: pd.DatetimeIndex,
        expected: pd.DatetimeIndex | None,
        lo: pd.Timestamp | None,
        hi: pd.Timestamp | None,
        n_tickers: int,
    ) -> None:
        """Raise or warn about tickers without data (module docstring)."""
        where = (
            f"[{lo.date() if lo is not None else '...'}, {hi.date() if hi is not None else '...'})"
        )
        if not len(seen):
            days = _span(expected) if expected is not None else "the whole history"
            raise DataValidationError(
                "no_data",
                f"yfinance returned no data for any of {n_tickers} ticker(s) on {days} in "
                f"{where}: not yet published, no network, or every ticker unknown?",
                file="yfinance.download",
                symbol=",".join(missing),
            )
        if len(seen) > ABSENT_TICKER_SESSIONS:
            raise DataValidationError(
                "unknown_ticker",
                f"yfinance returned no data for {', '.join(missing)} in {where} while other "
                f"tickers have data on {len(seen)} days (delisted, misspelled or not listed "
                "in the window?)",
                file="yfinance.download",
                symbol=",".join(missing),
            )
        log.warning(
            "yfinance: no data for %s on %s while other tickers have data: a hole, not an "
            "error (the quality check prices_missing_symbol_days names it)",
            ", ".join(missing),
            _span(seen),
        )

    # --- download ------------------------------------------------------------------------
    def _fetch(
        self, tickers: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> dict[str, pd.DataFrame]:
        key = (tuple(tickers), start, end)
        if key not in self._memo:
            raw = self._download(
                tickers=tickers if len(tickers) > 1 else tickers[0],
                start=str(start.date()) if start is not None else EARLIEST,
                end=str(end.date()) if end is not None else None,
                auto_adjust=False,
                progress=False,
                group_by="ticker",
                actions=False,
                threads=True,
            )
            got = split_download(raw, tickers)
            if not got:  # not published yet, or no network: ask again next time
                return got
            self._memo[key] = got
        return self._memo[key]

    @staticmethod
    def _bars(frame: pd.DataFrame) -> pd.DataFrame:
        idx = pd.DatetimeIndex(frame.index)
        if idx.tz is not None:
            idx = idx.tz_localize(None)
        out = frame.copy()
        out.index = idx.normalize()
        out.columns = [str(c) for c in out.columns]
        fields = [c for c in FIELDS if c in out.columns]
        return out.loc[~out[fields].isna().all(axis=1)] if fields else out.iloc[0:0]

    # --- prices ----------------------------------------------------------------------------
    def load_prices(
        self,
        start: DateLike = None,
        end: DateLike = None,
        symbols: Iterable[str] | str | None = None,
        universe: str = "equity",
    ) -> pd.DataFrame:
        check_universe(universe)
        lo, hi = to_timestamp(start, "start"), to_timestamp(end, "end")
        tickers = normalise_symbols(symbols)
        if tickers is None:
            tickers = self.universes.get(universe) or []
            if not tickers:
                raise not_configured(
                    universe,
                    self.kind,
                    f"list tickers under yfinance.universes.{universe} in {self.config_path}",
                )
        if not tickers:
            return empty_prices()
        expected = self._expected(universe, lo, hi)
        if expected is not None and not len(expected):
            log.info(
                "yfinance: no %s trading day in [%s, %s): nothing to download",
                universe,
                lo.date(),
                hi.date(),
            )
            return empty_prices()
        got = self._fetch(tickers, lo, hi)
        final = self._final(universe)
        frames, missing = [], []
        for t in tickers:
            bars = self._bars(got[t]) if t in got else None
            if bars is not None:
                bars = bars.loc[bars.index <= final]  # an incomplete session is intraday
                if lo is not None:
                    bars = bars.loc[bars.index >= lo]
                if hi is not None:
                    bars = bars.loc[bars.index < hi]
            if bars is None or bars.empty:
                missing.append(t)
                continue
            frames.append(self._validate(t, bars))
        if missing:
            seen = pd.DatetimeIndex(sorted(set().union(*(f["date"] for f in frames))))
            self._absent(missing, seen, expected, lo, hi, len(tickers))
        frame = canonical_prices(pd.concat(frames, ignore_index=True))
        return window(frame, "date", lo, hi)

    def _validate(self, ticker: str, bars: pd.DataFrame) -> pd.DataFrame:
        label = f"yfinance.download({ticker})"
        for need in ("Close",):
            if need not in bars.columns and "Adj Close" not in bars.columns:
                raise DataValidationError(
                    "missing_column", f"{label} has no {need!r} column", file=label, row=1
                )
        n = len(bars)
        lines = np.arange(1, n + 1, dtype=np.int64)
        dates = bars.index.to_numpy(dtype="datetime64[ns]")
        symbols = np.full(n, ticker, dtype=object)
        values = {
            canon: pd.to_numeric(bars[col], errors="coerce").to_numpy(dtype="float64")
            for col, canon in FIELDS.items()
            if col in bars.columns
        }
        spec = PriceFileSpec(
            path=Path(label), universe="yfinance", allow_nonpositive=self.allow_nonpositive
        )
        parsed = _finish_prices(spec, "yfinance", label, dates, symbols, values, lines, n)
        return parsed.frame.drop(columns="_line")

    # --- market ----------------------------------------------------------------------------
    def load_market(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame:
        lo, hi = to_timestamp(start, "start"), to_timestamp(end, "end")
        tickers = [
            self.market_ticker,
            *([self.rf_ticker] if self.rf_ticker else []),
            *self.levels.values(),
        ]
        expected = self._expected("equity", lo, hi)
        if expected is not None and not len(expected):
            log.info("yfinance: no session in [%s, %s): nothing to download", lo.date(), hi.date())
            return empty_market()
        got = self._fetch(tickers, lo, hi)
        final = self._final("equity")
        parts = []
        mkt_dates = None
        level = self._level(got[self.market_ticker]) if self.market_ticker in got else None
        if level is not None:
            level = level.loc[level.index <= final]
        if level is None or level.empty:
            others = [self._bars(f).index for t, f in got.items() if t != self.market_ticker]
            seen = (
                pd.DatetimeIndex(sorted(set().union(*others))) if others else pd.DatetimeIndex([])
            )
            if not len(seen):
                self._absent([self.market_ticker], seen, expected, lo, hi, len(tickers))
            raise DataValidationError(
                "unknown_ticker",
                f"yfinance returned no data for the market ticker {self.market_ticker} while "
                f"other market tickers have data on {len(seen)} days",
                file="yfinance.download",
                symbol=self.market_ticker,
            )
        mkt_dates = level.index
        parts.append(
            pd.DataFrame({"date": level.index, "series": "mkt_level", "value": level.to_numpy()})
        )
        if self.rf_ticker and self.rf_ticker in got:
            irx = self._bars(got[self.rf_ticker])
            col = "Close" if "Close" in irx.columns else "Adj Close"
            rf = irx_to_daily(irx[col].dropna())
            rf = rf.sort_index().reindex(mkt_dates, method="ffill", tolerance=pd.Timedelta("7D"))
            parts.append(pd.DataFrame({"date": rf.index, "series": "rf", "value": rf.to_numpy()}))
        for name, ticker in self.levels.items():
            if ticker in got:
                s = self._level(got[ticker])
                s = s.loc[s.index <= final]
                parts.append(
                    pd.DataFrame(
                        {"date": s.index, "series": f"{name}_level", "value": s.to_numpy()}
                    )
                )
        return window(canonical_market(pd.concat(parts, ignore_index=True)), "date", lo, hi)

    def _level(self, frame: pd.DataFrame) -> pd.Series:
        bars = self._bars(frame)
        col = "Adj Close" if "Adj Close" in bars.columns else "Close"
        return pd.to_numeric(bars[col], errors="coerce").dropna()

    def load_market_monthly(self, start: DateLike = None, end: DateLike = None) -> pd.DataFrame:
        lo, hi = to_timestamp(start, "start"), to_timestamp(end, "end")
        first = lo if lo is None or lo.day == 1 else (lo + pd.offsets.MonthBegin(1)).normalize()
        if first is not None and hi is not None and first >= hi:
            return empty_market(monthly=True)  # no month starts in the window
        fetch_lo = None if lo is None else (lo - pd.offsets.MonthBegin(2)).normalize()
        daily = self.load_market(fetch_lo, hi)
        if daily.empty:
            return empty_market(monthly=True)
        wide = daily.pivot(index="date", columns="series", values="value")
        month = wide.index.to_period("M").to_timestamp()
        parts = []
        rf_m = None
        if "rf" in wide:
            rf_m = np.expm1(np.log1p(wide["rf"]).groupby(month).sum(min_count=1))
            parts.append(pd.DataFrame({"month": rf_m.index, "series": "rf", "value": rf_m.values}))
        if "mkt_level" in wide:
            last = wide["mkt_level"].dropna().groupby(month[wide["mkt_level"].notna()]).last()
            mkt = last.pct_change().iloc[1:]
            ex = mkt - (rf_m.reindex(mkt.index).fillna(0.0) if rf_m is not None else 0.0)
            parts.append(pd.DataFrame({"month": ex.index, "series": "mkt_rf", "value": ex.values}))
        frame = canonical_market(pd.concat(parts, ignore_index=True), monthly=True)
        return window(frame, "month", first, hi)

    # --- metadata ----------------------------------------------------------------------------
    def securities(self) -> pd.DataFrame:
        rows = []
        for universe, tickers in self.universes.items():
            rows.extend(lookup_securities(sorted(tickers), universe, "yfinance"))
        return security_frame(rows).drop_duplicates("symbol").reset_index(drop=True)

    def describe(self, now: pd.Timestamp | None = None) -> dict[str, Any]:
        """Settings and the default range: ``first_date`` the configured start,
        ``last_date`` the last complete trading day at ``now`` (default: the clock)."""
        moment = pd.Timestamp(now) if now is not None else self._clock()
        prices: dict[str, Any] = {}
        for u in UNIVERSES:
            configured = bool(self.universes.get(u))
            prices[u] = {
                "configured": configured,
                **({"symbols": self.universes[u]} if configured else {}),
                "first_date": str(self.start.date()) if configured else None,
                "last_date": str(last_complete_day(u, moment).date()) if configured else None,
                "calendar": "every day (UTC)"
                if u == "crypto"
                else ("weekdays" if u == "cross_asset" else calendar.EXCHANGE),
            }
        return {
            "kind": self.kind,
            "config": str(self.config_path),
            "prices": prices,
            "market": {
                "mkt_level": f"{self.market_ticker} Adj Close",
                "rf": f"{self.rf_ticker}: (1 + irx/100) ** (1/{TRADING_DAYS}) - 1, on "
                f"{self.market_ticker} dates",
                **{f"{k}_level": f"{v} Adj Close" for k, v in self.levels.items()},
            },
            "market_monthly": "derived: rf compounded per month; mkt_rf = month-end "
            "mkt_level return - rf",
            "coverage": f"live download: first_date is the configured start (default "
            f"{DEFAULT_START}), last_date the last complete trading day "
            f"({calendar.EXCHANGE} session after its close)",
        }

"""The ``yfinance`` source: live daily bars from Yahoo Finance through ``yfinance.download``.

- Prices: ``yfinance.download(tickers, start, end, auto_adjust=False, progress=False,
  group_by="ticker", actions=False)``; both column layouts are handled (``(Ticker, Price)``
  from ``group_by="ticker"`` and ``(Price, Ticker)``, yfinance's default), as well as the
  flat columns of a single-ticker download. ``close`` is Yahoo's raw close, ``adj_close``
  its dividend/split adjusted close. Rows a ticker has no data for (yfinance pads
  multi-ticker downloads to the union of dates) are dropped; a requested ticker with no
  data at all is ``unknown_ticker``.
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

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources.base import (
    UNIVERSES,
    DateLike,
    canonical_market,
    canonical_prices,
    check_universe,
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

Downloader = Callable[..., pd.DataFrame | None]


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
            self._memo[key] = split_download(raw, tickers)
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
        got = self._fetch(tickers, lo, hi)
        frames, missing = [], []
        for t in tickers:
            bars = self._bars(got[t]) if t in got else None
            if bars is None or bars.empty:
                missing.append(t)
                continue
            frames.append(self._validate(t, bars))
        if missing:
            raise DataValidationError(
                "unknown_ticker",
                f"yfinance returned no data for {', '.join(missing)} in "
                f"[{lo.date() if lo is not None else '...'}, "
                f"{hi.date() if hi is not None else '...'}) (delisted or misspelled ticker?)",
                file="yfinance.download",
                symbol=",".join(missing),
            )
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
        got = self._fetch(tickers, lo, hi)
        parts = []
        mkt_dates = None
        if self.market_ticker in got:
            level = self._level(got[self.market_ticker])
            mkt_dates = level.index
            parts.append(
                pd.DataFrame(
                    {"date": level.index, "series": "mkt_level", "value": level.to_numpy()}
                )
            )
        else:
            raise DataValidationError(
                "unknown_ticker",
                f"yfinance returned no data for {self.market_ticker}",
                file="yfinance.download",
                symbol=self.market_ticker,
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
        fetch_lo = None if lo is None else (lo - pd.offsets.MonthBegin(2)).normalize()
        daily = self.load_market(fetch_lo, hi)
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
        if lo is not None and lo.day != 1:
            lo = (lo + pd.offsets.MonthBegin(1)).normalize()
        return window(frame, "month", lo, hi)

    # --- metadata ----------------------------------------------------------------------------
    def securities(self) -> pd.DataFrame:
        rows = []
        for universe, tickers in self.universes.items():
            rows.extend(lookup_securities(sorted(tickers), universe, "yfinance"))
        return security_frame(rows).drop_duplicates("symbol").reset_index(drop=True)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": str(self.config_path),
            "prices": {
                u: (
                    {"configured": True, "symbols": self.universes[u]}
                    if self.universes.get(u)
                    else {"configured": False}
                )
                for u in UNIVERSES
            },
            "market": {
                "mkt_level": f"{self.market_ticker} Adj Close",
                "rf": f"{self.rf_ticker}: (1 + irx/100) ** (1/{TRADING_DAYS}) - 1, on "
                f"{self.market_ticker} dates",
                **{f"{k}_level": f"{v} Adj Close" for k, v in self.levels.items()},
            },
            "market_monthly": "derived: rf compounded per month; mkt_rf = month-end "
            "mkt_level return - rf",
            "coverage": "live download: first/last dates are known only after a load",
        }

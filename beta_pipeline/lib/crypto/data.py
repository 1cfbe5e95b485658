"""Data preparation of the crypto and cross-asset study: month-end resampling, the choice of
market series, the WTI treatment, and the wide panel the models read.

Conventions
-----------
* Prices: ``adj_close`` where present, else ``close`` (crypto has no adjustment; the ETFs'
  closes in the shared files are already dividend-adjusted).
* Month-end price: the last positive price of the calendar month (7-day calendar for crypto,
  exchange days for the rest). A month counts only when it is complete: the series has a
  later observation, or its last observation is within ``COMPLETE_DAYS`` days of the month
  end (a weekend plus a holiday). Crypto data ending 2024-12-07 therefore ends in 2024-11.
* Monthly log return ``ln(P_m / P_{m-1})`` between consecutive months; simple return
  ``exp(log_ret) - 1``. ``month`` is the first day of the month (as in ``returns.monthly``).
* Non-positive prices (WTI front-month future CL=F settled at -37.63 on 2020-04-20): with
  ``nonpositive="drop"`` (default) non-positive daily prints are dropped before resampling,
  so a month-end is always the last *positive* price of the month. April 2020 ends on
  2020-04-30 at 18.84, so the monthly CL=F series is not affected in the shared data; the
  rule only matters if a month ended on a negative print. ``"error"`` refuses them instead.
  The quality checks list every non-positive print either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError

COINS: tuple[str, ...] = ("BTC", "ETH", "LTC", "BCH")
MARKETS: tuple[str, ...] = ("FIAT", "EQUITY", "GOLD", "ENERGY")
#: Default series of each market (Yahoo tickers, as in the csv and yfinance universes).
DEFAULT_MARKET_SERIES: dict[str, str] = {
    "FIAT": "DX-Y.NYB",  # US dollar index (alternative EURUSD=X, sign flipped economically)
    "EQUITY": "SPY",  # S&P 500 ETF (to 2026; ^GSPC in the shared file ends 2023-12)
    "GOLD": "GC=F",  # gold futures (alternative GLD)
    "ENERGY": "CL=F",  # WTI crude front month (alternative XLE, the energy-sector ETF)
}
#: A month whose last observation is this close to its end is complete.
COMPLETE_DAYS = 3
NONPOSITIVE_POLICIES: tuple[str, ...] = ("drop", "error")

RETURN_COLUMNS: tuple[str, ...] = (
    "month",
    "asset",
    "symbol",
    "role",
    "close",
    "close_date",
    "log_ret",
    "ret",
)


def coin_name(symbol: str) -> str:
    """``BTC-USD`` -> ``BTC``."""
    s = str(symbol).upper()
    return s[:-4] if s.endswith("-USD") else s


@dataclass(frozen=True)
class MarketChoice:
    """Which price series stands for each market (configurable)."""

    series: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MARKET_SERIES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.series) - set(MARKETS))
        if unknown:
            raise ValueError(f"unknown market(s) {unknown}; use {', '.join(MARKETS)}")

    @property
    def symbols(self) -> list[str]:
        return [str(self.series[m]).upper() for m in MARKETS if m in self.series]

    def market_of(self) -> dict[str, str]:
        return {str(v).upper(): k for k, v in self.series.items()}


def price_column(prices: pd.DataFrame) -> pd.Series:
    """``adj_close`` where present, else ``close``."""
    close = pd.to_numeric(prices["close"], errors="coerce")
    if "adj_close" in prices.columns:
        adj = pd.to_numeric(prices["adj_close"], errors="coerce")
        return adj.where(adj.notna(), close)
    return close


def month_end_prices(
    prices: pd.DataFrame, nonpositive: str = "drop"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Month-end prices per symbol of a canonical price frame.

    Returns ``(month_ends, dropped)``: ``month_ends`` has ``month, symbol, close,
    close_date`` for complete months; ``dropped`` the non-positive prints left out
    (``date, symbol, price``). ``nonpositive="error"`` raises on any such print.
    """
    if nonpositive not in NONPOSITIVE_POLICIES:
        raise ValueError(f"nonpositive={nonpositive!r}: use one of {NONPOSITIVE_POLICIES}")
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(prices["date"]).to_numpy(),
            "symbol": prices["symbol"].astype(str).str.upper().to_numpy(),
            "price": price_column(prices).to_numpy(dtype="float64"),
        }
    ).dropna(subset=["price"])
    bad = frame["price"] <= 0
    dropped = frame.loc[bad].reset_index(drop=True)
    if bad.any() and nonpositive == "error":
        row = dropped.iloc[0]
        raise DataValidationError(
            "nonpositive_price",
            f"{len(dropped)} non-positive price(s), first {row['symbol']} "
            f"{row['date'].date()} = {row['price']}; use nonpositive='drop' or another series",
            symbol=str(row["symbol"]),
            date=str(row["date"].date()),
        )
    frame = frame.loc[~bad].sort_values(["symbol", "date"], kind="mergesort")
    if frame.empty:
        empty = pd.DataFrame(
            {
                "month": pd.Series(dtype="datetime64[ns]"),
                "symbol": pd.Series(dtype=object),
                "close": pd.Series(dtype="float64"),
                "close_date": pd.Series(dtype="datetime64[ns]"),
            }
        )
        return empty, dropped
    frame["month"] = frame["date"].dt.to_period("M").dt.to_timestamp()
    last = frame.groupby(["symbol", "month"], sort=True).tail(1)
    last_obs = frame.groupby("symbol")["date"].max()
    month_end = last["month"] + pd.offsets.MonthEnd(0)
    later = last["date"].to_numpy() < last["symbol"].map(last_obs).to_numpy()
    near_end = (month_end - last["date"]).dt.days.to_numpy() <= COMPLETE_DAYS
    out = last.loc[later | near_end, ["month", "symbol", "price", "date"]]
    out = out.rename(columns={"price": "close", "date": "close_date"})
    return out.reset_index(drop=True), dropped


def monthly_log_returns(month_ends: pd.DataFrame) -> pd.DataFrame:
    """``log_ret`` and ``ret`` between consecutive complete months of each symbol."""
    out = month_ends.sort_values(["symbol", "month"], kind="mergesort").copy()
    prev_close = out.groupby("symbol")["close"].shift(1)
    prev_month = out.groupby("symbol")["month"].shift(1)
    consecutive = prev_month == (out["month"] - pd.offsets.MonthBegin(1))
    out["log_ret"] = np.where(consecutive, np.log(out["close"] / prev_close), np.nan)
    out["ret"] = np.expm1(out["log_ret"])
    return out.dropna(subset=["log_ret"]).reset_index(drop=True)


def crypto_monthly_returns(
    crypto_prices: pd.DataFrame,
    cross_asset_prices: pd.DataFrame,
    choice: MarketChoice | None = None,
    nonpositive: str = "drop",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The study's monthly returns in long format (``RETURN_COLUMNS``) and a summary.

    Coins are every symbol of ``crypto_prices`` (``asset`` = ``BTC`` for ``BTC-USD``);
    markets the series ``choice`` maps to FIAT, EQUITY, GOLD and ENERGY (a chosen series
    missing from ``cross_asset_prices`` is an error naming the symbols available).
    """
    choice = choice or MarketChoice()
    xa = cross_asset_prices.assign(symbol=cross_asset_prices["symbol"].astype(str).str.upper())
    available = set(xa["symbol"].unique())
    missing = [s for s in choice.symbols if s not in available]
    if missing:
        raise DataValidationError(
            "unknown_ticker",
            f"market series {', '.join(missing)} not in the cross-asset prices; available: "
            f"{', '.join(sorted(available)) or '(none)'}",
            symbol=",".join(missing),
        )
    xa = xa.loc[xa["symbol"].isin(choice.symbols)]
    parts, dropped_all = [], []
    for role, frame in (("coin", crypto_prices), ("market", xa)):
        ends, dropped = month_end_prices(frame, nonpositive)
        dropped_all.append(dropped)
        rets = monthly_log_returns(ends)
        if role == "coin":
            rets["asset"] = rets["symbol"].map(coin_name)
        else:
            rets["asset"] = rets["symbol"].map(choice.market_of())
        rets["role"] = role
        parts.append(rets)
    out = pd.concat(parts, ignore_index=True).loc[:, list(RETURN_COLUMNS)]
    out = out.sort_values(["month", "role", "asset"], kind="mergesort").reset_index(drop=True)
    dropped = pd.concat(dropped_all, ignore_index=True)
    span = out.groupby("asset")["month"].agg(["min", "max", "size"])
    summary = {
        "series": {m: choice.series[m] for m in MARKETS if m in choice.series},
        "nonpositive_dropped": [
            f"{r.symbol} {r.date.date()} {r.price:g}" for r in dropped.itertuples()
        ],
        "span": {
            a: f"{r['min']:%Y-%m}..{r['max']:%Y-%m} ({int(r['size'])})" for a, r in span.iterrows()
        },
    }
    return out, summary


def wide_returns(long: pd.DataFrame, value: str = "log_ret") -> pd.DataFrame:
    """Months x assets, on a gap-free monthly index from the first to the last month."""
    if long.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="month"))
    wide = long.pivot_table(index="month", columns="asset", values=value, aggfunc="first")
    full = pd.date_range(wide.index.min(), wide.index.max(), freq="MS", name="month")
    wide = wide.reindex(full)
    wide.columns.name = None
    return wide


def common_sample(wide: pd.DataFrame, coins: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Rows from the first month where every coin has a return (the report's sample)."""
    have = wide.reindex(columns=list(coins)).notna().all(axis=1)
    if not have.any():
        return wide.iloc[0:0]
    return wide.loc[have.idxmax():]


def monthly_rf(factors: pd.DataFrame, months: pd.DatetimeIndex) -> tuple[pd.Series, int]:
    """Monthly risk-free rate on ``months`` from a long (month, series, value) frame; a month
    without its rf takes the last earlier value (never a later one), months before the first
    rf take 0. Returns (rf, months filled)."""
    rf = factors.loc[factors["series"] == "rf"].set_index("month")["value"].sort_index()
    if rf.empty:
        return pd.Series(0.0, index=months), len(months)
    filled = int(rf.reindex(months).isna().sum())
    known = rf.reindex(rf.index.union(months)).ffill().reindex(months)
    return known.fillna(0.0), filled


# --- which sources can serve the study ----------------------------------------------------------

STUDY_UNIVERSES: tuple[str, ...] = ("crypto", "cross_asset")
CONFIGURE_HINT = (
    "configure a source that has both: the csv source, whose YAML lists files under "
    "'universes: crypto:' and 'universes: cross_asset:' (the shipped 'shared_data' config reads "
    "../shared/data/crypto_daily.csv.gz and cross_asset_daily.csv.gz): "
    "`beta-pipeline run --select group:crypto --source csv --config shared_data`; or the "
    "yfinance source (needs internet; tickers under yfinance.universes.crypto and "
    "cross_asset in beta_pipeline/configs/yfinance.yaml): "
    "`beta-pipeline run --select group:crypto --source yfinance`. In the environment: "
    "BETA_PIPELINE_SOURCE=csv BETA_PIPELINE_CSV_CONFIG=shared_data (or yfinance)."
)


def missing_universes(source: Any) -> list[str]:
    """The study's universes (crypto, cross_asset) that ``source`` does not configure.

    Decided without reading data: the embedded source has neither; the csv source's config
    and the yfinance source's ticker lists say which they list.
    """
    if getattr(source, "kind", "") == "embedded":
        return list(STUDY_UNIVERSES)
    config = getattr(source, "config", None)
    universes = getattr(config, "universes", None) if config is not None else None
    if universes is None:
        universes = getattr(source, "universes", None)
    if not isinstance(universes, Mapping):
        return []  # an unknown source kind: let loading tell
    return [u for u in STUDY_UNIVERSES if not universes.get(u)]


def study_source_error(source: Any) -> str | None:
    """One message saying what is missing and how to configure it, or None when the source
    lists both universes."""
    missing = missing_universes(source)
    if not missing:
        return None
    kind = getattr(source, "kind", "?")
    why = (
        " (no PyPI package ships crypto, FX, gold or futures prices)" if kind == "embedded" else ""
    )
    return (
        f"the crypto group needs crypto and cross-asset prices, but the {kind!r} source has no "
        f"{' and no '.join(repr(u) for u in missing)} universe{why}; {CONFIGURE_HINT}"
    )


def allowed_nonpositive(source: Any) -> tuple[str, ...]:
    """Symbols whose non-positive prices the source lets through ("*": any), for the quality
    rule that lists them as warnings rather than errors."""
    if hasattr(source, "allow_nonpositive"):  # yfinance
        return tuple(source.allow_nonpositive)
    config = getattr(source, "config", None)
    specs = getattr(config, "universes", {}).get("cross_asset", []) if config else []
    out: list[str] = []
    for spec in specs:
        allow = getattr(spec, "allow_nonpositive", False)
        if allow is True:
            return ("*",)
        if allow:
            out.extend(str(s).upper() for s in allow)
    return tuple(dict.fromkeys(out)) or ("CL=F",)

"""Daily and monthly returns from canonical price and market frames (no look-ahead).

A return dated t uses prices at t and at the symbol's previous observation only, so a
change of prices after t can never change a return dated t or earlier.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.schema import (
    DAILY_RETURN_COLUMNS,
    MARKET_LEVEL,
    MONTHLY_RETURN_COLUMNS,
    RISK_FREE,
)

#: A return is only measured from a previous price at most this many weekdays back; the
#: same number is the trailing window of the ``daily_returns`` partition mapping, so an
#: incremental run and a full backfill give identical rows.
MAX_LOOKBACK_WEEKDAYS = 10

log = logging.getLogger(__name__)


def market_returns(market: pd.DataFrame, source: str = "auto") -> pd.DataFrame:
    """Daily market return, risk-free rate and market excess return per date.

    ``market`` is the long raw.market frame (date, series, value). ``source`` picks the
    market return: ``"index"`` (simple return of ``mkt_level``), ``"factor"`` (``mkt_rf``
    + ``rf``) or ``"auto"`` (index when present, else factor). Missing ``rf`` counts as 0
    only when the source provides no risk-free series at all.
    """
    wide = market.pivot_table(index="date", columns="series", values="value", aggfunc="first")
    wide = wide.sort_index()
    has_index = MARKET_LEVEL in wide.columns and wide[MARKET_LEVEL].notna().any()
    has_factor = "mkt_rf" in wide.columns and wide["mkt_rf"].notna().any()
    if source == "auto":
        source = "index" if has_index else "factor"
    rf = wide[RISK_FREE] if RISK_FREE in wide.columns else pd.Series(0.0, index=wide.index)
    if source == "index":
        if not has_index:
            raise DataValidationError("market_series", "no 'mkt_level' series in raw.market")
        level = wide[MARKET_LEVEL].dropna()
        if (level <= 0).any():
            bad = level[level <= 0].index[0]
            raise DataValidationError(
                "positive_price", "market level must be > 0", date=str(bad.date())
            )
        mkt = level.pct_change(fill_method=None)
        out = pd.DataFrame({"mkt": mkt})
        out["rf"] = rf.reindex(out.index)
        out["mkt_excess"] = out["mkt"] - out["rf"]
    elif source == "factor":
        if not has_factor:
            raise DataValidationError("market_series", "no 'mkt_rf' series in raw.market")
        mkt_rf = wide["mkt_rf"].dropna()
        out = pd.DataFrame({"mkt_excess": mkt_rf})
        out["rf"] = rf.reindex(out.index)
        out["mkt"] = out["mkt_excess"] + out["rf"]
    else:
        raise ValueError(f"unknown market source {source!r}: use 'auto', 'index' or 'factor'")
    out.index.name = "date"
    return out.dropna(subset=["mkt_excess"])


def daily_returns(
    prices: pd.DataFrame,
    market: pd.DataFrame,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    market_source: str = "auto",
    max_lookback_weekdays: int = MAX_LOOKBACK_WEEKDAYS,
) -> pd.DataFrame:
    """Daily simple and log returns of ``adj_close`` with excess returns.

    Prices before ``start`` serve only as the previous price of the first returns; rows are
    returned for ``start <= date < end``. A return needs a previous price no older than
    ``max_lookback_weekdays`` weekdays; the first price after a longer gap (or the first
    price of a newly listed symbol) gets no return row, nor does a price whose previous price
    came from another source kind (``source`` column, see :func:`source_kind`; logged as a
    warning, listed by :func:`cross_source_pairs`). Rows whose date has no market
    return are kept with NaN market columns only if the market data ends earlier: they are
    dropped, and the caller's quality check reports the missing coverage.
    """
    if prices.empty:
        return pd.DataFrame(columns=list(DAILY_RETURN_COLUMNS))
    cols = ["date", "symbol", "adj_close"] + (["source"] if "source" in prices.columns else [])
    px = prices.loc[:, cols].dropna(subset=["adj_close"])
    if (px["adj_close"] <= 0).any():
        bad = px.loc[px["adj_close"] <= 0].iloc[0]
        raise DataValidationError(
            "positive_price",
            f"adj_close {bad['adj_close']} <= 0: a simple and a log return are undefined",
            symbol=str(bad["symbol"]),
            date=str(pd.Timestamp(bad["date"]).date()),
        )
    px = px.sort_values(["symbol", "date"], kind="mergesort")
    prev_close = px.groupby("symbol", sort=False)["adj_close"].shift(1)
    prev_date = px.groupby("symbol", sort=False)["date"].shift(1)
    out = pd.DataFrame(
        {
            "date": px["date"].to_numpy(),
            "symbol": px["symbol"].to_numpy(),
            "prev_date": prev_date.to_numpy(),
            "ret": (px["adj_close"] / prev_close - 1.0).to_numpy(),
        }
    )
    valid = out["prev_date"].notna().to_numpy()
    if "source" in px.columns:
        # never a return from one source's price to another's (a warehouse filled from two
        # sources: csv up to 2016, embedded after, gave GE +456 % on the seam)
        crossing = valid & _changes_source(px)
        if crossing.any():
            _warn_cross_source(px, out, crossing)
            valid &= ~crossing
    gap = np.zeros(len(out), dtype=np.int64)
    gap[valid] = np.busday_count(
        out.loc[valid, "prev_date"].to_numpy().astype("datetime64[D]"),
        out.loc[valid, "date"].to_numpy().astype("datetime64[D]"),
    )
    out = out.loc[valid & (gap <= max_lookback_weekdays)]
    if start is not None:
        out = out.loc[out["date"] >= pd.Timestamp(start)]
    if end is not None:
        out = out.loc[out["date"] < pd.Timestamp(end)]
    out = out.assign(log_ret=np.log1p(out["ret"]))
    if out.empty:
        # no previous price in reach (e.g. the first partition run alone): nothing needs a
        # market return, which may not exist yet either (one index level, no change)
        return pd.DataFrame(columns=list(DAILY_RETURN_COLUMNS))
    mkt = market_returns(market, market_source) if not market.empty else None
    if mkt is None or mkt.empty:
        raise DataValidationError("market_coverage", "no market returns for the requested dates")
    out = out.merge(mkt[["rf", "mkt_excess"]], left_on="date", right_index=True, how="inner")
    out["ret_excess"] = out["ret"] - out["rf"].fillna(0.0)
    out = out.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
    return out.loc[:, list(DAILY_RETURN_COLUMNS)]


def source_kind(source: pd.Series) -> pd.Series:
    """The source kind of ``raw.prices.source`` values: ``csv:a.csv`` -> ``csv``.

    The files of one csv config are one source (a history split into yearly files keeps the
    returns across its seams); a warehouse holds one csv config at a time (source binding).
    """
    return source.astype("string").str.split(":", n=1).str[0].fillna("")


def cross_source_pairs(prices: pd.DataFrame) -> pd.DataFrame:
    """(symbol, date, prev_date, source, prev_source) of every price whose previous price of
    the same symbol came from another source kind: the returns :func:`daily_returns` drops."""
    columns = ["symbol", "date", "prev_date", "source", "prev_source"]
    if prices.empty or "source" not in prices.columns:
        return pd.DataFrame(columns=columns)
    px = prices.dropna(subset=["adj_close"]).sort_values(["symbol", "date"], kind="mergesort")
    by = px.groupby("symbol", sort=False)
    out = px.assign(prev_date=by["date"].shift(1), prev_source=by["source"].shift(1))
    return out.loc[_changes_source(px), columns].reset_index(drop=True)


def _changes_source(px: pd.DataFrame) -> np.ndarray:
    """Per row of ``px`` (sorted by symbol, date): the symbol's previous row has another
    source kind (False on a symbol's first row)."""
    codes, uniques = pd.factorize(px["source"])  # a few distinct values: vectorised per code
    kinds = pd.factorize(source_kind(pd.Series(uniques, dtype=object)))[0]
    kind = np.where(codes >= 0, kinds[np.maximum(codes, 0)] if len(kinds) else -1, -1)
    symbol = pd.factorize(px["symbol"])[0]
    out = np.zeros(len(px), dtype=bool)
    out[1:] = (symbol[1:] == symbol[:-1]) & (kind[1:] != kind[:-1])
    return out


def _warn_cross_source(px: pd.DataFrame, out: pd.DataFrame, crossing: np.ndarray) -> None:
    first = np.flatnonzero(crossing)[0]
    prev_source = px["source"].groupby(px["symbol"], sort=False).shift(1).to_numpy()
    log.warning(
        "daily_returns: %d return(s) not computed because the previous price comes from "
        "another source (first: %s on %s, %s after %s on %s); one warehouse should hold one "
        "source (beta-pipeline binds it on the first ingestion)",
        int(crossing.sum()),
        out["symbol"].iloc[first],
        pd.Timestamp(out["date"].iloc[first]).date(),
        px["source"].iloc[first],
        prev_source[first],
        pd.Timestamp(out["prev_date"].iloc[first]).date(),
    )


def _compound(frame: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """(1 + r).prod() - 1 per group, vectorised through sums of log1p."""
    return np.expm1(np.log1p(frame[column]).groupby([frame[k] for k in keys]).sum())


def monthly_returns(daily: pd.DataFrame) -> pd.DataFrame:
    """Compound daily returns into calendar months (``month`` = first day of the month).

    The market and risk-free legs are compounded over every trading day of the month seen
    in the panel (one value per date), so all symbols share the same monthly market return
    even when a symbol misses days.
    """
    if daily.empty:
        return pd.DataFrame(columns=list(MONTHLY_RETURN_COLUMNS))
    d = daily.assign(
        month=daily["date"].dt.to_period("M").dt.to_timestamp(),
        rf=daily["ret"] - daily["ret_excess"],
    )
    d["mkt"] = d["mkt_excess"] + d["rf"]
    per_day = d.drop_duplicates("date")
    mkt = pd.DataFrame(
        {"mkt": _compound(per_day, ["month"], "mkt"), "rf": _compound(per_day, ["month"], "rf")}
    )
    out = pd.DataFrame(
        {
            "ret": _compound(d, ["month", "symbol"], "ret"),
            "n_days": d.groupby(["month", "symbol"])["ret"].size(),
        }
    ).reset_index()
    out = out.merge(mkt, left_on="month", right_index=True, how="left")
    out["log_ret"] = np.log1p(out["ret"])
    out["ret_excess"] = out["ret"] - out["rf"]
    out["mkt_excess"] = out["mkt"] - out["rf"]
    out = out.sort_values(["month", "symbol"], kind="mergesort").reset_index(drop=True)
    return out.loc[:, list(MONTHLY_RETURN_COLUMNS)]

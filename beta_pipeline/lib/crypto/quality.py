"""Quality rules of the crypto and cross-asset prices and of the study's monthly panel.

Pure pandas; each function returns :class:`~beta_pipeline.lib.quality.CheckOutcome` objects
(the same type the stock pipeline's checks record in ``quality.check_results``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from beta_pipeline.lib.crypto.data import price_column
from beta_pipeline.lib.quality.outcome import CheckOutcome, make_rows

#: Crypto trades every calendar day: consecutive observations more than 1 day apart are gaps.
CRYPTO_MAX_GAP_DAYS = 1
#: Exchange-traded series: consecutive observations more than 5 weekdays apart are gaps.
EXCHANGE_MAX_GAP_WEEKDAYS = 5


def _keys_unique(frame: pd.DataFrame, name: str) -> CheckOutcome:
    dup = frame.duplicated(["symbol", "date"], keep=False)
    n = int(dup.sum())
    if not n:
        return CheckOutcome(name, True, "error", 0, "one row per (symbol, date)")
    rows = frame.loc[dup, ["symbol", "date"]].assign(value=np.nan, reason="duplicate key")
    return CheckOutcome(
        name, False, "error", n, f"{n} rows share their (symbol, date)", make_rows(rows), n
    )


def _nonpositive(
    frame: pd.DataFrame, name: str, allowed: Iterable[str], want_allowed: bool
) -> CheckOutcome:
    allowed_set = {s.upper() for s in allowed}
    price = price_column(frame)
    bad = (price <= 0).to_numpy()
    symbols = frame["symbol"].astype(str).str.upper()
    is_allowed = (
        np.ones(len(frame), dtype=bool) if "*" in allowed_set
        else symbols.isin(allowed_set).to_numpy()
    )
    pick = bad & (is_allowed if want_allowed else ~is_allowed)
    n = int(pick.sum())
    severity = "warn" if want_allowed else "error"
    if not n:
        what = "allowed symbols" if want_allowed else "symbols"
        return CheckOutcome(name, True, severity, 0, f"no non-positive price of {what}")
    rows = pd.DataFrame(
        {
            "symbol": frame["symbol"].to_numpy()[pick],
            "date": pd.to_datetime(frame["date"]).to_numpy()[pick],
            "value": price.to_numpy()[pick],
            "reason": (
                "non-positive print of an allowed symbol: dropped before month-end resampling"
                if want_allowed
                else "price <= 0"
            ),
        }
    )
    first = rows.iloc[0]
    return CheckOutcome(
        name,
        False,
        severity,
        n,
        f"{n} non-positive price(s), first {first['symbol']} {first['date']:%Y-%m-%d} = "
        f"{first['value']:g}" + (" (allowed; dropped before resampling)" if want_allowed else ""),
        make_rows(rows),
        n,
    )


def _gaps(frame: pd.DataFrame, name: str, calendar_days: bool, max_gap: int) -> CheckOutcome:
    keyed = frame.sort_values(["symbol", "date"], kind="mergesort")
    days = pd.to_datetime(keyed["date"]).to_numpy().astype("datetime64[D]")
    symbols = keyed["symbol"].to_numpy()
    same = np.r_[False, symbols[1:] == symbols[:-1]]
    idx = np.flatnonzero(same)
    if calendar_days:
        apart = (days[idx] - days[idx - 1]).astype(int)
        unit = "days"
    else:
        apart = np.busday_count(days[idx - 1], days[idx])
        unit = "weekdays"
    over = apart > max_gap
    bad, size = idx[over], apart[over]
    n = len(bad)
    if not n:
        return CheckOutcome(
            name, True, "warn", 0, f"no observations more than {max_gap} {unit} apart"
        )
    rows = pd.DataFrame(
        {
            "symbol": symbols[bad],
            "date": days[bad - 1].astype("datetime64[ns]"),
            "end_date": days[bad].astype("datetime64[ns]"),
            "value": size.astype("float64"),
            "reason": [f"next observation {k} {unit} later" for k in size],
        }
    )
    worst = rows.iloc[int(np.argmax(size))]
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} gap(s) of more than {max_gap} {unit} in {rows['symbol'].nunique()} symbol(s); "
        f"longest {int(size.max())} {unit} ({worst['symbol']} {worst['date']:%Y-%m-%d} to "
        f"{worst['end_date']:%Y-%m-%d})",
        make_rows(rows, with_end_date=True),
        n,
    )


def check_crypto_prices(prices: pd.DataFrame, prefix: str = "crypto_prices") -> list[CheckOutcome]:
    """Keys unique (error), prices positive (error), calendar-day gaps (warn)."""
    return [
        _keys_unique(prices, f"{prefix}_keys_unique"),
        _nonpositive(prices, f"{prefix}_positive", (), want_allowed=False),
        _gaps(prices, f"{prefix}_gaps", calendar_days=True, max_gap=CRYPTO_MAX_GAP_DAYS),
    ]


def check_cross_asset_prices(
    prices: pd.DataFrame,
    allow_nonpositive: Iterable[str] = ("CL=F",),
    prefix: str = "cross_asset_prices",
) -> list[CheckOutcome]:
    """Keys unique (error), prices positive except ``allow_nonpositive`` (error), the allowed
    symbols' non-positive prints (warn: dropped before resampling), weekday gaps (warn)."""
    allowed = tuple(allow_nonpositive)
    return [
        _keys_unique(prices, f"{prefix}_keys_unique"),
        _nonpositive(prices, f"{prefix}_positive", allowed, want_allowed=False),
        _nonpositive(prices, f"{prefix}_nonpositive_allowed", allowed, want_allowed=True),
        _gaps(
            prices, f"{prefix}_gaps", calendar_days=False, max_gap=EXCHANGE_MAX_GAP_WEEKDAYS
        ),
    ]


def check_monthly_panel(
    wide: pd.DataFrame, assets: Iterable[str], name: str = "crypto_monthly_returns_complete"
) -> CheckOutcome:
    """Every asset has a return in every month of the study sample (warn otherwise)."""
    assets = list(assets)
    panel = wide.reindex(columns=assets)
    missing = panel.isna()
    n = int(missing.to_numpy().sum())
    if panel.empty:
        return CheckOutcome(name, False, "warn", 0, "no month where every coin has a return")
    span = f"{panel.index.min():%Y-%m}..{panel.index.max():%Y-%m}"
    if not n:
        return CheckOutcome(
            name, True, "warn", 0, f"{len(panel)} months {span}, no missing return"
        )
    stacked = missing.stack()
    holes = stacked[stacked].index.to_frame(index=False)
    holes.columns = ["date", "symbol"]
    rows = holes.assign(value=np.nan, reason="no monthly return")
    return CheckOutcome(
        name,
        False,
        "warn",
        n,
        f"{n} missing monthly return(s) in {span} "
        f"({', '.join(sorted(holes['symbol'].unique()))})",
        make_rows(rows),
        n,
    )

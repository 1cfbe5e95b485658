"""Security master: name, GICS sector and asset class per symbol.

The shipped master is ``beta_pipeline/configs/securities.csv`` (symbol, name, sector,
asset_class), written by hand from public knowledge, not derived from any data file:

- the 20 stocks of skfolio's ``load_sp500_dataset`` and the 505 tickers of the S&P 500 as
  of early 2018 (the Kaggle "S&P 500 stock data" membership), with company names and the
  GICS sector of early 2018 (eleven sectors, before the September 2018 move of media and
  internet names to Communication Services, so "Telecommunication Services" still exists:
  T, VZ, CTL). Best effort: check before relying on a single name's sector.
- crypto (BTC/ETH/LTC/BCH-USD), the cross-asset tickers (DX-Y.NYB, EURUSD=X, GC=F, CL=F,
  NG=F, GLD, XLE, SPY) and the skfolio factor ETFs, with sector empty except energy.

Symbols missing from the master get ``name`` and ``sector`` NULL (None) and the
universe's asset class. A config may point ``securities:`` at its own CSV, whose rows take
precedence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources.cache import cached_file
from beta_pipeline.lib.sources.config import configs_dir

MASTER_FILE = "securities.csv"
_DEFAULT_CLASS = {"equity": "equity", "crypto": "crypto", "cross_asset": "cross_asset"}


def read_security_master(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataValidationError(
            "config_error", f"cannot read security master {path}: {exc}", file=str(path)
        ) from exc
    missing = [c for c in ("symbol", "name", "sector", "asset_class") if c not in frame]
    if missing:
        raise DataValidationError(
            "missing_column",
            f"security master {path} lacks column(s) {missing}",
            file=str(path),
            row=1,
        )
    frame["symbol"] = frame["symbol"].str.strip().str.upper()
    frame = frame.replace({"": None})
    return frame.drop_duplicates("symbol", keep="last").set_index("symbol")


def shipped_master() -> pd.DataFrame:
    path = configs_dir() / MASTER_FILE
    return cached_file(path, "securities", lambda: read_security_master(path))


def lookup_securities(
    symbols: list[str],
    universe: str,
    source: str,
    override: pd.DataFrame | None = None,
    asset_class: str | None = None,
) -> list[dict[str, Any]]:
    """One row per symbol: the override's entry, else the shipped master's, else NULLs."""
    masters = [m for m in (override, shipped_master()) if m is not None]
    rows = []
    for sym in symbols:
        hit = next((m.loc[sym] for m in masters if sym in m.index), None)
        rows.append(
            {
                "symbol": sym,
                "name": None if hit is None else hit["name"],
                "sector": None if hit is None else hit["sector"],
                "asset_class": (
                    asset_class
                    or (hit["asset_class"] if hit is not None and hit["asset_class"] else None)
                    or _DEFAULT_CLASS.get(universe, universe)
                ),
                "source": source,
            }
        )
    return rows

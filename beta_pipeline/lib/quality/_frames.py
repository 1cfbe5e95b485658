"""Small shared helpers of the quality checks (column checks, symbol-sorted arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "schema", f"{what} frame lacks column(s) {missing}; has {list(frame.columns)}"
        )


def as_dates(values: pd.Series) -> pd.Series:
    """Timezone-naive datetime64[ns] dates (unparseable values become NaT)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_localize(None)
        return out.astype("datetime64[ns]")
    return pd.to_datetime(values, errors="coerce").astype("datetime64[ns]")


def working_copy(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The needed columns with a fresh RangeIndex and parsed dates (the input is untouched)."""
    out = frame.loc[:, list(columns)].reset_index(drop=True)
    for col in ("date", "prev_date"):
        if col in out.columns:
            out[col] = as_dates(out[col])
    return out


def valid_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a non-null date and symbol, one per (symbol, date), sorted by symbol, date."""
    out = frame.loc[frame["date"].notna() & frame["symbol"].notna()]
    out = out.sort_values(["symbol", "date"], kind="mergesort")
    dup = out.duplicated(["symbol", "date"], keep="first")
    if dup.any():
        out = out.loc[~dup]
    return out.reset_index(drop=True)


def same_symbol_as_previous(symbols: np.ndarray) -> np.ndarray:
    """Boolean array: row i has the same symbol as row i-1 (False for row 0)."""
    same = np.zeros(len(symbols), dtype=bool)
    if len(symbols) > 1:
        same[1:] = symbols[1:] == symbols[:-1]
    return same


def fmt_date(value: object) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def fmt_pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.1%}"

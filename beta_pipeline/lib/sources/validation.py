"""Row-level validation shared by the readers.

Every check raises :class:`~beta_pipeline.lib.errors.DataValidationError` with a stable
``rule`` name, the file, the 1-based line number of the offending row in that file (line 1
is the header of a CSV; Parquet rows count from 1), and the symbol/date where known.
Checks are vectorised; they report the first offending row in file order.

Rules raised here: ``empty_file``, ``missing_column``, ``unparseable_date``,
``non_numeric``, ``duplicate_row``, ``out_of_order``, ``all_nan_day``,
``non_positive_price``, ``units_mismatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from beta_pipeline.lib.errors import DataValidationError

#: Median |daily market factor| in percent is about 0.5-1 and in decimals 0.005-0.01
#: (monthly: about 3 vs 0.03). A series declared in percent whose median absolute value is
#: below PERCENT_FLOOR, or declared in decimals with a median above DECIMAL_CEILING, is a
#: units mismatch. Between the two thresholds both readings are plausible and pass.
PERCENT_FLOOR = 0.05
DECIMAL_CEILING = 0.1
UNITS_MIN_OBS = 5


def _ds(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value
    return str(pd.Timestamp(value).date())


def _sym(symbols: Sequence[Any] | np.ndarray | None, i: int) -> str | None:
    if symbols is None:
        return None
    v = symbols[i]
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def parse_dates(
    values: pd.Series,
    *,
    lines: np.ndarray,
    file: str,
    fmt: str | None = None,
    symbols: np.ndarray | None = None,
    column: str = "date",
) -> np.ndarray:
    """Dates as naive ``datetime64[ns]`` at midnight; any unparseable cell is an error."""
    if is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        raw_missing = parsed.isna().to_numpy()
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        text = pd.Series(uniques, dtype=object).astype(str).str.strip()
        uparsed = _to_datetime(text, fmt).to_numpy(dtype="datetime64[ns]")
        ubad = pd.isna(uparsed) | (text == "").to_numpy()
        raw_missing = (codes < 0) | ubad[np.maximum(codes, 0)]
        parsed = pd.Series(uparsed[np.maximum(codes, 0)], index=values.index)
        parsed[codes < 0] = pd.NaT
    bad = parsed.isna().to_numpy() | raw_missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = values.iloc[i]
        expect = f"format {fmt!r}" if fmt else "an ISO date (YYYY-MM-DD)"
        raise DataValidationError(
            "unparseable_date",
            f"cannot parse {column} value {shown!r} in {file} at row {int(lines[i])}: "
            f"expected {expect}",
            file=file,
            row=int(lines[i]),
            symbol=_sym(symbols, i),
            date=None if pd.isna(shown) else str(shown),
        )
    return parsed.dt.normalize().to_numpy(dtype="datetime64[ns]")


def _to_datetime(text: pd.Series, fmt: str | None) -> pd.Series:
    if fmt:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    try:
        out = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):
        # mixed UTC offsets (e.g. yfinance history output): keep the local calendar date
        out = pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def parse_numeric(
    values: pd.Series,
    *,
    column: str,
    lines: np.ndarray,
    file: str,
    symbols: np.ndarray | None = None,
    dates: np.ndarray | None = None,
) -> np.ndarray:
    """A float64 array; a cell that is neither empty/NA nor a number is an error."""
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    num = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip()
    bad = (num.isna() & text.notna() & (text != "")).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            "non_numeric",
            f"column {column!r} holds {values.iloc[i]!r}, not a number, in {file} at row "
            f"{int(lines[i])}",
            file=file,
            row=int(lines[i]),
            symbol=_sym(symbols, i),
            date=_ds(dates[i]) if dates is not None else None,
        )
    return num.to_numpy(dtype="float64", na_value=np.nan)


def check_duplicates(
    dates: np.ndarray, *, lines: np.ndarray, file: str, symbols: np.ndarray | None = None
) -> None:
    keys = pd.DataFrame({"d": dates})
    if symbols is not None:
        keys["s"] = symbols
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        same = (keys["d"].to_numpy() == dates[i]) & ~dup
        if symbols is not None:
            same &= keys["s"].to_numpy() == symbols[i]
        first = int(lines[np.flatnonzero(same)[0]]) if same.any() else None
        who = f"{symbols[i]} on " if symbols is not None else ""
        raise DataValidationError(
            "duplicate_row",
            f"{who}{_ds(dates[i])} appears twice in {file}: row {int(lines[i])} repeats row "
            f"{first}",
            file=file,
            row=int(lines[i]),
            symbol=_sym(symbols, i),
            date=_ds(dates[i]),
        )


def check_order(
    dates: np.ndarray, *, lines: np.ndarray, file: str, symbols: np.ndarray | None = None
) -> None:
    """Per symbol, dates must be strictly ascending or strictly descending in file order.

    Descending files are accepted (the caller sorts); a mix is an error naming the first
    row that breaks the direction set by the symbol's first two rows. Run after
    :func:`check_duplicates`, so consecutive equal dates cannot occur.
    """
    n = len(dates)
    if n < 3:
        return
    d = dates.astype("int64")
    frame = pd.DataFrame({"d": d, "pos": np.arange(n)})
    if symbols is not None:
        frame["s"] = symbols
        diff = frame.groupby("s", sort=False)["d"].diff()
    else:
        diff = frame["d"].diff()
    sign = np.sign(diff)
    if symbols is not None:
        first = sign.groupby(frame["s"], sort=False).transform("first")
    else:
        valid = sign.dropna()
        first = pd.Series(valid.iloc[0] if len(valid) else np.nan, index=sign.index)
    bad = (sign.notna() & (sign != first)).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if symbols is not None:
            mine = np.flatnonzero((frame["s"].to_numpy() == symbols[i]) & (np.arange(n) < i))
            prev = int(mine[-1])
        else:
            prev = i - 1
        direction = "ascending" if first.iloc[i] > 0 else "descending"
        who = f"{symbols[i]}: " if symbols is not None else ""
        raise DataValidationError(
            "out_of_order",
            f"{who}dates in {file} are {direction} until row {int(lines[i])}, where "
            f"{_ds(dates[i])} follows {_ds(dates[prev])} (row {int(lines[prev])}); dates must "
            "be sorted ascending or descending per symbol",
            file=file,
            row=int(lines[i]),
            symbol=_sym(symbols, i),
            date=_ds(dates[i]),
        )


def check_all_nan_days(
    dates: np.ndarray,
    values: np.ndarray,
    *,
    lines: np.ndarray,
    file: str,
    what: str = "price",
) -> None:
    """A date on which every value (all price columns of all rows) is NaN is an error."""
    if values.size == 0:
        return
    row_nan = np.isnan(values).all(axis=1) if values.ndim == 2 else np.isnan(values)
    if not row_nan.any():
        return
    per_day = pd.Series(row_nan).groupby(dates).transform("all").to_numpy()
    if per_day.any():
        i = int(np.flatnonzero(per_day)[0])
        raise DataValidationError(
            "all_nan_day",
            f"every {what} on {_ds(dates[i])} is empty/NaN in {file} (first such row "
            f"{int(lines[i])}): a day without any value is a broken row, not a holiday",
            file=file,
            row=int(lines[i]),
            date=_ds(dates[i]),
        )


def check_positive(
    values: dict[str, np.ndarray],
    *,
    lines: np.ndarray,
    file: str,
    dates: np.ndarray,
    symbols: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> None:
    """Prices must be > 0 (NaN is ignored) unless the row is allowed (futures)."""
    first_bad: tuple[int, str] | None = None
    for col, arr in values.items():
        with np.errstate(invalid="ignore"):
            bad = arr <= 0
        if allowed is not None:
            bad &= ~allowed
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if first_bad is None or i < first_bad[0]:
                first_bad = (i, col)
    if first_bad is not None:
        i, col = first_bad
        raise DataValidationError(
            "non_positive_price",
            f"{col} = {values[col][i]!r} <= 0 in {file} at row {int(lines[i])}; set "
            "allow_nonpositive (true or a list of symbols) for series that can go negative, "
            "such as futures",
            file=file,
            row=int(lines[i]),
            symbol=_sym(symbols, i),
            date=_ds(dates[i]),
        )


def check_units(
    values: np.ndarray, *, declared: str, column: str, lines: np.ndarray, file: str
) -> None:
    """Median |value| of a factor return series must match the declared units."""
    finite = np.isfinite(values) & (values != 0)
    if finite.sum() < UNITS_MIN_OBS:
        return
    med = float(np.median(np.abs(values[finite])))
    first = int(lines[np.flatnonzero(finite)[0]])
    if declared == "percent" and med < PERCENT_FLOOR:
        looks = "decimals"
    elif declared == "decimal" and med > DECIMAL_CEILING:
        looks = "percent"
    else:
        return
    raise DataValidationError(
        "units_mismatch",
        f"{file}: column {column!r} is declared in {declared} but looks like {looks} "
        f"(median |value| = {med:.4g} over {int(finite.sum())} rows from row {first}; percent "
        f"is above {PERCENT_FLOOR}, decimals below {DECIMAL_CEILING}); fix 'units' in the config",
        file=file,
        row=first,
    )

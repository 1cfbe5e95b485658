"""Turn one configured file into a validated canonical frame (prices or market series).

Used by the ``csv`` source (and by the ``yfinance`` source for downloaded frames). All
checks run before anything is returned, so a bad file never yields a partial frame.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources import validation as v
from beta_pipeline.lib.sources.base import PRICE_FIELDS
from beta_pipeline.lib.sources.cache import cached_file, disk_cached
from beta_pipeline.lib.sources.config import PriceFileSpec, SeriesFileSpec
from beta_pipeline.lib.sources.readers import RawTable, french_date_format, read_french, read_table

log = logging.getLogger(__name__)

#: header names recognised when the config does not name a column (compared lower-case,
#: with spaces, '_', '-' and '.' removed)
ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "datetime", "timestamp", "time", "day"),
    "symbol": ("symbol", "ticker", "asset", "code", "name"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "price", "last"),
    "adj_close": ("adjclose", "adjustedclose", "adjclosingprice"),
    "volume": ("volume", "vol"),
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", str(name).lower())


def resolve_columns(
    header: list[str],
    explicit: dict[str, str | None],
    wanted: tuple[str, ...],
) -> dict[str, str | None]:
    """Canonical name -> file column (None when absent). Explicit names are not checked here."""
    by_norm: dict[str, str] = {}
    for col in header:
        by_norm.setdefault(_norm(col), col)
    out: dict[str, str | None] = {}
    for canon in wanted:
        if canon in explicit:
            out[canon] = explicit[canon]
            continue
        out[canon] = next((by_norm[a] for a in ALIASES.get(canon, ()) if a in by_norm), None)
    return out


def _missing(table: RawTable, column: str, canon: str, where: str) -> DataValidationError:
    return DataValidationError(
        "missing_column",
        f"{table.file} has no column {column!r} for {canon} (columns: "
        f"{', '.join(map(str, table.frame.columns[:20]))}); fix the file or 'columns' in {where}",
        file=table.file,
        row=1,
    )


@dataclass
class ParsedFile:
    """A validated file: canonical rows plus bookkeeping for describe()."""

    frame: pd.DataFrame  # canonical columns + "_line"
    file: str
    rows_read: int
    nan_rows_dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# --- prices --------------------------------------------------------------------------------


def _dump_parsed(parsed: ParsedFile, folder: Path) -> None:
    parsed.frame.to_parquet(folder / "frame.parquet", index=False)
    meta = {"file": parsed.file, "rows_read": parsed.rows_read,
            "nan_rows_dropped": parsed.nan_rows_dropped, "extra": parsed.extra}
    (folder / "meta.json").write_text(json.dumps(meta))


def _load_parsed(folder: Path) -> ParsedFile:
    meta = json.loads((folder / "meta.json").read_text())
    frame = pd.read_parquet(folder / "frame.parquet")
    return ParsedFile(frame, meta["file"], int(meta["rows_read"]),
                      int(meta["nan_rows_dropped"]), dict(meta["extra"]))


def _cached_parse(
    path: Path, key: tuple[Any, ...], cache_dir: Path | None, parse: Callable[[], ParsedFile]
) -> ParsedFile:
    """Once per process (memory) and once per file content (``cache_dir``, Parquet)."""
    return cached_file(
        path, key, lambda: disk_cached(path, key, cache_dir, parse, _dump_parsed, _load_parsed)
    )


def load_price_file(spec: PriceFileSpec, cache_dir: Path | None = None) -> ParsedFile:
    """Parse (once per process and, with ``cache_dir``, once per file content: see
    cache.py) and validate a price file."""
    if not spec.path.is_file():
        raise DataValidationError(
            "missing_file",
            f"price file {spec.path} (universe {spec.universe}, configured at {spec.where}) "
            "does not exist; set BETA_PIPELINE_DATA_DIR or fix 'path'",
            file=str(spec.path),
        )
    return _cached_parse(spec.path, spec.parse_key(), cache_dir, lambda: _parse_price_file(spec))


def _allowed_mask(symbols: np.ndarray, allow: bool | tuple[str, ...]) -> np.ndarray:
    if allow is True:
        return np.ones(len(symbols), dtype=bool)
    if not allow:
        return np.zeros(len(symbols), dtype=bool)
    return np.isin(symbols, np.asarray(allow, dtype=object))


def _clean_symbols(values: pd.Series, rename: dict[str, str]) -> np.ndarray:
    """Strip and upper-case (per distinct value, fast), then rename; missing -> None."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    clean = [str(u).strip().upper() for u in uniques]
    clean = np.asarray([rename.get(c, c) for c in clean] + [None], dtype=object)
    return clean[np.where(codes < 0, len(clean) - 1, codes)]


def _parse_price_file(spec: PriceFileSpec) -> ParsedFile:
    source = f"csv:{spec.path.name}"
    if spec.layout == "wide":
        return _parse_wide(spec, source)

    explicit = spec.columns
    wanted = ("date", "symbol", "open", "high", "low", "close", "adj_close", "volume")

    def text_cols(header: list[str]) -> list[str]:
        cols = resolve_columns(header, explicit, ("date", "symbol"))
        return [c for c in cols.values() if c is not None]

    table = read_table(
        spec.path, fmt=spec.format, skiprows=spec.skiprows, text_columns=text_cols, sep=spec.sep
    )
    header = [str(c) for c in table.frame.columns]
    cols = resolve_columns(header, explicit, wanted)
    if spec.symbol is not None:
        cols["symbol"] = None
    for canon, col in cols.items():
        if col is not None and col not in header:
            raise _missing(table, col, canon, spec.where)
    if cols["date"] is None:
        raise _missing(table, explicit.get("date") or "date", "date", spec.where)
    if cols["symbol"] is None and spec.symbol is None:
        raise _missing(table, explicit.get("symbol") or "symbol", "symbol", spec.where)
    if cols["close"] is None and cols["adj_close"] is None:
        raise _missing(table, explicit.get("close") or "close", "close", spec.where)

    f, lines, label = table.frame, table.lines, table.file
    if spec.symbol is not None:
        symbols = np.full(len(f), spec.symbol, dtype=object)
    else:
        symbols = _clean_symbols(f[cols["symbol"]], spec.rename)
        empty = pd.isna(symbols) | (symbols == "")
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataValidationError(
                "missing_value",
                f"empty symbol in {label} at row {int(lines[i])}",
                file=label,
                row=int(lines[i]),
            )
    dates = v.parse_dates(
        f[cols["date"]],
        lines=lines,
        file=label,
        fmt=spec.date_format,
        symbols=symbols,
        column=cols["date"],
    )
    values: dict[str, np.ndarray] = {}
    for canon in ("open", "high", "low", "close", "adj_close", "volume"):
        col = cols[canon]
        if col is None:
            continue
        values[canon] = v.parse_numeric(
            f[col], column=col, lines=lines, file=label, symbols=symbols, dates=dates
        )
    return _finish_prices(spec, source, label, dates, symbols, values, lines, len(f))


def _finish_prices(
    spec: PriceFileSpec,
    source: str,
    label: str,
    dates: np.ndarray,
    symbols: np.ndarray,
    values: dict[str, np.ndarray],
    lines: np.ndarray,
    rows_read: int,
    extra: dict[str, Any] | None = None,
) -> ParsedFile:
    n = len(dates)
    if "adj_close" not in values:
        values["adj_close"] = values["close"].copy()
    if "close" not in values:
        values["close"] = values["adj_close"].copy()
    v.check_duplicates(dates, lines=lines, file=label, symbols=symbols)
    v.check_order(dates, lines=lines, file=label, symbols=symbols)
    prices = np.column_stack([values.get(c, np.full(n, np.nan)) for c in PRICE_FIELDS])
    v.check_all_nan_days(dates, prices, lines=lines, file=label)
    allowed = _allowed_mask(symbols, spec.allow_nonpositive)
    v.check_positive(
        {c: values[c] for c in PRICE_FIELDS if c in values},
        lines=lines,
        file=label,
        dates=dates,
        symbols=symbols,
        allowed=allowed,
    )
    frame = pd.DataFrame({"date": dates, "symbol": symbols})
    for c in ("open", "high", "low", "close", "adj_close", "volume"):
        frame[c] = values.get(c, np.full(n, np.nan))
    frame["source"] = source
    frame["_line"] = lines
    keep = ~np.isnan(frame["adj_close"].to_numpy())
    dropped = int((~keep).sum())
    if dropped:
        log.warning("%s: dropped %d row(s) with an empty close", label, dropped)
        frame = frame.loc[keep]
    frame = frame.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)
    return ParsedFile(frame, label, rows_read, dropped, extra or {})


def _parse_wide(spec: PriceFileSpec, source: str) -> ParsedFile:
    date_col = spec.columns.get("date")

    def text_cols(header: list[str]) -> list[str]:
        c = resolve_columns(header, spec.columns, ("date",))["date"]
        return [c] if c else []

    table = read_table(
        spec.path, fmt=spec.format, skiprows=spec.skiprows, text_columns=text_cols, sep=spec.sep
    )
    header = [str(c) for c in table.frame.columns]
    date_col = resolve_columns(header, spec.columns, ("date",))["date"]
    if date_col is None or date_col not in header:
        raise _missing(table, spec.columns.get("date") or "date", "date", spec.where)
    f, lines, label = table.frame, table.lines, table.file
    tickers = [c for c in header if c != date_col]
    if not tickers:
        raise _missing(table, "<ticker columns>", "wide prices", spec.where)
    dates = v.parse_dates(
        f[date_col], lines=lines, file=label, fmt=spec.date_format, column=date_col
    )
    v.check_duplicates(dates, lines=lines, file=label)
    v.check_order(dates, lines=lines, file=label)
    syms = _clean_symbols(pd.Series(tickers), spec.rename)
    mat = np.empty((len(f), len(tickers)), dtype="float64")
    for j, col in enumerate(tickers):
        mat[:, j] = v.parse_numeric(
            f[col],
            column=col,
            lines=lines,
            file=label,
            symbols=np.full(len(f), syms[j], dtype=object),
            dates=dates,
        )
    v.check_all_nan_days(dates, mat, lines=lines, file=label)
    allowed_cols = _allowed_mask(syms, spec.allow_nonpositive)
    with np.errstate(invalid="ignore"):
        bad = (mat <= 0) & ~allowed_cols[None, :]
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        raise DataValidationError(
            "non_positive_price",
            f"{tickers[c]} = {mat[r, c]!r} <= 0 in {label} at row {int(lines[r])}; set "
            "allow_nonpositive for series that can go negative",
            file=label,
            row=int(lines[r]),
            symbol=str(syms[c]),
            date=str(pd.Timestamp(dates[r]).date()),
        )
    valid = ~np.isnan(mat)
    interior = (np.cumsum(valid, axis=0) > 0) & (np.cumsum(valid[::-1], axis=0)[::-1] > 0)
    gaps = int((interior & ~valid).sum())
    r, c = np.nonzero(valid)
    values = {spec.value: mat[r, c]}
    if gaps:
        log.info("%s: %d empty cell(s) inside listed ranges (missing days)", label, gaps)
    parsed = _finish_prices(
        spec,
        source,
        label,
        dates[r],
        syms[c],
        values,
        lines[r],
        len(f),
        extra={"empty_cells_inside_ranges": gaps},
    )
    return parsed


# --- market / factor series ------------------------------------------------------------------


def load_series_file(spec: SeriesFileSpec, cache_dir: Path | None = None) -> ParsedFile:
    """Parse and validate a market series file (cached like :func:`load_price_file`)."""
    if not spec.path.is_file():
        raise DataValidationError(
            "missing_file",
            f"{spec.frequency} market file {spec.path} (configured at {spec.where}) does not "
            "exist; set BETA_PIPELINE_DATA_DIR or fix 'path'",
            file=str(spec.path),
        )
    return _cached_parse(spec.path, spec.parse_key(), cache_dir, lambda: _parse_series_file(spec))


def _is_level(name: str) -> bool:
    return name.endswith("_level")


def _units_candidates(series: dict[str, str]) -> list[str]:
    """Series whose size reveals percent vs decimals: the market factor if there is one,
    else every return series except levels and the risk-free rate (whose daily values are
    ~0.01 % and look like decimals even in percent)."""
    market = [n for n in series if n.startswith("mkt") and not _is_level(n)]
    if market:
        return market
    return [
        n
        for n, col in series.items()
        if not _is_level(n) and not n.startswith("rf") and str(col).strip().lower() != "rf"
    ]


def _parse_series_file(spec: SeriesFileSpec) -> ParsedFile:
    monthly = spec.frequency == "monthly"
    key = "month" if monthly else "date"
    if spec.layout == "long":
        return _series_from_long(spec, key)
    if spec.format == "french":
        table = read_french(spec.path)
        date_col = "date"
        fmt = spec.date_format or french_date_format(table.frame["date"])
    else:

        def text_cols(header: list[str]) -> list[str]:
            c = resolve_columns(header, spec.columns, ("date",))["date"]
            return [c] if c else []

        table = read_table(
            spec.path, fmt=spec.format, skiprows=spec.skiprows, text_columns=text_cols, sep=spec.sep
        )
        header = [str(c) for c in table.frame.columns]
        date_col = resolve_columns(header, spec.columns, ("date",))["date"]
        fmt = spec.date_format
        if date_col is None or date_col not in header:
            raise _missing(table, spec.columns.get("date") or "date", "date", spec.where)
    f, lines, label = table.frame, table.lines, table.file
    header = [str(c) for c in f.columns]
    for name, col in spec.series.items():
        if col not in header:
            raise _missing(table, col, f"series {name}", spec.where)
    dates = v.parse_dates(f[date_col], lines=lines, file=label, fmt=fmt, column=date_col)
    if monthly:
        dates = pd.DatetimeIndex(dates).to_period("M").to_timestamp().to_numpy("datetime64[ns]")
    values = {
        name: v.parse_numeric(f[col], column=col, lines=lines, file=label, dates=dates)
        for name, col in spec.series.items()
    }
    v.check_duplicates(dates, lines=lines, file=label)
    v.check_order(dates, lines=lines, file=label)
    v.check_all_nan_days(
        dates,
        np.column_stack(list(values.values())),
        lines=lines,
        file=label,
        what="configured series value",
    )
    levels = {n: a for n, a in values.items() if _is_level(n)}
    if levels and not spec.allow_nonpositive:
        v.check_positive(levels, lines=lines, file=label, dates=dates)
    for name in _units_candidates(spec.series):
        v.check_units(
            values[name],
            declared=str(spec.units),
            column=spec.series[name],
            lines=lines,
            file=label,
        )
    parts = []
    dropped = 0
    for name, arr in values.items():
        scaled = arr / 100.0 if (spec.units == "percent" and not _is_level(name)) else arr
        ok = ~np.isnan(scaled)
        dropped += int((~ok).sum())
        parts.append(
            pd.DataFrame({key: dates[ok], "series": name, "value": scaled[ok], "_line": lines[ok]})
        )
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values([key, "series"], kind="mergesort").reset_index(drop=True)
    return ParsedFile(frame, label, len(f), dropped)


def _series_from_long(spec: SeriesFileSpec, key: str) -> ParsedFile:
    pspec = PriceFileSpec(
        path=spec.path,
        universe="market",
        format=spec.format if spec.format != "french" else "auto",
        layout="long",
        columns=spec.columns,
        date_format=spec.date_format,
        skiprows=spec.skiprows,
        sep=spec.sep,
        allow_nonpositive=spec.allow_nonpositive,
        where=spec.where,
    )
    parsed = load_price_file(pspec)
    px = parsed.frame
    parts = []
    for name, sym in spec.series.items():
        rows = px.loc[px["symbol"] == str(sym).strip().upper()]
        if rows.empty:
            raise DataValidationError(
                "unknown_ticker",
                f"{parsed.file} has no symbol {sym!r} for series {name} (configured at "
                f"{spec.where})",
                file=parsed.file,
                symbol=str(sym),
            )
        parts.append(
            pd.DataFrame(
                {
                    key: rows["date"].to_numpy(),
                    "series": name,
                    "value": rows[spec.value].to_numpy(),
                    "_line": rows["_line"].to_numpy(),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    if key == "month":
        frame[key] = frame[key].dt.to_period("M").dt.to_timestamp()
        frame = frame.drop_duplicates([key, "series"], keep="last")
    frame = frame.dropna(subset=["value"])
    frame = frame.sort_values([key, "series"], kind="mergesort").reset_index(drop=True)
    return ParsedFile(frame, parsed.file, parsed.rows_read, 0)

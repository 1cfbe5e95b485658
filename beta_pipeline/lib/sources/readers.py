"""Low-level file readers: CSV (plain or compressed), Parquet and Ken French's raw CSV.

Each reader returns the table as read (no renaming, no type coercion beyond pandas'
inference) together with the 1-based line number of every row in the file, so the
validators can name the offending line: for CSV, line 1 is the header and blank lines
count; for Parquet, the row number (1 = first row).
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError

#: pandas' default NA markers (empty cells, "NA", "NaN", "null", ...), applied to every column
#: except the symbol column, where e.g. "NA" could be a ticker.
_NA_VALUES = sorted(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


@dataclass
class RawTable:
    frame: pd.DataFrame
    lines: np.ndarray  # int64, 1-based line (CSV) or row (Parquet) number per row
    file: str  # label used in error messages (the path)


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zip", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"


def read_table(
    path: Path,
    *,
    fmt: str = "auto",
    skiprows: int = 0,
    text_columns: Callable[[list[str]], Iterable[str]] | Iterable[str] = (),
    sep: str = ",",
) -> RawTable:
    """Read a CSV/CSV.gz/Parquet file.

    ``text_columns`` (names, or a function of the header's names returning names) are read
    as strings with no NA conversion, e.g. the date and symbol columns.
    """
    label = str(path)
    kind = detect_format(path, fmt)
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataValidationError(
                "empty_file" if path.stat().st_size == 0 else "unreadable_file",
                f"cannot read Parquet file {label}: {exc}",
                file=label,
                row=1,
            ) from exc
        frame = frame.reset_index(drop=not _has_named_index(frame))
        if frame.empty:
            raise DataValidationError("empty_file", f"{label} has no data rows", file=label, row=1)
        return RawTable(frame, np.arange(1, len(frame) + 1, dtype=np.int64), label)
    if kind != "csv":
        raise ValueError(f"read_table cannot read format {kind!r}")
    try:
        header = pd.read_csv(path, nrows=0, skiprows=skiprows, sep=sep)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(
            "empty_file", f"{label} is empty (no header line)", file=label, row=skiprows + 1
        ) from exc
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataValidationError(
            "unreadable_file", f"cannot read {label}: {exc}", file=label, row=1
        ) from exc
    cols = [str(c) for c in header.columns]
    text = set(text_columns(cols) if callable(text_columns) else text_columns)
    na_values = {c: _NA_VALUES for c in cols if c not in text}
    dtype = {c: str for c in cols if c in text}
    try:
        frame = pd.read_csv(
            path,
            skiprows=skiprows,
            sep=sep,
            dtype=dtype or None,
            keep_default_na=False,
            na_values=na_values,
            skip_blank_lines=False,
            low_memory=False,
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise DataValidationError(
            "malformed_row",
            f"cannot parse {label}: {exc}",
            file=label,
            row=int(m.group(1)) + skiprows if m else None,
        ) from exc
    lines = np.arange(len(frame), dtype=np.int64) + 2 + skiprows
    # skip_blank_lines=False keeps blank lines as all-empty rows so line numbers stay exact;
    # drop them now (a blank line is not data).
    others = [c for c in frame.columns if c not in text]
    blank = frame[others].isna().all(axis=1).to_numpy() if others else np.ones(len(frame), bool)
    for c in text & set(cols):
        if blank.any():
            cand = frame.loc[blank, c]
            blank[blank] = (cand.isna() | (cand.astype(str).str.strip() == "")).to_numpy()
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    if frame.empty:
        raise DataValidationError(
            "empty_file",
            f"{label} has a header but no data rows",
            file=label,
            row=skiprows + 1,
        )
    frame.columns = cols
    return RawTable(frame, lines, label)


def _has_named_index(frame: pd.DataFrame) -> bool:
    return any(n is not None for n in frame.index.names)


# --- Ken French's raw CSV --------------------------------------------------------------------

_FRENCH_DATE = re.compile(r"^\s*(\d{8}|\d{6})\s*$")
#: French's missing-value markers
_FRENCH_MISSING = {"-99.99", "-999", "-99.990", "-999.0"}


def read_french(path: Path) -> RawTable:
    """Parse Ken French's original CSV: header text, the first (daily or monthly) section.

    The file starts with free text, then a header line whose first cell is empty
    (``,Mkt-RF,SMB,HML,RF``), then data lines dated ``YYYYMMDD`` (daily files) or
    ``YYYYMM`` (monthly files). The section ends at the first line that is not such a data
    line (a blank line, `` Annual Factors: January-December``, the copyright footer); the
    annual section and anything after it are ignored. Values are in percent; -99.99 and
    -999 mean missing. The returned frame has a ``date`` column (strings) and one column
    per factor; ``lines`` are physical line numbers.
    """
    label = str(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8", errors="replace")
    all_lines = io.StringIO(text).read().splitlines()
    if not any(line.strip() for line in all_lines):
        raise DataValidationError("empty_file", f"{label} is empty", file=label, row=1)
    header_at = None
    for i, line in enumerate(all_lines):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and cells[0] == "" and any(cells[1:]):
            header_at = i
            break
    if header_at is None:
        raise DataValidationError(
            "missing_column",
            f"{label} is not in Ken French's CSV format: no header line starting with ',' "
            "(e.g. ',Mkt-RF,SMB,HML,RF')",
            file=label,
            row=1,
        )
    names = [c.strip() for c in all_lines[header_at].split(",")][1:]
    while names and names[-1] == "":
        names.pop()
    rows: list[list[str]] = []
    line_no: list[int] = []
    for j in range(header_at + 1, len(all_lines)):
        cells = [c.strip() for c in all_lines[j].split(",")]
        if not _FRENCH_DATE.match(cells[0]):
            break
        values = cells[1 : 1 + len(names)]
        values += [""] * (len(names) - len(values))
        rows.append([cells[0], *("" if v in _FRENCH_MISSING else v for v in values)])
        line_no.append(j + 1)
    if not rows:
        raise DataValidationError(
            "empty_file",
            f"{label} has a header at line {header_at + 1} but no dated data lines after it",
            file=label,
            row=header_at + 1,
        )
    frame = pd.DataFrame(rows, columns=["date", *names]).replace("", np.nan)
    return RawTable(frame, np.asarray(line_no, dtype=np.int64), label)


def french_date_format(dates: pd.Series) -> str:
    """``%Y%m%d`` for daily French files, ``%Y%m`` for monthly ones."""
    width = dates.astype(str).str.strip().str.len()
    return "%Y%m%d" if int(width.iloc[0]) == 8 else "%Y%m"

"""Result type of every data-quality check and its table / Markdown renderings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Severity = Literal["error", "warn"]
SEVERITIES: tuple[str, ...] = ("error", "warn")

#: Columns of ``CheckOutcome.rows``; checks about a span of dates add ``end_date`` after
#: ``date`` (e.g. a stale run or a gap from ``date`` to ``end_date``).
ROW_COLUMNS: tuple[str, ...] = ("symbol", "date", "value", "reason")

#: Offending rows kept on an outcome; the total is in ``CheckOutcome.n_rows``.
MAX_ROWS_KEPT = 200

#: Contract of the ``quality.check_results`` table.
CHECK_RESULT_COLUMNS: tuple[str, ...] = (
    "asset",
    "partition",
    "check_name",
    "passed",
    "severity",
    "observed",
    "details",
    "checked_at",
)


def empty_rows(with_end_date: bool = False) -> pd.DataFrame:
    """An empty offending-rows frame with the canonical columns and dtypes."""
    cols: dict[str, pd.Series] = {
        "symbol": pd.Series([], dtype=object),
        "date": pd.Series([], dtype="datetime64[ns]"),
    }
    if with_end_date:
        cols["end_date"] = pd.Series([], dtype="datetime64[ns]")
    cols["value"] = pd.Series([], dtype="float64")
    cols["reason"] = pd.Series([], dtype=object)
    return pd.DataFrame(cols)


@dataclass
class CheckOutcome:
    """The result of one named check on one frame.

    ``passed`` is False when the rule is broken; ``severity`` says what a failure means
    ("error": the data must not be used as is; "warn": usable, but look at ``rows``).
    ``observed`` is the headline number (usually the count of offending rows, or a share
    for coverage). ``rows`` keeps at most a few hundred offending rows (symbol, date,
    value, reason); ``n_rows`` is their total count before truncation.
    """

    check_name: str
    passed: bool
    severity: Severity
    observed: float | int | None
    details: str
    rows: pd.DataFrame = field(default_factory=empty_rows)
    n_rows: int = 0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        self.passed = bool(self.passed)

    @property
    def is_error(self) -> bool:
        """True when the check failed with severity "error" (blocking)."""
        return not self.passed and self.severity == "error"

    @property
    def truncated(self) -> bool:
        return self.n_rows > len(self.rows)

    def preview_markdown(self, max_rows: int = 20) -> str:
        """Markdown table of the first offending rows (for Dagster UI metadata)."""
        return rows_to_markdown(self.rows, max_rows=max_rows, total=self.n_rows)


def make_rows(
    frame: pd.DataFrame, max_rows: int = MAX_ROWS_KEPT, with_end_date: bool = False
) -> pd.DataFrame:
    """Canonical offending-rows frame: the canonical columns, sorted, capped to ``max_rows``."""
    cols = list(ROW_COLUMNS)
    if with_end_date:
        cols.insert(2, "end_date")
    if frame.empty:
        return empty_rows(with_end_date)
    out = frame.loc[:, cols].head(max_rows).reset_index(drop=True)
    out["symbol"] = out["symbol"].astype(object)
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype("float64")
    return out


def outcomes_to_records(
    outcomes: Iterable[CheckOutcome],
    asset: str,
    partition: str,
    checked_at: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Rows for the ``quality.check_results`` table, one per outcome.

    ``checked_at`` defaults to now, in UTC, as a timezone-naive timestamp (the project's
    convention for stored timestamps); every row of one call shares it.
    """
    if checked_at is None:
        checked_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    records = [
        {
            "asset": asset,
            "partition": partition,
            "check_name": o.check_name,
            "passed": bool(o.passed),
            "severity": o.severity,
            "observed": np.nan if o.observed is None else float(o.observed),
            "details": o.details,
            "checked_at": pd.Timestamp(checked_at),
        }
        for o in outcomes
    ]
    out = pd.DataFrame.from_records(records, columns=list(CHECK_RESULT_COLUMNS))
    return out.astype(
        {
            "asset": object,
            "partition": object,
            "check_name": object,
            "passed": bool,
            "severity": object,
            "observed": "float64",
            "details": object,
            "checked_at": "datetime64[ns]",
        }
    )


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: Sequence[str], body: Iterable[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def rows_to_markdown(rows: pd.DataFrame, max_rows: int = 20, total: int | None = None) -> str:
    """Markdown preview of offending rows: a table of the first ``max_rows`` and a count line."""
    total = len(rows) if total is None else int(total)
    if rows.empty:
        return "_no offending rows_"
    shown = rows.head(max_rows)
    table = _markdown_table(list(shown.columns), shown.itertuples(index=False, name=None))
    if total > len(shown):
        table += f"\n\n_{len(shown)} of {total} offending rows shown._"
    return table


def outcomes_to_markdown(outcomes: Iterable[CheckOutcome]) -> str:
    """Markdown summary table of outcomes (check, status, severity, observed, details)."""
    body = [
        (
            o.check_name,
            "pass" if o.passed else "FAIL",
            o.severity,
            o.observed,
            o.details,
        )
        for o in outcomes
    ]
    return _markdown_table(["check", "status", "severity", "observed", "details"], body)

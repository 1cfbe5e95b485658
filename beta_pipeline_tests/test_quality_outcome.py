"""CheckOutcome, the quality.check_results record contract, Markdown previews, GE context."""

from __future__ import annotations

import pandas as pd
import pytest

from beta_pipeline.lib.quality import (
    CHECK_RESULT_COLUMNS,
    CheckOutcome,
    gx_context,
    outcomes_to_markdown,
    outcomes_to_records,
    rows_to_markdown,
)
from beta_pipeline.lib.quality.outcome import make_rows


def _outcomes() -> list[CheckOutcome]:
    rows = make_rows(
        pd.DataFrame(
            {
                "symbol": ["AAA", "B|B"],
                "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                "value": [-1.0, 0.0],
                "reason": ["close <= 0", "close <= 0"],
            }
        )
    )
    return [
        CheckOutcome("prices_positive", False, "error", 2, "2 close values are <= 0", rows, 2),
        CheckOutcome("prices_coverage", True, "warn", 0.95, "fine"),
        CheckOutcome("prices_stale", True, "warn", None, "not measured"),
    ]


def test_records_follow_the_check_results_contract():
    at = pd.Timestamp("2024-05-01 12:00:00")
    rec = outcomes_to_records(_outcomes(), "raw_prices", "2024-01-02", checked_at=at)
    assert tuple(rec.columns) == CHECK_RESULT_COLUMNS
    assert len(rec) == 3
    assert rec["asset"].eq("raw_prices").all() and rec["partition"].eq("2024-01-02").all()
    assert list(rec["check_name"]) == ["prices_positive", "prices_coverage", "prices_stale"]
    assert list(rec["passed"]) == [False, True, True] and rec["passed"].dtype == bool
    assert list(rec["severity"]) == ["error", "warn", "warn"]
    assert rec["observed"].dtype == "float64"
    assert rec["observed"].iloc[0] == 2.0 and pd.isna(rec["observed"].iloc[2])
    assert (rec["checked_at"] == at).all()


def test_records_default_checked_at_is_naive_utc_now():
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    rec = outcomes_to_records(_outcomes(), "a", "p")
    assert rec["checked_at"].dt.tz is None
    assert rec["checked_at"].nunique() == 1
    assert before <= rec["checked_at"].iloc[0] <= pd.Timestamp.now(tz="UTC").tz_localize(None)


def test_records_of_no_outcomes_is_an_empty_table():
    rec = outcomes_to_records([], "a", "p")
    assert rec.empty and tuple(rec.columns) == CHECK_RESULT_COLUMNS


def test_markdown_preview_of_rows():
    o = _outcomes()[0]
    md = o.preview_markdown()
    lines = md.splitlines()
    assert lines[0] == "| symbol | date | value | reason |"
    assert lines[2] == "| AAA | 2024-01-02 | -1 | close <= 0 |"
    assert "B\\|B" in md  # pipes escaped
    assert rows_to_markdown(o.rows, max_rows=1, total=500).endswith(
        "_1 of 500 offending rows shown._"
    )
    assert rows_to_markdown(_outcomes()[1].rows) == "_no offending rows_"


def test_markdown_summary_of_outcomes():
    md = outcomes_to_markdown(_outcomes())
    assert md.splitlines()[0] == "| check | status | severity | observed | details |"
    assert "| prices_positive | FAIL | error | 2 |" in md
    assert "| prices_stale | pass | warn |  | not measured |" in md


def test_outcome_validates_severity_and_flags_errors():
    with pytest.raises(ValueError, match="severity"):
        CheckOutcome("x", True, "fatal", 0, "bad severity")  # type: ignore[arg-type]
    assert _outcomes()[0].is_error and not _outcomes()[1].is_error
    assert not CheckOutcome("w", False, "warn", 1, "warn only").is_error


def test_gx_context_is_cached_ephemeral_and_quiet():
    handle = gx_context()
    assert gx_context() is handle
    ctx = handle.context
    assert type(ctx).__name__ == "EphemeralDataContext"
    bars = ctx.progress_bars
    assert bars is not None and not bars["globally"] and not bars["metric_calculations"]
    assert ctx.config.analytics_enabled is False


def test_validation_prints_no_progress_bars(capfd):
    from beta_pipeline.lib.quality import check_prices

    prices = pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-02", periods=5),  # sessions: no holiday
            "symbol": "AAA",
            "close": [1.0, 2.0, 3.0, 4.0, 5.0],
            "adj_close": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    capfd.readouterr()
    assert all(o.passed for o in check_prices(prices))
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out

"""When ``daily_betas`` draws its example plot (issue 12: a scheduled day skips matplotlib
except on the week's last session)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline.defs.baselines.daily import wants_plot

DAY = pd.Timedelta(days=1)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2024-06-05", False),  # Wednesday
        ("2024-06-07", True),  # Friday
        ("2024-07-03", False),  # Wednesday before the July 4th holiday: Friday is a session
        ("2024-03-28", True),  # Thursday before Good Friday: the week's last session
        ("2024-11-29", True),  # the day after Thanksgiving (early close), a Friday
        ("2024-12-30", False),  # Monday; the week ends on Friday 2025-01-03
        ("2025-01-03", True),
    ],
)
def test_auto_plots_a_single_session_at_the_end_of_its_week(day: str, expected: bool):
    start = pd.Timestamp(day)
    assert wants_plot("auto", start, start + DAY) is expected


def test_auto_plots_every_range_and_the_choices_override():
    start, end = pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-06")
    assert wants_plot("auto", start, end)
    assert not wants_plot("never", start, end)
    assert wants_plot("always", pd.Timestamp("2024-06-05"), pd.Timestamp("2024-06-06"))
    # a window without a session (a Saturday) draws nothing
    assert not wants_plot("auto", pd.Timestamp("2024-06-08"), pd.Timestamp("2024-06-09"))


def test_unknown_choice_fails_with_the_choices():
    with pytest.raises(dg.Failure, match="auto"):
        wants_plot("weekly", pd.Timestamp("2024-06-05"), pd.Timestamp("2024-06-06"))

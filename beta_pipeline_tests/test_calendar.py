"""The XNYS calendar of lib/calendar.py, and how the sources' data sit on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import calendar
from beta_pipeline.lib.sources.base import calendar_coverage
from beta_pipeline_tests.support.paths import KAGGLE_STOCKS, shared_data_dir

T = pd.Timestamp
NY = "America/New_York"
#: NYSE holidays of 2024 (the exchange's published list).
HOLIDAYS_2024 = [
    "2024-01-01",
    "2024-01-15",
    "2024-02-19",
    "2024-03-29",
    "2024-05-27",
    "2024-06-19",
    "2024-07-04",
    "2024-09-02",
    "2024-11-28",
    "2024-12-25",
]


def test_holidays_and_sessions_of_2024():
    assert list(calendar.holidays("2024-01-01", "2024-12-31")) == [T(d) for d in HOLIDAYS_2024]
    year = calendar.sessions("2024-01-01", "2024-12-31")
    assert len(year) == 252 and year.dtype == "datetime64[ns]"
    assert not set(year) & {T(d) for d in HOLIDAYS_2024}
    assert (year.dayofweek < 5).all()


def test_thanksgiving_week():
    week = calendar.sessions("2024-11-25", "2024-11-29")
    assert [d.day for d in week] == [25, 26, 27, 29]
    assert calendar.count_sessions("2024-11-25", "2024-12-02")[0] == 4  # [start, end)
    assert calendar.session_close("2024-11-29") == T("2024-11-29 13:00", tz=NY)  # half day


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        ("2001-09-11", False),  # closures
        ("2001-09-14", False),
        ("2001-09-17", True),
        ("2012-10-29", False),  # Hurricane Sandy
        ("2018-12-05", False),  # national day of mourning (G.H.W. Bush)
        ("2025-01-09", False),  # (J. Carter)
        ("2024-03-29", False),  # Good Friday
        ("2024-03-28", True),
        ("2024-07-06", False),  # Saturday
    ],
)
def test_is_session(day, open_):
    assert calendar.is_session(day) is open_
    assert calendar.session_mask([day]).tolist() == [open_]


def test_vectorised_helpers_agree_with_sessions():
    days = pd.date_range("2023-12-20", "2024-01-20")
    mask = calendar.session_mask(days)
    assert list(days[mask]) == list(calendar.sessions("2023-12-20", "2024-01-20"))
    counts = calendar.count_sessions(days[:-1], days[1:] + pd.Timedelta(days=5))
    expected = [
        len(calendar.sessions(a, b - pd.Timedelta(days=1)))
        for a, b in zip(days[:-1], days[1:] + pd.Timedelta(days=5), strict=True)
    ]
    assert counts.tolist() == expected


def test_offsets_and_previous_session():
    thanksgiving = "2024-11-28"
    got = calendar.offset_sessions([thanksgiving] * 3, np.array([1, -1, 0]))
    assert [str(d) for d in got] == ["2024-11-29", "2024-11-27", "2024-11-29"]
    assert calendar.shift_sessions("2024-07-05", -10) == T("2024-06-20")  # skips Juneteenth
    assert calendar.previous_session("2024-04-01") == T("2024-03-28")  # Good Friday month-end
    assert calendar.previous_session("2024-03-29") == T("2024-03-28")


@pytest.mark.parametrize(
    ("now", "last"),
    [
        (T("2024-07-03 12:59", tz=NY), "2024-07-02"),  # half day before its 13:00 close
        (T("2024-07-03 13:00", tz=NY), "2024-07-03"),
        (T("2024-07-04 20:00", tz=NY), "2024-07-03"),  # the holiday itself
        (T("2024-07-05 20:30"), "2024-07-05"),  # naive = UTC: 16:30 in New York
        (T("2024-07-08 09:00", tz=NY), "2024-07-05"),  # Monday morning
    ],
)
def test_last_complete_session(now, last):
    assert calendar.last_complete_session(now) == T(last)


def test_outside_the_known_range_weekdays_count():
    assert calendar.holidays("1960-01-01", "1969-12-31").empty  # before HISTORY_START
    assert calendar.is_session("1969-12-25")
    assert calendar.holidays("1970-01-01", "1970-12-31").size >= 7
    after = calendar.calendar_end() + pd.Timedelta(days=400)
    span = calendar.sessions(after, after + pd.Timedelta(days=13))
    assert len(span) == 10  # two weeks of weekdays, no holiday known


def test_partition_range_matches_exchange_calendars():
    import exchange_calendars as xc

    ref = xc.get_calendar("XNYS", start="1990-01-01").sessions_in_range("1990-01-02", "2024-12-31")
    ours = calendar.sessions("1990-01-01", "2024-12-31")
    assert list(ours) == list(pd.DatetimeIndex(ref).tz_localize(None))


# --- step 3: do the sources have rows on every session of their coverage? -------------


def test_embedded_equity_has_every_session_and_nothing_else():
    from beta_pipeline.lib.sources import make_source

    prices = make_source("embedded").load_prices()
    cov = calendar_coverage(prices["date"])
    assert cov["sessions"] == 8313  # 1990-01-02 .. 2022-12-28
    assert cov["missing_sessions"] == 0 and cov["non_session_dates"] == 0


def test_kaggle_equity_has_every_session_and_nothing_else(monkeypatch):
    data = shared_data_dir(KAGGLE_STOCKS)
    if data is None:
        pytest.skip("shared/data not found (set BETA_PIPELINE_DATA_DIR)")
    monkeypatch.setenv("BETA_PIPELINE_DATA_DIR", str(data))
    from beta_pipeline.lib.sources import make_source

    prices = make_source("csv", "shared_data").load_prices(universe="equity")
    cov = calendar_coverage(prices["date"])
    assert cov["sessions"] == 1259  # 2013-02-08 .. 2018-02-07
    assert cov["missing_sessions"] == 0 and cov["non_session_dates"] == 0

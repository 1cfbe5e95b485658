"""The exchange calendar: which days are trading sessions (NYSE, ``exchange_calendars`` XNYS).

Partitions, checks and sources ask this module, never ``pd.bdate_range``: a US holiday
(Thanksgiving, Good Friday, the 2001-09-11 closure, ...) expects no data and is not an
error; a session with no data is.

The calendar is known from ``HISTORY_START`` (exchange_calendars models the XNYS regular
holidays from 1970 on) to ``calendar_end()`` (about a year after the library's release).
Outside that range every weekday counts as a session (no holidays are known there). The
vectorised helpers (``session_mask``, ``count_sessions``, ``offset_sessions``) use one
cached ``numpy.busdaycalendar`` with the same rule, so they agree with ``sessions``.
"""

from __future__ import annotations

import datetime
import functools

import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
#: First day of the daily partitions (the pipeline's history starts here).
CALENDAR_START = "1990-01-01"
#: First day the calendar is built for: XNYS regular holidays are modelled from 1970 on;
#: earlier weekdays all count as sessions.
HISTORY_START = "1970-01-01"
#: Time zone of the exchange; a session is complete after its close in this zone.
EXCHANGE_TZ = "America/New_York"


@functools.cache
def _calendar():
    import exchange_calendars as xc

    # exchange_calendars takes its start day as a session even on a holiday (1970-01-01):
    # build from a little earlier and cut at HISTORY_START
    early = pd.Timestamp(HISTORY_START) - pd.Timedelta(days=10)
    return xc.get_calendar(EXCHANGE, start=early.strftime("%Y-%m-%d"))


def _day(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    return stamp.normalize()


@functools.cache
def _all_sessions() -> pd.DatetimeIndex:
    """Every session the calendar knows (``HISTORY_START`` .. ``calendar_end()``)."""
    sessions = _calendar().sessions
    known = pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz else sessions)
    return known[known >= pd.Timestamp(HISTORY_START)]


@functools.cache
def business_calendar() -> np.busdaycalendar:
    """numpy's business-day calendar of XNYS: Mon-Fri minus the known exchange holidays."""
    known = _all_sessions()
    closed = pd.bdate_range(HISTORY_START, known[-1]).difference(known)
    return np.busdaycalendar(weekmask="1111100", holidays=closed.to_numpy(dtype="datetime64[D]"))


def _days(values: object) -> np.ndarray:
    """Dates (scalars, arrays, Series, DatetimeIndex) as ``datetime64[D]``."""
    stamps = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(np.asarray(values))))
    if stamps.tz is not None:
        stamps = stamps.tz_convert(None)
    return stamps.to_numpy(dtype="datetime64[D]")


def calendar_end() -> pd.Timestamp:
    """Last day the calendar knows (about a year ahead of the library's release)."""
    return _all_sessions()[-1]


def sessions(start: object, end: object) -> pd.DatetimeIndex:
    """Trading sessions in [start, end] (inclusive, naive dates).

    Days before ``HISTORY_START`` or after the calendar's horizon count as weekdays."""
    first, last = _day(start), _day(end)
    if last < first:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    days = np.arange(
        first.to_datetime64(), (last + pd.Timedelta(days=1)).to_datetime64(), dtype="datetime64[D]"
    )
    open_days = days[np.is_busday(days, busdaycal=business_calendar())]
    return pd.DatetimeIndex(open_days.astype("datetime64[ns]"))


def is_session(day: object) -> bool:
    """Whether ``day`` is a trading session."""
    return bool(np.is_busday(_days(day)[0], busdaycal=business_calendar()))


def session_mask(dates: object) -> np.ndarray:
    """Vectorised ``is_session``: a boolean array, one entry per date."""
    return np.is_busday(_days(dates), busdaycal=business_calendar())


def count_sessions(start: object, end: object) -> np.ndarray:
    """Vectorised number of sessions in [start, end) (negative when end < start)."""
    return np.busday_count(_days(start), _days(end), busdaycal=business_calendar())


def offset_sessions(day: object, n: int | np.ndarray) -> np.ndarray:
    """The ``n``-th session after ``day`` (before it when ``n`` < 0), vectorised.

    A non-session ``day`` first rolls to the session before it for ``n`` > 0 and to the
    session after it for ``n`` <= 0, so ``n=1`` is always the first session after ``day``,
    ``n=-1`` the last one before it, and ``n=0`` the first session on or after it."""
    days = _days(day)
    steps = np.broadcast_to(np.asarray(n), days.shape)
    out = np.empty(days.shape, dtype="datetime64[D]")
    after = steps > 0
    cal = business_calendar()
    if after.any():
        out[after] = np.busday_offset(days[after], steps[after], roll="backward", busdaycal=cal)
    if (~after).any():
        out[~after] = np.busday_offset(days[~after], steps[~after], roll="forward", busdaycal=cal)
    return out


def shift_sessions(day: object, n: int) -> pd.Timestamp:
    """Scalar ``offset_sessions``: the ``n``-th session after (``n`` < 0: before) ``day``."""
    return pd.Timestamp(offset_sessions(day, n)[0])


def holidays(start: object, end: object) -> pd.DatetimeIndex:
    """Weekdays in [start, end] that are not sessions (exchange holidays and closures)."""
    weekdays = pd.bdate_range(_day(start), _day(end))
    return weekdays.difference(sessions(start, end))


def previous_session(day: object) -> pd.Timestamp:
    """The last session strictly before ``day``."""
    return shift_sessions(day, -1)


def next_session(day: object) -> pd.Timestamp:
    """The first session strictly after ``day``."""
    stamp = _day(day)
    later = sessions(stamp + pd.Timedelta(days=1), stamp + pd.Timedelta(days=15))
    return later[0]


def session_close(day: object) -> pd.Timestamp:
    """Close of the session ``day`` as a UTC timestamp (early closes included)."""
    stamp = _day(day)
    known = _all_sessions()
    if known[0] <= stamp <= known[-1]:
        return pd.Timestamp(_calendar().session_close(stamp)).tz_convert("UTC")
    return pd.Timestamp(stamp.strftime("%Y-%m-%d") + " 16:00", tz=EXCHANGE_TZ).tz_convert("UTC")


def last_complete_session(now: datetime.datetime | pd.Timestamp | None = None) -> pd.Timestamp:
    """The newest session whose close has passed at ``now`` (default: the current time)."""
    moment = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    day = moment.tz_convert(EXCHANGE_TZ).tz_localize(None).normalize()
    candidates = sessions(day - pd.Timedelta(days=15), day)
    for session in reversed(candidates):
        if session_close(session) <= moment:
            return session
    return previous_session(candidates[0])

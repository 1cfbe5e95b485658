"""The exchange calendar: which days are trading sessions (NYSE, ``exchange_calendars`` XNYS).

Partitions, checks and sources ask this module, never ``pd.bdate_range``: a US holiday
(Thanksgiving, Good Friday, the 2001-09-11 closure, ...) expects no data and is not an
error; a session with no data is.
"""

from __future__ import annotations

import datetime
import functools

import pandas as pd

EXCHANGE = "XNYS"
#: First day the calendar is built for (the partitions start here too).
CALENDAR_START = "1990-01-01"
#: Time zone of the exchange; a session is complete after its close in this zone.
EXCHANGE_TZ = "America/New_York"


@functools.cache
def _calendar():
    import exchange_calendars as xc

    return xc.get_calendar(EXCHANGE, start=CALENDAR_START)


def _day(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    return stamp.normalize()


@functools.cache
def _all_sessions() -> pd.DatetimeIndex:
    sessions = _calendar().sessions
    return pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz else sessions)


def calendar_end() -> pd.Timestamp:
    """Last day the calendar knows (about a year ahead of the library's release)."""
    return _all_sessions()[-1]


def sessions(start: object, end: object) -> pd.DatetimeIndex:
    """Trading sessions in [start, end] (inclusive, naive dates).

    Days after the calendar's horizon count as weekdays (no known holidays there)."""
    first, last = _day(start), _day(end)
    known = _all_sessions()
    inside = known[(known >= first) & (known <= last)]
    if last > known[-1]:
        inside = inside.append(pd.bdate_range(max(first, known[-1] + pd.Timedelta(days=1)), last))
    return inside


def is_session(day: object) -> bool:
    """Whether ``day`` is a trading session."""
    stamp = _day(day)
    if stamp > _all_sessions()[-1]:
        return stamp.weekday() < 5
    return bool(_all_sessions().isin([stamp]).any())


def holidays(start: object, end: object) -> pd.DatetimeIndex:
    """Weekdays in [start, end] that are not sessions (exchange holidays and closures)."""
    weekdays = pd.bdate_range(_day(start), _day(end))
    return weekdays.difference(sessions(start, end))


def previous_session(day: object) -> pd.Timestamp:
    """The last session strictly before ``day``."""
    stamp = _day(day)
    earlier = sessions(stamp - pd.Timedelta(days=15), stamp - pd.Timedelta(days=1))
    return earlier[-1]


def session_close(day: object) -> pd.Timestamp:
    """Close of the session ``day`` as a UTC timestamp (early closes included)."""
    stamp = _day(day)
    if stamp <= _all_sessions()[-1]:
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

"""The market's clock: trading hours, name times as market times, the NYSE
sessions, and the days the quality check asks users to look at.

Shared by the timestamp check, the date-coverage check and the review page,
so that all three flag the same files and name the same days.
"""
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import config
from discordpicextract.errors import UsageError

# The QUALITY CHECK REMINDER asks for a look this many days before the first
# and after the last date with outside-hours files.
REMINDER_DAYS = 3


def trading_hours():
    """(start, end) from config; a malformed value is a usage error."""
    try:
        return time.fromisoformat(config.TRADING_START), time.fromisoformat(config.TRADING_END)
    except ValueError:
        raise UsageError(f"config.TRADING_START/END must be HH:MM:SS "
                         f"(got {config.TRADING_START!r}, {config.TRADING_END!r})") from None


def zones():
    try:
        return ZoneInfo(config.TIMEZONE), ZoneInfo(config.MARKET_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone in config: TIMEZONE={config.TIMEZONE!r}, "
                         f"MARKET_TIMEZONE={config.MARKET_TIMEZONE!r}") from None


def to_market(stamp: datetime, names_zone=None) -> datetime:
    """A naive name time, written in `names_zone` (a folder's recorded zone;
    default config.TIMEZONE), as naive market time. fold=0 on a naive
    datetime: gap times use the pre-transition offset, ambiguous times
    their first occurrence."""
    return market_reader(names_zone)(stamp)


def market_reader(names_zone=None):
    """to_market for the many name times of one zone: the zones are looked
    up once, not per file."""
    name_zone, market_zone = zones()
    if names_zone is not None:
        name_zone = _zone(names_zone)
    if name_zone.key == market_zone.key:
        return _same
    return lambda stamp: stamp.replace(tzinfo=name_zone).astimezone(market_zone).replace(tzinfo=None)


def _same(stamp: datetime) -> datetime:
    return stamp


def _zone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone: {name!r}") from None


def is_outside(moment: time, start: time, end: time) -> bool:
    return not start <= moment <= end


def reminder_windows(first: date, last: date):
    """The two date ranges the QUALITY CHECK REMINDER names: a few days
    before the first and after the last date with outside-hours files."""
    return ((first - timedelta(days=REMINDER_DAYS), first),
            (last, last + timedelta(days=REMINDER_DAYS)))


def nyse_sessions(first, last):
    """Weekdays from `first` to `last` that are not NYSE holidays."""
    import holidays

    closed = holidays.NYSE(years=range(first.year, last.year + 1))
    days, day = [], first
    while day <= last:
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    return days

"""Values the rename scripts take on the command line (dates, hours,
yes/no), each parser raising ValueError with a message to show, and the
shift function `plan.plan_renames` applies."""
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Callable, Optional


def _parse_iso(text, length, parse, what):
    """`parse` of exactly `length` characters (fromisoformat alone would
    take other forms too); ValueError naming `what` was expected."""
    text = str(text).strip()
    try:
        if len(text) != length:
            raise ValueError
        return parse(text)
    except ValueError:
        raise ValueError(f"invalid {what[0]} {text!r} (expected {what[1]})") from None


def parse_date(text) -> date:
    """A `yyyy-mm-dd` date; ValueError with a message to show otherwise."""
    return _parse_iso(text, 10, date.fromisoformat, ("date", "yyyy-mm-dd, a real calendar date"))


def parse_clock(text) -> time:
    """A time of day, HH:MM:SS."""
    return _parse_iso(text, 8, time.fromisoformat, ("time", "HH:MM:SS, e.g. 09:30:00"))


def end_not_before(start, end):
    """`end`, unless it is before `start` (ValueError with a message to show)."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return end


def parse_hours(text) -> Decimal:
    """Hours to add: a non-zero integer or decimal number (negative
    subtracts) that is a whole number of seconds, e.g. -5, 3, 5.5, -0.25."""
    raw = str(text).strip()
    try:
        hours = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"hours must be a number, e.g. -5 or 1.5 (got {raw!r})") from None
    if not hours.is_finite():
        raise ValueError(f"hours must be a finite number (got {raw!r})")
    if hours == 0:
        raise ValueError("hours must not be 0 (nothing would change)")
    if abs(hours) > 24 * 366 * 100:
        raise ValueError(f"hours out of range (got {raw!r})")
    if (hours * 3600) % 1:
        raise ValueError(f"hours must be a whole number of seconds (got {raw!r})")
    return hours


def hours_delta(hours) -> timedelta:
    return timedelta(seconds=int(Decimal(hours) * 3600))


def format_hours(hours) -> str:
    """-5, 3, 1.5: how the user wrote it, without trailing zeros."""
    return format(Decimal(hours).normalize(), "f")


def parse_yes_no(text) -> bool:
    answer = str(text).strip().lower()
    if answer in ("y", "yes"):
        return True
    if answer in ("n", "no"):
        return False
    raise ValueError("please answer Yes or No")


def shift_by(hours, select: Optional[Callable] = None) -> Callable:
    """A shift function for `plan_renames`: the name time moved by `hours`
    (naive wall-clock arithmetic, so day, month and year roll over), for the
    names `select(parsed)` accepts (all when None)."""
    delta = hours_delta(hours)

    def shift(parsed):
        if select is not None and not select(parsed):
            return None
        return parsed.timestamp + delta
    if select is None:   # every name by one amount: the planner may shift names without parsing them
        shift.delta = delta   # type: ignore[attr-defined]
    return shift

"""Periods of names off by the same amount, found from how each date's
times sit against the trading session, or from the truth where it is known.

A date's files fit the session after a shift of `offset` (name minus true
time) when every time minus the offset falls inside START..END; the shifts
that fit form the interval [latest - END, earliest - START]. A date with a
post outside hours excludes 0; a quiet date (no post in the hour that moved)
still fits its neighbours' shift, so consecutive dates are grouped while
one whole-hour shift fits them all (greedy, which gives the fewest
periods). A date `--verify` knows carries its exact offset instead: the
truth wins over the estimate. An edge date that fits both sides is kept on
the side that changes nothing and named, to be checked by hand.

When periods follow the names' zone's daylight-saving changes, and the
implied zone of the names (offset + the zone's UTC offset) is one fixed
offset all along, the names were written in a fixed zone (UTC, say):
`--from-zone` fixes them all at once, which `--adjust` lines cannot do
across the changes.
"""
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Optional

from discordpicextract.timestamps.convert import zone_info

HOUR = 3600
MAX_SHIFT_HOURS = 14


def seconds_of(moment: time) -> int:
    return moment.hour * HOUR + moment.minute * 60 + moment.second


# --- verified periods --------------------------------------------------------------

@dataclass(frozen=True)
class OffsetPeriod:
    start: date
    end: date
    offset: int      # seconds, name minus post time
    count: int       # files off by `offset` in the period


def group_offsets(entries) -> list:
    """Periods of consecutive dates with files off by the same offset, from
    (date, offset seconds) of every file whose truth is known (0: agrees).
    A known date without that offset ends the period; dates with no known
    file do not. Sorted by start, then offset."""
    by_date: dict = {}
    for day, offset in entries:
        by_date.setdefault(day, Counter())[offset] += 1
    days = sorted(by_date)
    periods = []
    for offset in sorted({o for counts in by_date.values() for o in counts if o}):
        run = []
        for day in [*days, None]:
            if day is not None and by_date[day][offset]:
                run.append(day)
                continue
            if run:
                periods.append(OffsetPeriod(run[0], run[-1], offset, sum(by_date[d][offset] for d in run)))
                run = []
    return sorted(periods, key=lambda p: (p.start, p.offset))


# --- estimated periods ---------------------------------------------------------------

@dataclass(frozen=True)
class DayFit:
    """What a date's times allow: offsets lo..hi (seconds) fit the session."""

    day: date
    lo: int
    hi: int
    count: int
    mean: float                    # mean time of day, seconds
    verified: Optional[int] = None  # the date's offset the truth gives
    mixed: bool = False            # its known files disagree among themselves

    def fits(self, offset) -> bool:
        return self.lo <= offset <= self.hi


def fit_day(day, seconds, start, end, verified=None, mixed=False) -> DayFit:
    """`seconds`: the date's times of day; `start`/`end`: the session's."""
    if verified is not None:
        return DayFit(day, verified, verified, len(seconds), _mean(seconds), verified, mixed)
    lo = _ceil_hour(max(seconds) - end)
    hi = _floor_hour(min(seconds) - start)
    lo, hi = max(lo, -MAX_SHIFT_HOURS * HOUR), min(hi, MAX_SHIFT_HOURS * HOUR)
    return DayFit(day, lo, hi, len(seconds), _mean(seconds))


def _mean(seconds):
    return sum(seconds) / len(seconds) if seconds else 0.0


def _ceil_hour(value):
    return -((-value) // HOUR) * HOUR


def _floor_hour(value):
    return (value // HOUR) * HOUR


@dataclass
class Run:
    """Consecutive dates one offset fits."""

    days: list                  # [DayFit]
    offset: int = 0             # seconds, name minus true time
    lo: int = 0                 # the offsets that fit every date
    hi: int = 0
    edge_dates: list = field(default_factory=list)  # neighbours that fit this run's offset too
    follows_dst: bool = False   # a neighbour across a DST change implies the same names' zone

    @property
    def start(self) -> date:
        return self.days[0].day

    @property
    def end(self) -> date:
        return self.days[-1].day

    @property
    def files(self) -> int:
        return sum(d.count for d in self.days)

    @property
    def verified_dates(self) -> list:
        return [d.day for d in self.days if d.verified is not None]

    @property
    def estimated_dates(self) -> list:
        return [d.day for d in self.days if d.verified is None]

    def adjust_hours(self) -> Optional[Decimal]:
        """HOURS for `--adjust START:END:HOURS` that undoes the offset, or
        None when no whole number of seconds in hours can say it."""
        hours = Decimal(-self.offset) / Decimal(HOUR)
        return hours if hours * HOUR == -self.offset else None

    def adjust_line(self) -> Optional[str]:
        from discordpicextract.renames.values import format_hours

        hours = self.adjust_hours()
        return f"--adjust {self.start}:{self.end}:{format_hours(hours)}" if hours is not None else None


@dataclass
class Estimate:
    runs: list = field(default_factory=list)       # [Run], every date in order (offset 0 included)
    irregular: list = field(default_factory=list)  # [DayFit] no single whole-hour shift fits
    from_zone: Optional[str] = None                # fixed zone that explains every run
    zone: str = ""

    @property
    def periods(self) -> list:
        """The runs that need a shift."""
        return [run for run in self.runs if run.offset]


def estimate_periods(day_seconds, start, end, zone, verified=None) -> Estimate:
    """Pure. `day_seconds`: {market date: [time of day in seconds]};
    `start`/`end`: the session in seconds; `zone`: the names' zone (for
    the daylight-saving test); `verified`: {date: (offset seconds, mixed)}."""
    verified = verified or {}
    out = Estimate(zone=str(zone))
    fits = []
    for day in sorted(day_seconds):
        seconds = day_seconds[day]
        if not seconds:
            continue
        offset, mixed = verified.get(day, (None, False))
        fit = fit_day(day, seconds, start, end, offset, mixed)
        if fit.lo > fit.hi:
            out.irregular.append(fit)
        fits.append(fit)
    out.runs = _segment(fits)
    reference = _usual_time([run for run in out.runs if run.lo <= 0 <= run.hi], (start + end) / 2)
    for run in out.runs:
        _choose_offset(run, reference)
    _name_edges(out.runs)
    out.from_zone = _fixed_zone(out.runs, zone)
    return out


def _segment(fits) -> list:
    """Runs in date order. A run that needs a shift starts at a date that
    excludes 0 and takes the following dates while one offset fits them all;
    dates that fit 0 join it only between two such dates (a quiet date inside
    a period), never at its ends. Everything else is an offset-0 run."""
    runs, zeros = [], []
    shifted: list = []
    pending: list = []  # the open shifted run; 0-fitting dates after its last needy date
    lo = hi = 0

    def close():
        nonlocal shifted, pending
        if shifted:
            runs.append(Run(shifted, lo=lo, hi=hi))
        zeros.extend(pending)
        shifted, pending = [], []

    for fit in fits:
        if fit.lo > fit.hi:  # irregular: no run reaches across it
            close()
            _flush_zeros(runs, zeros)
            continue
        needy = not fit.fits(0)
        if not needy:
            if shifted and max(lo, fit.lo) <= min(hi, fit.hi):
                pending.append(fit)
            else:
                close()
                zeros.append(fit)
            continue
        with_pending = [*pending, fit]
        new_lo, new_hi = max([lo, *(f.lo for f in with_pending)]), min([hi, *(f.hi for f in with_pending)])
        if shifted and new_lo <= new_hi:
            shifted += with_pending
            pending, lo, hi = [], new_lo, new_hi
            continue
        close()
        _flush_zeros(runs, zeros)
        shifted, lo, hi = [fit], fit.lo, fit.hi
    close()
    _flush_zeros(runs, zeros)
    return sorted(runs, key=lambda run: run.start)


def _flush_zeros(runs, zeros):
    """The 0-fitting dates collected so far as offset-0 runs of consecutive
    dates (consecutive in the list: a shifted run in between splits them)."""
    if zeros:
        runs.append(Run(list(zeros)))
        zeros.clear()


def _usual_time(runs, default) -> float:
    """The mean time of day of the files on dates that need no shift: where
    this channel's posts usually sit in the session (its middle if none)."""
    files = sum(run.files for run in runs)
    if not files:
        return default
    return sum(d.mean * d.count for run in runs for d in run.days) / files


def _choose_offset(run, reference):
    """0 for a run of dates that fit 0; the truth's offset when a date is
    verified (then lo == hi); else the whole hour that moves the run's mean
    time nearest to where the unshifted dates' posts sit, within what fits."""
    if run.lo <= 0 <= run.hi:
        run.offset = 0
        return
    if run.lo == run.hi:
        run.offset = run.lo
        return
    files = run.files or 1
    mean = sum(d.mean * d.count for d in run.days) / files
    nearest = round((mean - reference) / HOUR) * HOUR
    run.offset = min(max(nearest, run.lo), run.hi)


def _name_edges(runs):
    """The unshifted dates right beside a shifted run that fit its offset
    too: the data cannot tell on which side they belong (check by hand)."""
    for i, run in enumerate(runs):
        if not run.offset:
            continue
        before = runs[i - 1].days if i > 0 and not runs[i - 1].offset else []
        after = runs[i + 1].days if i + 1 < len(runs) and not runs[i + 1].offset else []
        edges: list = []
        for fit in reversed(before):
            if fit.verified is not None or not fit.fits(run.offset):
                break
            edges.insert(0, fit.day)
        for fit in after:
            if fit.verified is not None or not fit.fits(run.offset):
                break
            edges.append(fit.day)
        run.edge_dates = edges


def utc_offset_on(day, zone) -> int:
    """`zone`'s UTC offset at noon of `day`, in seconds."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=zone_info(str(zone)))
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _run_zone_offset(run, zone):
    """The zone's UTC offset over the run, or None when it changes inside."""
    offsets = {utc_offset_on(fit.day, zone) for fit in run.days}
    return offsets.pop() if len(offsets) == 1 else None


def _fixed_zone(runs, zone) -> Optional[str]:
    """Mark the periods that follow the zone's daylight-saving changes; when
    one fixed zone explains every run, return its name."""
    local = [_run_zone_offset(run, zone) for run in runs]
    implied = [None if off is None else run.offset + off for run, off in zip(runs, local)]
    for i, run in enumerate(runs):
        if not run.offset or implied[i] is None:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(runs) and implied[j] == implied[i] and local[j] != local[i]:
                run.follows_dst = True
    if not any(run.follows_dst for run in runs) or None in implied or len(set(implied)) != 1:
        return None
    return fixed_zone_name(implied[0])


def fixed_zone_name(offset_seconds) -> Optional[str]:
    """An IANA name for a fixed UTC offset: UTC, or Etc/GMT-N (whose sign is
    the reverse of the offset's: Etc/GMT+5 is UTC-5); None for offsets no
    such zone has."""
    if offset_seconds == 0:
        return "UTC"
    if offset_seconds % HOUR or not -12 * HOUR <= offset_seconds <= 14 * HOUR:
        return None
    return f"Etc/GMT{-offset_seconds // HOUR:+d}"


def day_offsets_from_truth(checked, to_market_date) -> dict:
    """{market date: (offset seconds, mixed)} from verify's checked files:
    the date's most common offset; mixed when its files disagree."""
    by_date: dict = {}
    for item in checked:
        by_date.setdefault(to_market_date(item.named), Counter())[int(item.offset.total_seconds())] += 1
    return {day: (counts.most_common(1)[0][0], len(counts) > 1) for day, counts in by_date.items()}


def is_dst(day, zone) -> bool:
    """Whether `zone` keeps daylight saving time at noon of `day`."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=zone_info(str(zone)))
    return bool(moment.dst() and moment.dst() != timedelta(0))

"""The review page's model: which images, what is flagged, which pairs.

Pure: built from the folders' listings, the duplicate pairs and (when
known) the post times; reads no file. `render` turns it into HTML.

- An *entry* is one image name over the pipeline folders (download, clean,
  one-per-day); the same name in several folders is one image shown once.
- Days are the market dates of the names, read in each folder's zone (what
  one-per-day and the date check count); dedupe's pairs stay within a name
  date, as dedupe compares. The outside-hours flag is the quality check's
  own test (market time against config.TRADING_START..END), so the page
  flags exactly the files the check counts.
- *Removed*: in the download folder but not in the clean folder (only when
  the clean folder holds images, i.e. dedupe ran). A removed image is shown
  beside the kept image it duplicates (its `Pair`), or on its own, flagged,
  when no kept image matches it.
"""
import bisect
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Optional

import config
from discordpicextract import market, naming
from discordpicextract.timestamps import periods
from discordpicextract.timestamps.truth import format_offset

_Date = date  # Entry.date shadows the type inside the class
DOWNLOAD, CLEAN, DAILY = "download", "clean", "daily"
ROLES = (DOWNLOAD, CLEAN, DAILY)
ROLE_LABELS = {DOWNLOAD: "downloaded", CLEAN: "deduplicated", DAILY: "one per day"}


@dataclass(frozen=True)
class FolderInput:
    role: str                       # one of ROLES
    path: Path
    listing: naming.FolderListing
    zone: Optional[str] = None      # the zone its names are written in (None: config.TIMEZONE)


@dataclass(frozen=True)
class Reminder:
    """Dates the QUALITY CHECK REMINDER asks to look at, and why."""

    why: str
    first: date
    last: date


@dataclass(frozen=True)
class Pair:
    """How a removed image duplicates a kept one."""

    kept: str                       # the kept image's name
    seconds: float                  # removed time minus kept time
    distance: Optional[int]         # pHash bits between them (None: not known)


@dataclass
class Entry:
    name: str
    timestamp: datetime             # the name's time (config.TIMEZONE)
    market_time: datetime           # the same instant in config.MARKET_TIMEZONE
    path: str                       # the copy the thumbnail is made from
    roles: list[str]                # the folders holding it, in ROLES order
    outside: bool = False           # outside trading hours (the quality check's test)
    pick: bool = False              # the one-per-day pick of its date
    removed: bool = False           # left out by dedupe
    pair: Optional[Pair] = None     # for a removed image: what it duplicates
    post_time: Optional[datetime] = None  # true post time, where known

    @property
    def date(self) -> date:
        """The name's date: what dedupe compares within."""
        return self.timestamp.date()

    @property
    def day(self) -> "_Date":
        """The market's date: the trading day it shows (one per day and the
        date check count these)."""
        return self.market_time.date()

    @functools.cached_property
    def time_off(self) -> Optional[timedelta]:
        """Post time minus name time, when known and not the same second.
        Worked out once (the page asks a few times per image): post_time is
        set by plan_entries before anything reads this."""
        if self.post_time is None:
            return None
        off = self.post_time.replace(microsecond=0) - self.timestamp
        return off if off else None


@dataclass
class Tile:
    """A thumbnail on a day's sheet, with the removed duplicates of it."""

    entry: Entry
    duplicates: list[Entry] = field(default_factory=list)


@dataclass
class Day:
    date: date
    tiles: list[Tile]
    reminder: bool = False          # named by the QUALITY CHECK REMINDER

    @property
    def entries(self) -> list[Entry]:
        return [e for tile in self.tiles for e in (tile.entry, *tile.duplicates)]


@dataclass
class FolderSummary:
    role: str
    path: Path
    images: int
    skipped: list[str]              # names not parsed, folders or broken links
    dates: list[date]
    outside: int
    missing_sessions: list[date]    # NYSE sessions of the archive's span without an image here
    zone: Optional[str] = None      # the zone its names are written in


@dataclass
class ReviewModel:
    folders: list[FolderSummary]
    entries: list[Entry]            # (timestamp, name) order
    days: list[Day]                 # reminder days first, then the others, each in date order
    reminders: list[Reminder]       # what the quality check's reminder names
    missing_sessions: list[date]    # sessions without an image in any folder
    verified: bool                  # post times were given

    @property
    def removed(self) -> list[Entry]:
        return [e for e in self.entries if e.removed]

    @property
    def unmatched(self) -> list[Entry]:
        return [e for e in self.entries if e.removed and e.pair is None]

    @property
    def outside(self) -> list[Entry]:
        return [e for e in self.entries if e.outside]

    @property
    def wrong_time(self) -> list[Entry]:
        return [e for e in self.entries if e.time_off is not None]

    @property
    def known_time(self) -> list[Entry]:
        return [e for e in self.entries if e.post_time is not None]


def plan_entries(folders: list[FolderInput], post_times: Optional[Mapping[str, datetime]] = None) -> list[Entry]:
    """One Entry per image name over all folders, flags set except pairs."""
    start, end = market.trading_hours()
    by_name: dict[str, Entry] = {}
    for folder in folders:
        if not folder.listing.images:
            continue
        prefix: dict[Path, str] = {}  # image.folder -> its str: a path per image without a Path per image
        market_of = market.market_reader(folder.zone)  # the zones looked up once a folder, not per image
        for image in folder.listing.images:
            entry = by_name.get(image.name)
            if entry is None:
                moment = market_of(image.timestamp)
                base = prefix.get(image.folder)
                if base is None:
                    base = prefix[image.folder] = "" if str(image.folder) == "." else os.path.join(image.folder, "")
                entry = by_name[image.name] = Entry(
                    image.name, image.timestamp, moment, base + image.name, [],
                    outside=market.is_outside(moment.time(), start, end))
            entry.roles.append(folder.role)
    roles = {folder.role: folder for folder in folders}
    dedupe_ran = CLEAN in roles and bool(roles[CLEAN].listing.images)
    for entry in by_name.values():
        entry.pick = DAILY in entry.roles
        entry.removed = dedupe_ran and DOWNLOAD in entry.roles and CLEAN not in entry.roles
        if post_times is not None:
            entry.post_time = post_times.get(entry.name)
    return sorted(by_name.values(), key=lambda e: (e.timestamp, e.name))


class Candidates:
    """For each removed image, the kept images it may duplicate: dedupe
    compares images of one date and keeps the earliest, so the kept image
    of a pair is a kept image of the same date, not later than it. Lists
    are cut from each date's kept images on demand (bisect), so memory
    stays linear however many images a date has."""

    def __init__(self, entries: list[Entry]):
        self.removed = {e.name: e for e in entries if e.removed}
        self._by_date: dict[date, list[Entry]] = {}
        for entry in entries:  # (timestamp, name) order
            if CLEAN in entry.roles:
                self._by_date.setdefault(entry.date, []).append(entry)
        self._keys = {day: [(k.timestamp, k.name) for k in kept] for day, kept in self._by_date.items()}

    def __getitem__(self, name: str) -> list[Entry]:
        entry = self.removed[name]
        keys = self._keys.get(entry.date, [])
        return self._by_date.get(entry.date, [])[:bisect.bisect_right(keys, (entry.timestamp, entry.name))]

    def items(self):
        return ((name, self[name]) for name in self.removed)

    def kept(self) -> list[Entry]:
        """Every kept image of a date with a removed one, in time order."""
        days = {e.date for e in self.removed.values()}
        return [k for day in sorted(days) for k in self._by_date.get(day, [])]


def pair_candidates(entries: list[Entry]) -> Candidates:
    return Candidates(entries)


def plan_review(folders: list[FolderInput], entries: list[Entry], pairs: Mapping[str, Pair],
                verified: bool = False) -> ReviewModel:
    """The page: summaries, days (reminder days first) with duplicates
    beside the images they duplicate. `pairs`: removed name -> Pair."""
    kept = {e.name for e in entries if CLEAN in e.roles}
    for entry in entries:
        if entry.removed:
            # A pair holds only while its kept image is in the clean folder
            # (a report's kept image may have been deleted since).
            pair = pairs.get(entry.name)
            entry.pair = pair if pair is not None and pair.kept in kept else None
    reminders = plan_reminders(entries, _zone_of(folders))
    days = _plan_days(entries, [(r.first, r.last) for r in reminders])
    days_seen = sorted({e.day for e in entries})
    span = (days_seen[0], days_seen[-1]) if entries else None
    sessions = market.nyse_sessions(*span) if span else []
    every_date = set(days_seen)
    summaries = [_summarize(folder, entries, sessions) for folder in folders]
    return ReviewModel(summaries, entries, days, reminders,
                       [d for d in sessions if d not in every_date], verified)


@dataclass(frozen=True)
class _Known:
    """A name time and how far it is from the post time (what
    periods.day_offsets_from_truth reads)."""

    named: datetime
    offset: timedelta


def _zone_of(folders) -> Optional[str]:
    """The zone of the folder the quality check reads (the clean one)."""
    chosen = next((f for f in folders if f.role == CLEAN), folders[0] if folders else None)
    return chosen.zone if chosen else None


def plan_reminders(entries: list[Entry], zone: Optional[str]) -> list[Reminder]:
    """What the quality check's reminder names: a few days around the first
    and last outside-hours dates, and around both edges of each period the
    estimate finds shifted (post times, where known, win over the estimate),
    over the images dedupe kept, as the check reads the clean folder."""
    kept = [e for e in entries if not e.removed]
    outside = sorted({e.market_time.date() for e in kept if e.outside})
    reminders = []
    if outside:
        before, after = market.reminder_windows(outside[0], outside[-1])
        reminders += [Reminder(f"before the first date outside trading hours ({outside[0]})", *before),
                      Reminder(f"after the last date outside trading hours ({outside[-1]})", *after)]
    for number, run in enumerate(_estimate(kept, zone).periods, 1):
        before, after = market.reminder_windows(run.start, run.end)
        label = f"period {number} ({run.start}..{run.end}, names {format_offset(run.offset)})"
        reminders += [Reminder(f"where {label} starts", *before), Reminder(f"where {label} ends", *after)]
    return reminders


def _estimate(kept: list[Entry], zone: Optional[str]) -> periods.Estimate:
    start, end = market.trading_hours()
    day_seconds: dict[date, list[int]] = {}
    for entry in kept:
        day_seconds.setdefault(entry.market_time.date(), []).append(periods.seconds_of(entry.market_time.time()))
    known = [_Known(e.timestamp, e.timestamp - e.post_time.replace(microsecond=0))
             for e in kept if e.post_time is not None]
    verified = periods.day_offsets_from_truth(known, lambda stamp: market.to_market(stamp, zone).date())
    return periods.estimate_periods(day_seconds, periods.seconds_of(start), periods.seconds_of(end),
                                    zone or config.TIMEZONE, verified)


def _plan_days(entries, windows) -> list[Day]:
    tiles: dict[str, Tile] = {}
    by_date: dict[date, list[Tile]] = {}
    for entry in entries:
        if entry.removed and entry.pair is not None and entry.pair.kept in tiles:
            # Kept images come first: dedupe keeps the earliest of a group.
            tiles[entry.pair.kept].duplicates.append(entry)
            continue
        tile = tiles[entry.name] = Tile(entry)
        by_date.setdefault(entry.day, []).append(tile)
    days = [Day(day, day_tiles, reminder=any(lo <= day <= hi for lo, hi in windows))
            for day, day_tiles in sorted(by_date.items())]
    return [d for d in days if d.reminder] + [d for d in days if not d.reminder]


def _summarize(folder: FolderInput, entries, sessions) -> FolderSummary:
    mine = [e for e in entries if folder.role in e.roles]
    dates = sorted({e.day for e in mine})
    have = set(dates)
    skipped = [p.name for p in (*folder.listing.unparsed, *folder.listing.not_files)]
    return FolderSummary(folder.role, folder.path, len(mine), skipped, dates,
                         sum(e.outside for e in mine), [d for d in sessions if d not in have],
                         folder.zone)

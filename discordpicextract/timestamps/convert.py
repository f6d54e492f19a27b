"""Wall times between zones, daylight saving on both sides, and new names
for new times without ever giving two files one name.

A wall time can be ambiguous (the fall-back hour happens twice) or not
exist (the spring-forward gap). Both are read with PEP 495 `fold=0`, so the
answer is always the same and is reported:

- ambiguous: the first occurrence (the earlier instant, still on daylight
  saving time);
- nonexistent: the offset in force before the change, as if the clock had
  not sprung forward yet (02:30 in New York on the March change is read as
  02:30 EST = 03:30 EDT).
"""
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo

from discordpicextract import naming

AMBIGUOUS = "ambiguous"
NONEXISTENT = "nonexistent"
HOW_READ = {
    AMBIGUOUS: "happens twice in {zone} (the clocks went back); read as its first occurrence",
    NONEXISTENT: "does not exist in {zone} (the clocks sprang forward); read with the offset before the change",
}


@lru_cache(maxsize=64)
def zone_info(name) -> ZoneInfo:
    return ZoneInfo(name)


def wall_note(naive: datetime, zone) -> Optional[str]:
    """AMBIGUOUS, NONEXISTENT or None for a wall time in `zone`."""
    zone = zone_info(zone) if isinstance(zone, str) else zone
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    return AMBIGUOUS if back == naive else NONEXISTENT


def to_instant(naive: datetime, zone) -> datetime:
    """The aware UTC instant of a wall time in `zone` (fold=0, see above)."""
    zone = zone_info(zone) if isinstance(zone, str) else zone
    return naive.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)


def to_wall(instant: datetime, zone) -> datetime:
    """An aware instant as naive wall time in `zone`, whole seconds (as the
    downloader names files)."""
    zone = zone_info(zone) if isinstance(zone, str) else zone
    return instant.astimezone(zone).replace(tzinfo=None, microsecond=0)


def convert_wall(naive: datetime, from_zone, to_zone) -> datetime:
    """A wall time in `from_zone` as wall time in `to_zone`."""
    if from_zone == to_zone:
        return naive
    return to_wall(to_instant(naive, from_zone), to_zone)


# --- new names for new times ---------------------------------------------------

@dataclass(frozen=True)
class Wanted:
    """A file and the time its name should carry."""

    name: str            # its name now
    original: str        # the part after the time, kept
    stamp: datetime      # the new naive time
    order: object        # the order in which equal names are numbered (the instant)


@dataclass
class Targets:
    mapping: dict = field(default_factory=dict)     # {old: new}, only names that change
    unchanged: list = field(default_factory=list)   # names already right
    out_of_range: list = field(default_factory=list)  # names whose new time has no name


def plan_targets(wanted, staying) -> Targets:
    """The new name of every `wanted` file. Two files wanting one name are
    numbered as the downloader numbers them (the earliest keeps the plain
    name, then `_2`, `_3`...), and no file takes a name held by one that
    stays (`staying`: every other name in the folder). Compared without
    case, as the downloader does. Linear in the number of names."""
    out = Targets()
    moving = []
    for item in wanted:
        if not 1000 <= item.stamp.year <= 9999:
            out.out_of_range.append(item.name)
        elif naming.format_name(item.stamp, item.original) == item.name:
            out.unchanged.append(item.name)
        else:
            moving.append(item)
    taken = {name.casefold() for name in staying}
    taken.update(name.casefold() for name in out.unchanged)
    taken.update(name.casefold() for name in out.out_of_range)
    for item in sorted(moving, key=lambda w: (w.order, w.name)):
        new = naming.unique_name(naming.format_name(item.stamp, item.original),
                                 lambda candidate: candidate.casefold() in taken)
        taken.add(new.casefold())
        out.mapping[item.name] = new
    return out


@dataclass
class Conversion:
    targets: Targets
    notes: list = field(default_factory=list)  # [(name, AMBIGUOUS or NONEXISTENT)]


def plan_conversion(images, staying, from_zone, to_zone) -> Conversion:
    """New names for `images` (naming.ImageFile or anything with .name and
    .parsed) read as wall time in `from_zone`, written in `to_zone`."""
    wanted, notes = [], []
    for image in images:
        stamp = image.parsed.timestamp
        note = wall_note(stamp, from_zone)
        if note:
            notes.append((image.name, note))
        instant = to_instant(stamp, from_zone)
        try:
            new = to_wall(instant, to_zone)
        except OverflowError:
            new = datetime.min  # outside any name: reported as out of range
        wanted.append(Wanted(image.name, image.parsed.original, new, instant))
    return Conversion(plan_targets(wanted, staying), notes)

"""File names for image items (pure): deterministic, collision-free, in
posting order, and released page by page only once no later page can
change them."""
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import config
from discordpicextract import naming
from discordpicextract.discord.extract import ImageItem, extract_images, message_time

# The part of a name that no collision suffix touches: YYYY-MM-DD_HH-MM-SS.
SECOND = len("YYYY-MM-DD_HH-MM-SS")


@dataclass(frozen=True)
class PlannedDownload:
    item: ImageItem
    name: str            # the reserved, collision-free file name
    base: str            # the name before any collision suffix
    refreshed: bool = False
    compare_with: tuple = ()  # unclaimed files on disk that may hold this image


def local_time(posted, zone) -> datetime:
    """A message time as naive local time in `zone`, whole seconds."""
    return posted.astimezone(zone).replace(tzinfo=None, microsecond=0)


def plan_names(items, existing, tz=config.TIMEZONE):
    """Deterministic, collision-free names for `items`.

    `existing` holds names already taken (on disk or reserved), compared
    case-insensitively. Items sharing a name (several `image.png` in one
    second) are numbered in posting order: the earliest keeps the plain name.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    taken = {name.casefold() for name in existing}
    plans = []
    for item in sorted(items, key=lambda i: (i.posted, int(i.message_id), i.index)):
        base = naming.format_name(local_time(item.posted, zone), item.original)
        name = naming.unique_name(base, lambda n: n.casefold() in taken)
        taken.add(name.casefold())
        plans.append(PlannedDownload(item, name, base))
    return plans


def name_family(base, names):
    """Names in `names` that are `base` or `base` with a collision suffix."""
    stem, ext = os.path.splitext(base)
    pattern = re.compile(re.escape(stem) + r"(_\d+)?" + re.escape(ext) + "$", re.IGNORECASE)
    return sorted(n for n in names if pattern.match(n))


def release_batches(pages, zone):
    """Turn message pages (newest first) into item batches that can be named
    without knowing later pages: items posted in the oldest second of a page
    wait for the next page, which may hold more items of that same second."""
    held: list[ImageItem] = []
    for page in pages:
        items = held + [item for message in page for item in extract_images(message)]
        latest = _latest_wall_time_until(min(message_time(m) for m in page), zone)
        ready = [i for i in items if local_time(i.posted, zone) > latest]
        held = [i for i in items if local_time(i.posted, zone) <= latest]
        yield ready, len(page)
    if held:
        yield held, 0


def _latest_wall_time_until(moment, zone):
    """The latest local time that any moment up to `moment` shows: when
    clocks go back in autumn, an hour of wall times repeats, so an older
    message can carry a later name than a newer one."""
    offsets = [(moment - timedelta(hours=hours)).astimezone(zone).utcoffset() for hours in (0, 3)]
    return (moment + max(offsets)).replace(tzinfo=None, microsecond=0)

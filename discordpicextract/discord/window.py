"""Which messages a run reads (pure): a time window, optionally bounded by
message IDs, from `--days`, `--after` / `--before` (a date or a message ID)
and `--since-last`; and Discord's links to channels, threads and messages."""
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

DISCORD_EPOCH_MS = 1420070400000
_SNOWFLAKE = re.compile(r"^\d{15,21}$")
# https://discord.com/channels/GUILD/CHANNEL, .../CHANNEL/MESSAGE, and a
# forum post's .../PARENT/threads/THREAD (also ptb./canary., discordapp.com,
# and pasted without its https://, as a browser's address bar may show it)
_LINK = re.compile(r"^(?:https?://)?(?:(?:ptb|canary|www)\.)?discord(?:app)?\.com/channels/"
                   r"(?P<guild>\d{15,21}|@me)/(?P<channel>\d{15,21})(?:/threads/(?P<thread>\d{15,21}))?"
                   r"(?:/(?P<message>\d{15,21}))?/?$")
# anything with a scheme or Discord's /channels/ path is meant as a link, never as a channel name
_LINK_LIKE = re.compile(r"^[a-z][a-z0-9+.-]*://|/channels/", re.IGNORECASE)


def snowflake_time(snowflake) -> datetime:
    return datetime.fromtimestamp(((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000, tz=timezone.utc)


def snowflake_at(moment) -> int:
    """The smallest snowflake made at `moment` (aware)."""
    return max(0, (int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)


def is_snowflake(text) -> bool:
    return bool(_SNOWFLAKE.match(text.strip()))


def looks_like_link(text) -> bool:
    return bool(_LINK_LIKE.search(text.strip()))


def channel_from_link(text) -> Optional[str]:
    """The channel (or thread) ID of a link as Discord's "Copy Link" gives
    it, or None when `text` is not such a link."""
    match = _LINK.match(text.strip())
    if match is None:
        return None
    return match.group("thread") or match.group("channel")


@dataclass(frozen=True)
class Window:
    """Messages posted at or after `start`, with an ID above `after_id`
    and below `before_id` when those are set."""

    start: datetime
    after_id: Optional[int] = None
    before_id: Optional[int] = None

    def keeps(self, message) -> bool:
        """False for a message older than the window (pages are newest first:
        the first such message ends the paging)."""
        from discordpicextract.discord.extract import message_time

        if self.after_id is not None and int(message["id"]) <= self.after_id:
            return False
        return message_time(message) >= self.start

    def since(self, message_id) -> "Window":
        """This window narrowed to messages newer than `message_id`."""
        if message_id is None:
            return self
        newest = int(message_id)
        after = newest if self.after_id is None else max(self.after_id, newest)
        return replace(self, after_id=after, start=max(self.start, snowflake_time(after)))


def as_window(cutoff) -> Window:
    return cutoff if isinstance(cutoff, Window) else Window(cutoff)


def parse_bound(text, tz):
    """A `--after` / `--before` value: a message ID (int), or a date
    `yyyy-mm-dd` as the aware moment its day starts in `tz`. ValueError
    with a message to show otherwise."""
    text = text.strip()
    if is_snowflake(text):
        return int(text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (yyyy-mm-dd) or a message ID: {text!r}") from None
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz) if isinstance(tz, str) else tz)


def plan_window(now, days=None, after=None, before=None) -> Window:
    """The window of `--days` (back from `now`) or `--after`, up to `--before`;
    bounds as parse_bound gives them."""
    if after is None:
        window = Window(now - timedelta(days=days))
    elif isinstance(after, int):
        window = Window(snowflake_time(after), after_id=after)
    else:
        window = Window(after.astimezone(timezone.utc))
    if window.start > now:
        # Nothing can have been posted yet: an empty run saying "0 images" would
        # read as a quiet channel, not as a mistyped date.
        raise ValueError(f"--after is in the future ({window.start:%Y-%m-%d %H:%M} UTC): "
                         "nothing can have been posted since")
    if before is not None:
        before_id = before if isinstance(before, int) else snowflake_at(before)
        if before_id <= (window.after_id or snowflake_at(window.start)):
            raise ValueError("--before must come after the window's start (--after or --days)")
        window = replace(window, before_id=before_id)
    return window

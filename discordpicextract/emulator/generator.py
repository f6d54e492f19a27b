"""Seeded, realistic channel traffic for tests, the demo and the benchmark.

`generate_channel` fills a new channel through the emulator's public methods
only (add_guild, add_channel, add_message, host_image, guilds) and returns what
a correct download must save (`GeneratedChannel.expected_images`) and must not.
"""
from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Optional
from zoneinfo import ZoneInfo

from .charts import chart_image_bytes
from .render import image_dimensions
from .snowflakes import UTC, message_time
from .store import FileSpec

if TYPE_CHECKING:
    from .server import DiscordEmulator

MARKET_ZONE = "America/New_York"
ATTACHMENT_NAMES = ("image.png", "image.png", "image.png", "image.png", "SPX_5m.png",
                    "spx 1m chart.png", "图表.png", "chart.PNG", "es_futures.jpg", "Screenshot_{stamp}.png")


class ExpectedImage(NamedTuple):
    """One image a correct downloader must save."""
    message_id: str
    source: str      # attachment | embed | text | snapshot_attachment | snapshot_embed | snapshot_text
    ref: str         # the attachment ID, or the URL exactly as it appears in the message
    filename: str    # original name (for URLs: the path's last part, without the query)
    sha256: str
    time: datetime   # the (outer) message's time, aware UTC


@dataclass
class GeneratedChannel:
    guild: dict
    channel: dict
    messages: list[dict]
    image_count: int
    expected_images: list[ExpectedImage] = field(default_factory=list)
    # Items a correct downloader must NOT save: (message_id, kind, ref)
    non_images: list[tuple[str, str, str]] = field(default_factory=list)
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    trading_days: list[date] = field(default_factory=list)
    tz_error_dates: list[date] = field(default_factory=list)    # posts shifted +5 h on these days
    dst_change_dates: list[date] = field(default_factory=list)  # first trading day after a DST change
    same_second_message_ids: list[str] = field(default_factory=list)
    repost_pairs: list[tuple[str, str]] = field(default_factory=list)  # (original, re-post) message IDs


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dimensions(data: bytes) -> tuple[int, int]:
    dims = image_dimensions(data)
    if dims is None:
        raise ValueError("generated image without readable dimensions")
    return dims


class _ChannelBuilder:
    """Posts one generated channel's messages and records what must be saved."""

    def __init__(self, emu: DiscordEmulator, rng: random.Random, seed: int, out: GeneratedChannel,
                 image_size: tuple[int, int], window: tuple[datetime, datetime]):
        self.emu, self.rng, self.seed, self.out = emu, rng, seed, out
        self.size = image_size
        self.start, self.end = window
        self.cid = out.channel["id"]
        self.counter = 0

    def image(self, label: str, fmt: str = "PNG") -> bytes:
        self.counter += 1
        key = (self.seed * 1_000_003 + self.counter) & 0x7FFFFFFF
        return chart_image_bytes(key, self.size[0], self.size[1], label, fmt)

    def in_window(self, when: datetime) -> bool:
        return self.start <= when <= self.end

    def post(self, when: datetime, **kwargs: Any) -> Optional[dict]:
        if not self.in_window(when):
            return None
        message = self.emu.add_message(self.cid, when, **kwargs)
        self.out.messages.append(message)
        return message

    def expect(self, message: dict, source: str, ref: str, filename: str, data: bytes) -> None:
        self.out.expected_images.append(ExpectedImage(
            message["id"], source, ref, filename, _sha256(data), datetime.fromisoformat(message["timestamp"])))

    def expect_attachments(self, message: dict, specs: Sequence[FileSpec], source: str = "attachment",
                           rendered: Optional[list[dict]] = None) -> None:
        rendered = message["attachments"] if rendered is None else rendered
        for spec, att in zip(specs, rendered):
            self.expect(message, source, att["id"], spec[0], spec[1])

    def attachment_spec(self, when: datetime, label: str) -> FileSpec:
        name = self.rng.choice(ATTACHMENT_NAMES)
        local = when.astimezone(_market_zone())
        name = name.format(stamp=local.strftime("%Y%m%d-%H%M%S"))
        if name.endswith(".jpg"):
            return name, self.image(label, "JPEG"), "image/jpeg"
        return name, self.image(label), "image/png"

    def hosted(self, name: str, label: str) -> tuple[str, bytes]:
        data = self.image(label)
        return self.emu.host_image(name, data, "image/png"), data

    # ---- post kinds -------------------------------------------------------------
    def attachment_post(self, when: datetime, label: str, repost: bool) -> None:
        spec = self.attachment_spec(when, label)
        text = self.rng.choice(("", "", "SPX", "levels to watch", "看这个", "0DTE flow"))
        message = self.post(when, content=text, attachments=[spec])
        if message is None:
            return
        self.expect_attachments(message, [spec])
        if repost:
            again = self.post(when + timedelta(seconds=self.rng.uniform(50, 75)), content=text,
                              attachments=[spec])
            if again is not None:
                self.expect_attachments(again, [spec])
                self.out.repost_pairs.append((message["id"], again["id"]))

    def embed_post(self, when: datetime, label: str) -> None:
        name = self.rng.choice(("chart.png", "spx_levels.png", "heatmap.png"))
        url, data = self.hosted(name, label)
        w, h = _dimensions(data)
        embed = {"type": "rich", "title": "SPX levels", "description": label, "color": 3447003,
                 "image": {"url": url, "proxy_url": url, "width": w, "height": h}}
        message = self.post(when, content="", embeds=[embed])
        if message is not None:
            self.expect(message, "embed", url, name, data)

    def text_url_post(self, when: datetime, label: str, auto_embed: bool) -> None:
        name = self.rng.choice(("spx.png", "chart.png", "es-5m.png"))
        url, data = self.hosted(name, label)
        url += f"?width={self.size[0]}&height={self.size[1]}&ref=tv{self.rng.randrange(1000)}"
        embeds: list[dict[str, Any]] = []
        if auto_embed:
            # Discord auto-embeds a pasted image link with the very same URL.
            w, h = _dimensions(data)
            embeds = [{"type": "image", "url": url,
                       "thumbnail": {"url": url, "proxy_url": url, "width": w, "height": h}}]
        message = self.post(when, content=f"chart: {url} watch 5800", embeds=embeds)
        if message is not None:
            self.expect(message, "text", url, name, data)

    def forward_post(self, when: datetime, label: str) -> None:
        spec = ("image.png", self.image(label), "image/png")
        url, data = self.hosted("fwd_chart.png", label + " fwd")
        embeds: list[dict[str, Any]] = []
        embedded = None
        if self.rng.random() < 0.5:
            embed_url, embedded = self.hosted("fwd_embed.png", label + " fwd embed")
            embeds = [{"type": "rich", "title": "levels", "image": {"url": embed_url, "proxy_url": embed_url}}]
        snapshot = {"content": f"from the other room {url}?s=1", "attachments": [spec], "embeds": embeds,
                    "timestamp": when - timedelta(minutes=self.rng.randint(2, 90))}
        message = self.post(when, content="", snapshots=[snapshot])
        if message is None:
            return
        snap = message["message_snapshots"][0]["message"]
        self.expect_attachments(message, [spec], "snapshot_attachment", snap["attachments"])
        self.expect(message, "snapshot_text", url + "?s=1", "fwd_chart.png", data)
        if embedded is not None:
            self.expect(message, "snapshot_embed", embeds[0]["image"]["url"], "fwd_embed.png", embedded)

    def same_second_burst(self, when: datetime) -> None:
        base = when.replace(microsecond=0)
        ids = []
        for offset in (0.05, 0.35, 0.6):
            spec = ("image.png", self.image("burst"), "image/png")
            message = self.post(base + timedelta(seconds=offset), attachments=[spec])
            if message is not None:
                self.expect_attachments(message, [spec])
                ids.append(message["id"])
        specs = [("image.png", self.image("burst pair a"), "image/png"),
                 ("image.png", self.image("burst pair b"), "image/png")]
        message = self.post(base + timedelta(seconds=0.9), content="two at once", attachments=specs)
        if message is not None:
            self.expect_attachments(message, specs)
            ids.append(message["id"])
        self.out.same_second_message_ids.extend(ids)

    def non_image_posts(self, when: datetime) -> None:
        # Discord sometimes omits content_type: the extension must do
        bare = ("SPX_daily.jpeg", self.image("no content type", "JPEG"), None)
        message = self.post(when - timedelta(seconds=30), content="", attachments=[bare])
        if message is not None:
            self.expect_attachments(message, [bare])
        note = ("levels.txt", b"5800 resistance\n5750 support\n", "text/plain; charset=utf-8")
        message = self.post(when, content="today's levels", attachments=[note])
        if message is not None:
            self.out.non_images.append((message["id"], "attachment", message["attachments"][0]["id"]))
        video = self.emu.host_image("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4")
        message = self.post(when + timedelta(seconds=40), content=video,
                            embeds=[{"type": "video", "url": video,
                                     "video": {"url": video, "width": 640, "height": 360}}])
        if message is not None:
            self.out.non_images.append((message["id"], "video", video))
        self.post(when + timedelta(seconds=90), content="good morning, futures flat")

    def duplicate_url_post(self, when: datetime, label: str) -> None:
        url, data = self.hosted("same.png", label)
        message = self.post(when, content=f"{url} and again {url}",
                            embeds=[{"type": "image", "url": url,
                                     "thumbnail": {"url": url, "proxy_url": url}}])
        if message is not None:
            self.expect(message, "text", url, "same.png", data)


@functools.lru_cache(maxsize=1)
def _market_zone() -> ZoneInfo:
    # looked up on first use: the zone database (tzdata on Windows) is needed only to generate
    return ZoneInfo(MARKET_ZONE)


def _trading_days(start: datetime, end: datetime) -> list[date]:
    zone = _market_zone()
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    days = []
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _at(day: date, seconds: float, shift_hours: int = 0) -> datetime:
    """Aware UTC time of `seconds` after 09:30 New York time on `day`."""
    local = datetime(day.year, day.month, day.day, 9, 30, tzinfo=_market_zone())
    return (local + timedelta(seconds=seconds)).astimezone(UTC) + timedelta(hours=shift_hours)


def _mark_days(out: GeneratedChannel, tz_error_days: Optional[tuple[int, int]]) -> list[int]:
    """Record the shifted days and the DST changes; the hours each trading day is shifted by."""
    bad_first, bad_count = tz_error_days or (0, 0)
    shifts = []
    previous_offset = None
    for index, day in enumerate(out.trading_days):
        shift = 5 if bad_first <= index < bad_first + bad_count else 0
        if shift:
            out.tz_error_dates.append(day)
        offset = datetime(day.year, day.month, day.day, 12, tzinfo=_market_zone()).utcoffset()
        if previous_offset is not None and offset != previous_offset:
            out.dst_change_dates.append(day)
        previous_offset = offset
        shifts.append(shift)
    return shifts


def _specials(count: int) -> dict[int, str]:
    """Which trading day (by index) gets which one-off post (a later key wins on a short channel)."""
    return {1 % max(count, 1): "non_image", count // 2: "burst", max(count - 2, 0): "forward",
            2 % max(count, 1): "dup_url"}


def _post_day(builder: _ChannelBuilder, rng: random.Random, day: date, shift: int,
              per_day: tuple[int, int]) -> None:
    """A trading day's ordinary traffic: attachments (some re-posted), embeds, links, forwards, chat."""
    session = 6.5 * 3600 - 80          # room for a re-post before the close
    moments = sorted(rng.uniform(0, session) for _ in range(rng.randint(*per_day)))
    for number, seconds in enumerate(moments):
        when = _at(day, seconds, shift)
        label = f"SPX 5m  {day.isoformat()}  #{number + 1}"
        roll = rng.random()
        if roll < 0.62:
            builder.attachment_post(when, label, repost=rng.random() < 0.33)
        elif roll < 0.75:
            builder.embed_post(when, label)
        elif roll < 0.9:
            builder.text_url_post(when, label, auto_embed=rng.random() < 0.6)
        elif roll < 0.95:
            builder.forward_post(when, label)
        else:
            builder.post(when, content=rng.choice(("lol", "puts printing", "VIX up", "nice call")))


def _post_special(builder: _ChannelBuilder, special: Optional[str], day: date, shift: int) -> None:
    if special == "non_image":
        builder.non_image_posts(_at(day, 3600 + 17, shift))
    elif special == "burst":
        builder.same_second_burst(_at(day, 6300 + 7, shift))
    elif special == "forward":
        builder.forward_post(_at(day, 9000 + 3, shift), f"SPX forwarded {day.isoformat()}")
    elif special == "dup_url":
        builder.duplicate_url_post(_at(day, 12000 + 11, shift), f"SPX dup {day.isoformat()}")


def generate_channel(emu: DiscordEmulator, *, seed: int = 1, days: int = 30, end: Optional[datetime] = None,
                     guild_name: str = "数学家炒美股", channel_name: str = "spx-realtime-aws",
                     per_day: tuple[int, int] = (6, 12), image_size: tuple[int, int] = (400, 250),
                     tz_error_days: Optional[tuple[int, int]] = None) -> GeneratedChannel:
    """Fill a new channel with `days` of seeded, realistic traffic ending at `end`.

    Chart images through each trading day (weekdays 09:30-16:00 New York time,
    DST handled), ~1/3 re-posted as identical bytes about a minute later, embeds,
    image URLs in text (query strings), forwarded messages, one same-second burst
    of several `image.png`, a .txt attachment and a video embed (non-images).
    `tz_error_days=(first, count)`: those trading days' posts are shifted +5 h.
    The guild is reused if the emulator already has one of that name."""
    end = message_time(end or datetime.now(UTC))
    start = end - timedelta(days=days)
    rng = random.Random(seed)
    guild = next((g for g in emu.guilds() if g["name"] == guild_name), None) or emu.add_guild(guild_name)
    channel = emu.add_channel(guild["id"], channel_name)
    out = GeneratedChannel(guild, channel, [], 0, start=start, end=end, trading_days=_trading_days(start, end))
    builder = _ChannelBuilder(emu, rng, seed, out, image_size, (start, end))
    shifts = _mark_days(out, tz_error_days)
    specials = _specials(len(out.trading_days))
    for index, day in enumerate(out.trading_days):
        _post_day(builder, rng, day, shifts[index], per_day)
        _post_special(builder, specials.get(index), day, shifts[index])
    out.messages.sort(key=lambda m: int(m["id"]))
    out.expected_images.sort(key=lambda e: (int(e.message_id), e.source, e.ref))
    out.image_count = len(out.expected_images)
    return out


def build_demo_channel(emu: DiscordEmulator, seed: int = 7, days: int = 30) -> GeneratedChannel:
    """The channel `main.py --demo` downloads: a few hundred images over ~`days`
    days ending now, with a two-day time-zone-error stretch (posts +5 h)."""
    return generate_channel(emu, seed=seed, days=days, per_day=(8, 13), image_size=(360, 220),
                            tz_error_days=(6, 2))

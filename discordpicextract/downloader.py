"""Download a Discord channel's images: the only module that talks to the network.

- `DiscordClient`: the API client (token, its kind, Discord's per-bucket rate
  limits, retries) and the `fetch_...` generators over API pages.
- Pure functions: `extract_images` (message -> image items), `item_key`,
  `plan_names` (items -> collision-free file names), guild/channel matching.
- `run_download`: fetch, plan, transfer with a pool of workers, and record
  each saved file in the folder's download archive.

The token is sent only to URLs under the API base (never to the CDN or to a
URL found in a message) and is scrubbed from every error text we produce.
"""
import concurrent.futures
import difflib
import hashlib
import os
import re
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
from PIL import Image

import config
from discordpicextract import download_archive, fileops, naming

# Seconds before retry n (x 2**n) after a connection error, 5xx or bad body.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
# 429s tolerated for one request before giving up (each one is waited out).
MAX_RATE_LIMITED = 10
# Archive rows are committed in batches of this many, or this often.
ARCHIVE_BATCH = 100
ARCHIVE_FLUSH_SECONDS = 2.0
CHUNK = 64 * 1024
# Query parameters that sign a Discord CDN link: they change on every read of
# the message, so the archive key ignores them.
SIGNATURE_PARAMS = frozenset({"ex", "is", "hm"})
# Channel types whose messages we can read: text, voice chat, announcement,
# announcement/public/private threads.
MESSAGE_CHANNEL_TYPES = frozenset({0, 2, 5, 10, 11, 12})
_SNOWFLAKE = re.compile(r"^\d{15,21}$")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`|()\[\]{}]+")
_MAJOR_ROUTE = re.compile(r"^/(channels|guilds|webhooks)/(\d+)")
_ID_IN_PATH = re.compile(r"/\d{5,}")
_SECOND = len("YYYY-MM-DD_HH-MM-SS")  # the part of a name that no collision suffix touches


# --- errors -------------------------------------------------------------

class DiscordError(Exception):
    """An API call that failed; the text never contains the token."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(DiscordError):
    """401: the token is invalid."""


class AccessError(DiscordError):
    """403: the token may not read this."""


class NotFoundError(DiscordError):
    """404 from the API, or no guild/channel by that name."""


class AmbiguousError(DiscordError):
    """Several channels or guilds match a name."""


def scrub(text, token) -> str:
    """`text` with every occurrence of the token masked, also as a repr
    shows it (requests quotes a bad header value that way)."""
    text = str(text)
    if token:
        for form in (token, repr(token)[1:-1]):
            text = text.replace(form, "[token]")
    return text


# --- rate limits ----------------------------------------------------------

def route_key(method, path):
    """(route template, major parameter) of an API path.

    Discord keys its buckets by route and by the channel, guild or webhook ID
    in the path (the "major parameter"); other IDs share the bucket.
    """
    path = urlsplit(path).path
    match = _MAJOR_ROUTE.match(path)
    major = match.group(2) if match else ""
    rest = path[match.end():] if match else path
    template = (f"/{match.group(1)}/{{major}}" if match else "") + _ID_IN_PATH.sub("/{id}", rest)
    return f"{method} {template}", major


@dataclass
class _Bucket:
    remaining: int = 1
    reset_at: float = 0.0


class RateLimiter:
    """Discord's rate limits, learned from response headers, shared by threads.

    Before a request `acquire` waits until the route's bucket has a request
    left (so a well-behaved run sees no 429), the global limit has passed, and,
    when the API sends no rate-limit headers, `min_delay` since the last call.
    A wait longer than `max_wait` is capped and reported through `on_cap`.
    """

    def __init__(self, min_delay=config.RATE_LIMIT_DELAY, max_wait=config.MAX_RATE_LIMIT_WAIT,
                 on_cap=None, clock=time.monotonic, sleep=time.sleep):
        self.min_delay = min_delay
        self.max_wait = max_wait
        self.on_cap = on_cap or (lambda wait, capped, what: None)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._route_bucket = {}   # route template -> bucket hash
        self._buckets = {}        # (bucket hash, major) -> _Bucket
        self._global_until = 0.0
        self._headerless = False  # the last response carried no limit headers
        self._last_call = None

    def _bucket(self, route):
        template, major = route
        bucket_id = self._route_bucket.get(template)
        if bucket_id is None:
            return None
        return self._buckets.setdefault((bucket_id, major), _Bucket())

    def _wait_needed(self, route, now):
        waits = [self._global_until - now]
        bucket = self._bucket(route)
        if bucket is not None and bucket.remaining <= 0:
            waits.append(bucket.reset_at - now)
        elif bucket is None and self._headerless and self._last_call is not None:
            waits.append(self._last_call + self.min_delay - now)
        return max(waits)

    def acquire(self, route):
        """Wait for permission to send a request on `route`, then take it."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(route, now)
                if wait <= 0:
                    bucket = self._bucket(route)
                    if bucket is not None:
                        if now >= bucket.reset_at and bucket.remaining <= 0:
                            bucket.remaining = 1
                        bucket.remaining -= 1
                    self._last_call = now
                    return
                if wait > self.max_wait:
                    self._cap(route, wait, now)
                    wait = self.max_wait
            self._sleep(min(wait, 1.0))

    def _cap(self, route, wait, now):
        """Shorten an absurd wait to max_wait, once, and report it."""
        until = now + self.max_wait
        self._global_until = min(self._global_until, until)
        bucket = self._bucket(route)
        if bucket is not None:
            bucket.reset_at = min(bucket.reset_at, until)
        self.on_cap(wait, self.max_wait, route[0])

    def update(self, route, headers, ok=True):
        """Learn the bucket state from a response's headers. Only a
        successful answer without headers means the API sends none (a 502
        from a proxy says nothing about Discord's limits)."""
        bucket_id = headers.get("X-RateLimit-Bucket")
        remaining = headers.get("X-RateLimit-Remaining")
        reset_after = headers.get("X-RateLimit-Reset-After")
        with self._lock:
            now = self._clock()
            if ok or bucket_id is not None:
                self._headerless = bucket_id is None and remaining is None
            if bucket_id is None or remaining is None or reset_after is None:
                return
            self._route_bucket[route[0]] = bucket_id
            bucket = self._buckets.setdefault((bucket_id, route[1]), _Bucket())
            seconds = _seconds(reset_after)
            if seconds is None or not remaining.isdigit():
                return
            bucket.remaining = int(remaining)
            bucket.reset_at = now + seconds
            if bucket.reset_at - now > self.max_wait:
                self._cap(route, bucket.reset_at - now, now)

    def limited(self, route, retry_after, is_global):
        """A 429: nothing on this bucket (or anywhere) for `retry_after` s."""
        with self._lock:
            now = self._clock()
            if retry_after > self.max_wait:
                self.on_cap(retry_after, self.max_wait, route[0])
                retry_after = self.max_wait
            if is_global:
                self._global_until = max(self._global_until, now + retry_after)
                return
            bucket = self._bucket(route)
            if bucket is None:  # an unknown bucket: hold every call
                self._global_until = max(self._global_until, now + retry_after)
            else:
                bucket.remaining = 0
                bucket.reset_at = max(bucket.reset_at, now + retry_after)


def backoff(attempt) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))


# --- the API client ---------------------------------------------------------

class DiscordClient:
    """Discord API v10 calls for one token.

    `kind` is "user" (sent bare), "bot" (sent as `Bot <token>`) or None:
    `identify` then tries it bare and falls back to Bot on a 401.
    Safe to use from several threads (one HTTP session per thread).
    """

    def __init__(self, token, kind=None, *, api_base=None, max_retries=config.MAX_RETRIES,
                 min_delay=config.RATE_LIMIT_DELAY, max_wait=config.MAX_RATE_LIMIT_WAIT,
                 timeout=config.REQUEST_TIMEOUT):
        self.token = token
        self.kind = kind
        self.api_base = (api_base or config.api_base()).rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
        self.warnings = []
        self.limiter = RateLimiter(min_delay, max_wait, on_cap=self._report_cap)
        self._local = threading.local()

    def _report_cap(self, wait, capped, route):
        warning = (f"rate limit on {route} asked to wait {wait:.0f} s; "
                   f"capped at {capped:g} s (--max-wait)")
        if warning not in self.warnings:
            self.warnings.append(warning)

    def session(self):
        """This thread's HTTP session. It carries no Authorization header:
        the token is added per request, to API URLs only."""
        return _thread_session(self._local)

    def _auth_headers(self, url):
        if not url.startswith(self.api_base + "/") or not self.token:
            return {}
        value = f"Bot {self.token}" if self.kind == "bot" else self.token
        return {"Authorization": value}

    def scrub(self, text):
        return scrub(text, self.token)

    def request(self, path, params=None, method="GET", expect=dict):
        """One API call with rate limits and retries; returns the JSON body,
        which must be an `expect` (dict, or list of dicts)."""
        url = self.api_base + path
        route = route_key(method, path)
        failures = limited = 0
        while True:
            self.limiter.acquire(route)
            try:
                response = self.session().request(
                    method, url, params=params, headers=self._auth_headers(url),
                    timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                failures += 1
                if failures > self.max_retries:
                    raise DiscordError(f"{method} {path}: connection failed after "
                                       f"{failures} attempts: {self.scrub(exc)}") from None
                time.sleep(backoff(failures - 1))
                continue
            self.limiter.update(route, response.headers, ok=response.status_code < 400)
            if response.status_code == 429:
                limited += 1
                if limited > MAX_RATE_LIMITED:
                    raise DiscordError(f"{method} {path}: still rate limited after "
                                       f"{limited} tries", status=429)
                self.limiter.limited(route, *_retry_after(response))
                continue
            if response.status_code >= 500:
                failures += 1
                if failures > self.max_retries:
                    raise self._error(method, path, response)
                time.sleep(backoff(failures - 1))
                continue
            if response.status_code >= 300:
                raise self._error(method, path, response)
            return self._body(method, path, response, expect)

    def _body(self, method, path, response, expect):
        """The JSON body of a success, checked for its shape: a proxy, a
        captive portal or a wrong DISCORD_API_BASE answers something else."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, expect) and (expect is not list or all(isinstance(x, dict) for x in body)):
            return body
        kind = response.headers.get("Content-Type", "").split(";")[0] or "no content type"
        raise DiscordError(f"{method} {path}: the answer is not Discord's JSON ({kind}); "
                           f"is {self.api_base} the Discord API?", status=response.status_code)

    def _error(self, method, path, response):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message, code = str(body.get("message", "")), body.get("code")
        else:
            message, code = response.reason or "", None
        # one line, short: an error page may echo a whole request back
        message = " ".join(self.scrub(message).split())[:200]
        status = response.status_code
        text = self.scrub(f"{method} {path}: HTTP {status} {message}".rstrip())
        cls = {401: AuthError, 403: AccessError, 404: NotFoundError}.get(status, DiscordError)
        return cls(text, status=status, code=code)

    # -- identity
    def identify(self):
        """The token's user (GET /users/@me); settles `kind` when unknown."""
        if self.kind is not None:
            return self.request("/users/@me")
        self.kind = "user"
        try:
            return self.request("/users/@me")
        except AuthError:
            self.kind = "bot"
        try:
            return self.request("/users/@me")
        except AuthError:
            self.kind = None
            raise

    # -- fetch_ generators over API pages
    def fetch_guilds(self):
        """Pages of the token's guilds (partial guild objects), by ID."""
        after = None
        while True:
            params = {"limit": 200}
            if after:
                params["after"] = after
            page = self.request("/users/@me/guilds", params, expect=list)
            if not page:
                return
            yield page
            if len(page) < 200:
                return
            after = page[-1]["id"]

    def fetch_channels(self, guild_id):
        return self.request(f"/guilds/{guild_id}/channels", expect=list)

    def fetch_channel(self, channel_id):
        return self.request(f"/channels/{channel_id}")

    def fetch_message(self, channel_id, message_id):
        return self.request(f"/channels/{channel_id}/messages/{message_id}")

    def fetch_messages(self, channel_id, cutoff):
        """Pages of messages, newest first, down to `cutoff` (aware datetime):
        stops at the first message posted before it."""
        before = None
        while True:
            params = {"limit": 100}
            if before:
                params["before"] = before
            page = self.request(f"/channels/{channel_id}/messages", params, expect=list)
            kept = [m for m in _take_while_newer(page, cutoff)]
            if kept:
                yield kept
            if len(kept) < len(page) or len(page) < 100:
                return
            before = page[-1]["id"]

    def fetch_threads(self, channel, cutoff):
        """Pages of the threads of `channel` that may hold messages after
        `cutoff`, through the endpoints the token's kind may use."""
        if self.kind == "bot":
            active = self.request(f"/guilds/{channel['guild_id']}/threads/active")
            yield [t for t in active.get("threads", []) if t.get("parent_id") == channel["id"]]
            yield from self._archived_threads(channel["id"], cutoff)
        else:
            for archived in ("false", "true"):
                yield from self._searched_threads(channel["id"], archived, cutoff)

    def _archived_threads(self, channel_id, cutoff):
        before = None
        while True:
            params = {"limit": 100}
            if before:
                params["before"] = before
            page = self.request(f"/channels/{channel_id}/threads/archived/public", params)
            threads = page.get("threads", [])
            recent = [t for t in threads if _archived_at(t) is None or _archived_at(t) >= cutoff]
            yield recent
            if not page.get("has_more") or not threads or len(recent) < len(threads):
                return
            before = threads[-1]["thread_metadata"]["archive_timestamp"]

    def _searched_threads(self, channel_id, archived, cutoff):
        offset = 0
        while True:
            params = {"archived": archived, "limit": 25, "offset": offset,
                      "sort_by": "last_message_time", "sort_order": "desc"}
            page = self.request(f"/channels/{channel_id}/threads/search", params)
            threads = page.get("threads", [])
            yield [t for t in threads if _archived_at(t) is None or _archived_at(t) >= cutoff]
            if not page.get("has_more") or not threads:
                return
            offset += len(threads)


def _retry_after(response):
    """(seconds, is_global) of a 429 response."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    candidates = (body.get("retry_after"), response.headers.get("X-RateLimit-Reset-After"),
                  response.headers.get("Retry-After"))
    seconds = next((s for s in map(_seconds, candidates) if s is not None), 1.0)
    is_global = bool(body.get("global")) or response.headers.get("X-RateLimit-Global", "").lower() == "true"
    return seconds, is_global


def _seconds(value):
    """A wait in seconds from a header or body, or None when it is not a
    finite number >= 0 (an HTTP date, "nan", garbage from a proxy)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < float("inf") else None


def _archived_at(thread):
    stamp = (thread.get("thread_metadata") or {}).get("archive_timestamp")
    if not stamp or not (thread.get("thread_metadata") or {}).get("archived"):
        return None
    return parse_time(stamp)


def _take_while_newer(messages, cutoff):
    for message in messages:
        if message_time(message) < cutoff:
            return
        yield message


def parse_time(stamp) -> datetime:
    """An ISO 8601 timestamp from Discord as an aware UTC datetime."""
    stamp = stamp.replace("Z", "+00:00")
    # Python 3.9's fromisoformat takes only 3 or 6 fraction digits.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", stamp)
    if match and match.group(2):
        fraction = (match.group(2)[1:] + "000000")[:6]
        stamp = f"{match.group(1)}.{fraction}{match.group(3)}"
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def message_time(message) -> datetime:
    return parse_time(message["timestamp"])


# --- resolving a channel by name -------------------------------------------

def _fold(name) -> str:
    return unicodedata.normalize("NFKC", name or "").casefold().strip()


def near_names(wanted, names, limit=5):
    """Names close to `wanted` (for "did you mean")."""
    folded = {_fold(n): n for n in names}
    close = difflib.get_close_matches(_fold(wanted), list(folded), n=limit, cutoff=0.4)
    close += [key for key in folded if _fold(wanted) in key and key not in close]
    return [folded[key] for key in close[:limit]]


def _did_you_mean(wanted, names):
    near = near_names(wanted, names)
    if near:
        return "; near names: " + ", ".join(near)
    if names:
        shown = sorted(names)[:10]
        more = f" (+{len(names) - 10} more)" if len(names) > 10 else ""
        return "; available: " + ", ".join(shown) + more
    return ""


def match_guild(guilds, name):
    """The guild named `name` (case-insensitive, Unicode-normalised)."""
    wanted = _fold(name)
    found = [g for g in guilds if _fold(g.get("name")) == wanted]
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"{g['name']} (ID {g['id']})" for g in found)
        raise AmbiguousError(f"several servers are named {name!r}: {listed}")
    names = [g.get("name", "") for g in guilds]
    raise NotFoundError(f"server {name!r} not found among your {len(guilds)} servers"
                        + _did_you_mean(name, names))


def match_channel(channels, name, guild_name=""):
    """The message channel named `name` (a leading '#' is ignored)."""
    wanted = _fold(name).lstrip("#").strip()
    readable = [c for c in channels if c.get("type") in MESSAGE_CHANNEL_TYPES]
    found = [c for c in readable if _fold(c.get("name")) == wanted]
    where = f" in server {guild_name!r}" if guild_name else ""
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"#{c['name']} (ID {c['id']})" for c in found)
        raise AmbiguousError(f"several channels named #{wanted}{where}: {listed}; "
                             f"pass the channel ID instead")
    names = [c.get("name", "") for c in readable]
    raise NotFoundError(f"channel #{wanted} not found{where} "
                        f"(searched {len(readable)} text channels)" + _did_you_mean(wanted, names))


def is_channel_id(text) -> bool:
    return bool(_SNOWFLAKE.match(text.strip()))


def resolve_channel(client, channel, guild_name=None):
    """(channel object, guild name or "") for an ID or a name + guild name."""
    channel = channel.strip()
    if is_channel_id(channel):
        try:
            return client.fetch_channel(channel), ""
        except NotFoundError:
            raise NotFoundError(f"channel ID {channel} not found (Unknown Channel)") from None
        except AccessError:
            raise AccessError(f"no access to channel ID {channel} (Missing Access)") from None
    if not guild_name:
        raise NotFoundError(f"channel {channel!r} is a name: a server name is needed too (--guild)")
    guilds = [g for page in client.fetch_guilds() for g in page]
    guild = match_guild(guilds, guild_name)
    try:
        channels = client.fetch_channels(guild["id"])
    except AccessError:
        raise AccessError(f"no access to the channels of server {guild['name']!r}") from None
    return match_channel(channels, channel, guild["name"]), guild["name"]


# --- images in a message (pure) ----------------------------------------------

@dataclass(frozen=True)
class ImageItem:
    """One image to fetch: where it is, when it was posted, what it is called."""

    key: str            # archive key: message ID + attachment ID or unsigned URL
    message_id: str
    channel_id: str
    posted: datetime    # the message's time, aware UTC
    url: str
    original: str       # sanitised original file name
    source: str         # "attachment", "embed" or "text" (+ " (forwarded)")
    index: int          # position within the message


def strip_signature(url) -> str:
    """`url` without Discord's signing parameters (ex, is, hm)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in SIGNATURE_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def item_key(message_id, attachment_id=None, url=None) -> str:
    if attachment_id is not None:
        return f"{message_id}/attachment/{attachment_id}"
    return f"{message_id}/url/{strip_signature(url)}"


def url_filename(url) -> str:
    """The last part of a URL's path, without its query."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def is_image_attachment(attachment) -> bool:
    content_type = (attachment.get("content_type") or "").lower()
    if content_type.startswith("image/") and "svg" not in content_type:
        return True
    return naming.is_image_name(attachment.get("filename") or "")


def is_image_url(url) -> bool:
    return naming.is_image_name(url_filename(url))


def text_image_urls(text):
    """Image URLs in a message's text (query strings allowed)."""
    for match in _URL_IN_TEXT.finditer(text or ""):
        url = match.group(0).rstrip(".,;:!?*_~")
        if is_image_url(url):
            yield url


def _embed_image_urls(embed):
    if embed.get("type") in ("video", "gifv") or embed.get("video"):
        return
    for part in ("image", "thumbnail"):
        media = embed.get(part) or {}
        url = media.get("url") or media.get("proxy_url")
        if url and url.startswith(("http://", "https://")):
            yield url, media.get("content_type")


_TYPE_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
                    "image/webp": ".webp", "image/bmp": ".bmp"}
_EXTENSION_INSIDE = re.compile(r"\.(png|jpe?g|gif|webp|bmp)(?![a-z0-9])", re.IGNORECASE)


def with_image_extension(name, content_type=None, url=""):
    """`name`, ending in an image extension so that the later pipeline steps
    see the file: an embed URL like `.../media/abc?format=jpg` or
    `.../abc.jpg:large` has none. Taken from the content type, the URL's
    `format`, an extension inside the name, else `.png`."""
    if naming.is_image_name(name):
        return name
    ext = _TYPE_EXTENSIONS.get((content_type or "").split(";")[0].strip().lower())
    if ext is None:
        fmt = dict(parse_qsl(urlsplit(url).query)).get("format", "").lower()
        ext = f".{fmt}" if naming.is_image_name(f"x.{fmt}") else None
    if ext is None:
        inside = _EXTENSION_INSIDE.search(name or "")
        ext = inside.group(0).lower() if inside else ".png"
    return f"{name}{ext}"


def _sources(message):
    """(source label, content holder) for the message and its forwards."""
    yield "", message
    for snapshot in message.get("message_snapshots") or []:
        inner = snapshot.get("message") or {}
        yield " (forwarded)", inner


def extract_images(message):
    """The image items of a message: attachments, embed images and
    thumbnails (not videos), image URLs in the text, and the same inside
    forwarded messages. A URL present twice is fetched once."""
    items, seen = [], set()
    message_id, channel_id = str(message["id"]), str(message.get("channel_id", ""))
    posted = message_time(message)

    def add(key, url, original, source, content_type=None):
        unsigned = strip_signature(url)
        if key in seen or unsigned in seen:
            return
        seen.update((key, unsigned))
        original = naming.sanitize_original(with_image_extension(original, content_type, url))
        items.append(ImageItem(key, message_id, channel_id, posted, url, original, source, len(items)))

    for label, holder in _sources(message):
        for attachment in holder.get("attachments") or []:
            if is_image_attachment(attachment) and attachment.get("url"):
                add(item_key(message_id, attachment_id=attachment["id"]), attachment["url"],
                    attachment.get("filename") or url_filename(attachment["url"]), "attachment" + label,
                    attachment.get("content_type"))
        for embed in holder.get("embeds") or []:
            for url, content_type in _embed_image_urls(embed):
                add(item_key(message_id, url=url), url, url_filename(url), "embed" + label, content_type)
        for url in text_image_urls(holder.get("content")):
            add(item_key(message_id, url=url), url, url_filename(url), "text" + label)
    return items


# --- names (pure) ------------------------------------------------------------

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
    held = []
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


# --- transfers ----------------------------------------------------------------

def _thread_session(local):
    """One requests.Session per thread (sessions are not thread-safe), with
    our User-Agent and no Authorization header."""
    session = getattr(local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = config.USER_AGENT
        local.session = session
    return session


@dataclass
class Outcome:
    plan: PlannedDownload
    status: str                 # saved | expired | failed | conflict | maybe_present
    filename: str = ""
    size: int = 0
    sha256: str = ""
    reason: str = ""
    temp: Path = None
    matches: tuple = ()         # for maybe_present: identical files on disk


class BadBody(Exception):
    """A response body that is not the complete image it should be."""


class Transfer:
    """Downloads image bytes (no token, ever) into `folder`, one session per thread."""

    def __init__(self, folder, max_retries=config.MAX_RETRIES, timeout=config.REQUEST_TIMEOUT,
                 scrubber=str):
        self.folder = Path(folder)
        self.max_retries = max_retries
        self.timeout = timeout
        self.scrub = scrubber
        # saved images get the user's usual mode, not the temp file's 0o600
        self.file_mode = fileops.new_file_mode()
        self._local = threading.local()

    def session(self):
        return _thread_session(self._local)

    def __call__(self, plan):
        reason = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(backoff(attempt - 1))
            try:
                temp = fileops.temp_path_beside(self.folder / plan.name)
            except OSError as exc:
                return Outcome(plan, "failed", reason=f"cannot write in {self.folder}: {exc.strerror or exc}")
            try:
                size, digest, kind = self._fetch(plan.item.url, temp)
                _verify_image(temp, kind)
                os.chmod(temp, self.file_mode)
            except _Expired as exc:
                temp.unlink(missing_ok=True)
                return Outcome(plan, "expired", reason=str(exc))
            except (BadBody, requests.RequestException, OSError) as exc:
                temp.unlink(missing_ok=True)
                reason = self.scrub(_describe(exc))
                continue
            except Exception as exc:  # a surprise must not end the whole run
                temp.unlink(missing_ok=True)
                return Outcome(plan, "failed", reason=self.scrub(f"{type(exc).__name__}: {exc}"))
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            try:
                return self._publish(plan, temp, size, digest)
            except OSError as exc:
                temp.unlink(missing_ok=True)
                return Outcome(plan, "failed", reason=f"saving failed: {exc.strerror or exc}")
        tries = self.max_retries + 1
        return Outcome(plan, "failed", reason=f"{reason} (after {tries} attempts)")

    def _fetch(self, url, temp):
        """Stream `url` into `temp`: (size, sha256, content type)."""
        with self.session().get(url, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status in (403, 404):
                raise _Expired(f"HTTP {status} from the CDN (link expired or removed)")
            if status != 200:
                raise BadBody(f"HTTP {status}")
            digest, size = hashlib.sha256(), 0
            with open(temp, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            expected = response.headers.get("Content-Length", "")
            if expected.isdigit() and not response.headers.get("Content-Encoding") and int(expected) != size:
                raise BadBody(f"body shorter than its Content-Length ({size} of {expected} bytes)")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if size == 0:
            raise BadBody("empty body")
        return size, digest.hexdigest(), kind

    def _publish(self, plan, temp, size, digest):
        matches = tuple(p.name for p in plan.compare_with if _same_content(temp, p))
        if matches:
            return Outcome(plan, "maybe_present", size=size, sha256=digest, temp=temp, matches=matches)
        try:
            fileops.publish_no_clobber(temp, self.folder / plan.name)
        except FileExistsError:
            # publish_no_clobber removed the temp file; the main thread picks a new name
            return Outcome(plan, "conflict", size=size, sha256=digest)
        return Outcome(plan, "saved", filename=plan.name, size=size, sha256=digest)


def _same_content(temp, path):
    """False also when `path` went away meanwhile (moved by the user)."""
    try:
        return fileops.same_content(temp, path)
    except FileNotFoundError:
        return False


class _Expired(Exception):
    pass


def _describe(exc):
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the body was complete"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({type(exc).__name__})"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc)


def _verify_image(path, kind=""):
    """Raise BadBody unless `path` is a complete, decodable image.

    verify() checks a PNG's every chunk (a cut PNG fails); other formats
    are decoded too, a JPEG at 1/8 scale (enough to reach its end) so that a
    big screenshot does not cost its full pixel memory in each worker.
    """
    try:
        with Image.open(path) as image:
            found = image.format
            image.verify()
        if found != "PNG":
            with Image.open(path) as image:
                if found == "JPEG":
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Exception as exc:  # Pillow raises many types for bad data
        sent = f"{kind} body" if kind else "body"
        detail = str(exc).replace(f" '{path}'", "").replace(str(path), "file")
        raise BadBody(f"not a decodable image ({sent}; {type(exc).__name__}: {detail})") from None


# --- the run ------------------------------------------------------------------

@dataclass
class DownloadResult:
    downloaded: list = field(default_factory=list)   # file names saved
    skipped: int = 0          # items already in the archive
    present: int = 0          # identical file already on disk (not in archive)
    errors: list = field(default_factory=list)       # (description, reason)
    warnings: list = field(default_factory=list)
    messages: int = 0
    images: int = 0
    channels: list = field(default_factory=list)     # (name, id) fetched

    @property
    def failed(self) -> bool:
        return bool(self.errors)


def describe_item(item) -> str:
    when = item.posted.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{item.original} ({item.source}, message {item.message_id}, {when})"


class _Run:
    """State of one download run; every method runs in the main thread."""

    def __init__(self, client, folder, tz, workers, progress):
        self.client = client
        self.folder = Path(folder)
        self.zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.result = DownloadResult()
        self.archive = download_archive.DownloadArchive(self.folder)
        self.known = self.archive.keys()
        on_disk = {p.name for p in self.folder.iterdir()}
        self.taken = set(on_disk)
        # Files on disk no archive row names, by their first 19 characters:
        # a name's collision family all starts with its YYYY-MM-DD_HH-MM-SS,
        # so each item is compared with its own second's files, not with
        # every file (quadratic in a big folder whose archive was lost).
        self.unclaimed = {}
        for name in on_disk - self.archive.filenames():
            if not name.startswith(".") and naming.is_image_name(name):
                self.unclaimed.setdefault(name[:_SECOND], set()).add(name)
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="download")
        self.transfer = Transfer(self.folder, client.max_retries, client.timeout, client.scrub)
        self.pending = {}
        self.rows, self.flushed = [], time.monotonic()
        self.bar = _progress_bar(progress)

    def submit(self, plan):
        self.pending[self.pool.submit(self.transfer, plan)] = plan

    def dispatch(self, items):
        self.result.images += len(items)
        fresh = [i for i in items if i.key not in self.known]
        self.result.skipped += len(items) - len(fresh)
        self.bar.total += len(items)
        self.bar.update(len(items) - len(fresh))
        for plan in plan_names(fresh, self.taken, self.zone):
            self.taken.add(plan.name)
            same_second = self.unclaimed.get(plan.base[:_SECOND])
            family = name_family(plan.base, same_second) if same_second else []
            self.submit(replace(plan, compare_with=tuple(self.folder / n for n in family)))

    def drain(self, block):
        if not self.pending:
            return
        done, _ = concurrent.futures.wait(
            list(self.pending), timeout=None if block else 0,
            return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            self.pending.pop(future)
            self.finish(future.result())

    def finish(self, outcome):
        handler = getattr(self, f"_on_{outcome.status}")
        handler(outcome)

    def _record(self, item, filename, size, sha256):
        """Queue an archive row (the file is already in place); rows are
        written in batches, and a row lost to a crash is recovered on the next
        run, which finds the identical file on disk and claims it."""
        self.rows.append((item.key, item.message_id, filename, size, sha256))
        self.known.add(item.key)
        if len(self.rows) >= ARCHIVE_BATCH or time.monotonic() - self.flushed > ARCHIVE_FLUSH_SECONDS:
            self.flush()

    def flush(self):
        if self.rows:
            self.archive.add_many(self.rows)
            self.rows = []
        self.flushed = time.monotonic()

    def _on_saved(self, outcome):
        self._record(outcome.plan.item, outcome.filename, outcome.size, outcome.sha256)
        self.result.downloaded.append(outcome.filename)
        self.bar.update(1)

    def _on_maybe_present(self, outcome):
        free = [n for n in outcome.matches if n in self.unclaimed.get(n[:_SECOND], ())]
        if not free:  # all identical files already belong to other items
            self._publish_here(outcome, outcome.plan.name)
            return
        outcome.temp.unlink(missing_ok=True)
        self.unclaimed[free[0][:_SECOND]].discard(free[0])
        self._record(outcome.plan.item, free[0], outcome.size, outcome.sha256)
        self.result.present += 1
        self.bar.update(1)

    def _publish_here(self, outcome, name):
        while True:
            try:
                fileops.publish_no_clobber(outcome.temp, self.folder / name)
                break
            except FileExistsError:
                self.taken.add(name)
                name = naming.unique_name(name, lambda n: n in self.taken)
        self.taken.add(name)
        self._on_saved(replace(outcome, status="saved", filename=name))

    def _on_conflict(self, outcome):
        # a file appeared under the reserved name while we downloaded (the temp
        # file is gone): fetch again under the next free name
        plan = outcome.plan
        self.taken.add(plan.name)
        folded = {t.casefold() for t in self.taken}
        name = naming.unique_name(plan.base, lambda n: n.casefold() in folded)
        self.taken.add(name)
        self.submit(replace(plan, name=name))

    def _on_expired(self, outcome):
        plan = outcome.plan
        if plan.refreshed:
            self._fail(plan, f"{outcome.reason}; still failing after refreshing the link")
            return
        fresh = self._refreshed_url(plan.item)
        if fresh is None:
            self._fail(plan, f"{outcome.reason}; the message no longer holds it")
            return
        self.submit(replace(plan, item=replace(plan.item, url=fresh), refreshed=True))

    def _refreshed_url(self, item):
        try:
            message = self.client.fetch_message(item.channel_id, item.message_id)
        except DiscordError:
            return None
        for candidate in extract_images(message):
            if candidate.key == item.key:
                return candidate.url
        return None

    def _on_failed(self, outcome):
        self._fail(outcome.plan, outcome.reason)

    def _fail(self, plan, reason):
        self.result.errors.append((describe_item(plan.item), reason))
        self.bar.update(1)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.flush()
        finally:
            self.archive.close()
        self.bar.close()


def _progress_bar(enabled):
    from tqdm import tqdm

    return tqdm(total=0, unit="img", desc="Downloading", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=True)


def run_download(client, channels, folder, cutoff, *, tz=config.TIMEZONE,
                 workers=config.DEFAULT_WORKERS, progress=False):
    """Download the images posted after `cutoff` in `channels` (channel
    objects: the channel, then its threads) into `folder`.

    Items already in the folder's archive are skipped; every saved file is
    recorded there. Failures are counted in the result, never raised,
    except an invalid token or lost access on the first page.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = _Run(client, folder, tz, workers, progress)
    try:
        for channel in channels:
            run.result.channels.append((channel.get("name", ""), channel["id"]))
            _fetch_channel(run, channel, cutoff)
        while run.pending:
            run.drain(block=True)
    finally:
        run.close()
    run.result.warnings.extend(client.warnings)
    return run.result


def _fetch_channel(run, channel, cutoff):
    pages = run.client.fetch_messages(channel["id"], cutoff)
    try:
        for items, count in release_batches(pages, run.zone):
            run.result.messages += count
            run.dispatch(items)
            run.drain(block=False)
    except AuthError:
        raise
    except AccessError as exc:
        if len(run.result.channels) == 1 and run.result.messages == 0:
            raise
        run.result.errors.append((f"channel #{channel.get('name', channel['id'])}", str(exc)))
    except DiscordError as exc:
        run.result.errors.append((f"fetching messages of #{channel.get('name', channel['id'])}",
                                  f"{exc}; later messages were not fetched"))


def list_threads(client, channel, cutoff):
    """The threads of `channel` active after `cutoff`, sorted by ID."""
    threads = {}
    for page in client.fetch_threads(channel, cutoff):
        for thread in page:
            threads[thread["id"]] = thread
    return [threads[k] for k in sorted(threads, key=int)]


def cutoff_for(days, now=None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now - timedelta(days=days)

"""A loopback Discord emulator: the subset of API v10 the downloader uses, plus a CDN.

`DiscordEmulator` runs two real HTTP servers on 127.0.0.1 (free ports): an API
server speaking Discord's JSON shapes, snowflake IDs, pagination, token check,
per-route rate-limit buckets and 429 bodies, and a separate CDN server serving
image bytes behind signed, expiring links (`ex`/`is`/`hm`). Faults (5xx, 429
storms, truncated bodies, HTML error pages, slow answers, expired links) can be
injected, and every request is logged with whether it carried Authorization.
It ships with the product: `main.py --demo` runs the real download against it.
Stdlib only, plus Pillow for the chart generator.

Use from a test::

    from discordpicextract.emulator import DiscordEmulator, generate_channel

    with DiscordEmulator(token="tok-" + secrets.token_hex(8)) as emu:
        gen = generate_channel(emu, seed=3, days=10)
        monkeypatch.setenv("DISCORD_API_BASE", emu.api_base)
        ... run the downloader on gen.channel["id"] ...
        assert emu.count_status(429) == 0
        # gen.expected_images lists every image a correct download must save

Or build the world by hand::

    g = emu.add_guild("数学家炒美股")                  # member=False: a guild you are not in
    c = emu.add_channel(g["id"], "spx-realtime-aws")  # accessible=False: 403 Missing Access
    t = emu.add_thread(c["id"], "old", archived=True)
    url = emu.host_image("chart.png", png)            # unsigned URL for text or embeds
    emu.add_message(c["id"], when, content=f"see {url}?w=1",
                    attachments=[("image.png", png, "image/png")],
                    embeds=[{"type": "image", "url": url, "thumbnail": {"url": url}}],
                    snapshots=[{"content": "", "attachments": [...], "embeds": []}])

Faults: `emu.inject(kind, path_contains=..., times=n, **params)` with kind
"status", "rate_limit", "rate_limit_absurd", "truncate", "html" or "slow";
`emu.expire_links()` invalidates every CDN link issued so far.
Inspection: `emu.requests` (RequestRecord: server, method, path, query,
authorization, status, at), `emu.count_status(429)`, `emu.connections_opened`,
`emu.clear_log()`, `emu.clear_faults()`, `emu.reset_rate_limits()`.
Helpers: `snowflake_for(when, increment)`, `snowflake_time(id)`,
`chart_image_bytes(key, w, h)` (cached chart PNG), `GeneratedChannel.expected_images`
(ExpectedImage: message_id, source, ref, filename, sha256, time).
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import io
import json
import math
import random
import re
import secrets
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"
UTC = timezone.utc
GONE_TEXT = b"This content is no longer available."


# --------------------------------------------------------------------------
# Snowflakes and small helpers
# --------------------------------------------------------------------------

def snowflake_for(when: datetime, increment: int = 0) -> int:
    """Discord snowflake for an aware datetime: ((ms - epoch) << 22) | increment."""
    ms = int(math.floor(when.timestamp() * 1000))
    return ((ms - DISCORD_EPOCH_MS) << 22) | (increment & 0xFFF)


def snowflake_time(snowflake) -> datetime:
    """The aware UTC datetime (ms precision) a snowflake was made at."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso(when: Optional[datetime]) -> Optional[str]:
    """Discord's timestamp format: ISO 8601 in UTC with +00:00."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("message times must be aware datetimes")
    # Snowflakes carry milliseconds; keep timestamp and ID in agreement.
    when = when.astimezone(UTC)
    return when.replace(microsecond=(when.microsecond // 1000) * 1000)


def image_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) of PNG, GIF, JPEG or WebP bytes, read from the header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        if data[12:16] == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if data[12:16] == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return None
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 < len(data):
            if data[pos] != 0xFF:
                pos += 1
                continue
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
                return w, h
            pos += 2 + length
    return None


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------

class RequestRecord(NamedTuple):
    server: str                 # "api" or "cdn"
    method: str
    path: str
    query: dict[str, str]
    authorization: Optional[str]
    status: int
    at: float
    user_agent: Optional[str] = None


@dataclass
class _Fault:
    kind: str
    path_contains: str
    times: int
    params: dict[str, Any]


@dataclass
class _Blob:
    """Stored file bytes (attachment or external image)."""
    id: int
    channel_id: int
    filename: str
    data: bytes
    content_type: Optional[str]


@dataclass
class _Snapshot:
    content: str
    attachments: list[_Blob]
    embeds: list[dict]
    when: datetime


@dataclass
class _Message:
    id: int
    channel_id: int
    when: datetime
    content: str
    author: dict
    attachments: list[_Blob]
    embeds: list[dict]
    snapshots: list[_Snapshot]
    reference: Optional[dict]


@dataclass
class _Channel:
    obj: dict
    accessible: bool = True
    ids: list[int] = field(default_factory=list)         # sorted message IDs
    messages: dict[int, _Message] = field(default_factory=dict)


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False


def _json(status: int, obj, headers=None) -> _Response:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _Response(status, body, "application/json", dict(headers or {}))


def _error(status: int, message: str, code: int, **extra) -> _Response:
    return _json(status, dict({"message": message, "code": code}, **extra))


def _unauthorized() -> _Response:
    return _error(401, "401: Unauthorized", 0)


class _ClientError(Exception):
    """Raised inside a route to answer with an error body."""

    def __init__(self, response: _Response):
        super().__init__(response.status)
        self.response = response


def _form_error(field_name: str, code: str, message: str) -> _ClientError:
    return _ClientError(_error(400, "Invalid Form Body", 50035, errors={
        field_name: {"_errors": [{"code": code, "message": message}]}}))


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, emulator: DiscordEmulator, kind: str):
        self.emulator = emulator
        self.kind = kind
        self._connections = set()
        self._conn_lock = threading.Lock()
        self.opened = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(conn)
                self.opened += 1
            else:
                self._connections.discard(conn)

    def handle_error(self, request, client_address):
        # A client hanging up mid-answer is normal (timeouts, truncate faults);
        # anything else is an emulator bug and must stay visible.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        # Keep-alive handler threads block reading their socket; shutting the
        # sockets down lets stop() actually end every connection.
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive: requests.Session reuses connections
    server_version = "DiscordEmulator/1.0"
    sys_version = ""
    timeout = 60                      # an idle keep-alive connection is closed after this

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus
        # delayed ACK would add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format, *args):
        pass

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.emulator._serve(self, self.server.kind)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------

_ROUTES = [
    # (template, regex, handler name, major parameter group or None)
    ("/users/@me", re.compile(r"^/users/@me$"), "_route_me", None),
    ("/users/@me/guilds", re.compile(r"^/users/@me/guilds$"), "_route_my_guilds", None),
    ("/guilds/{guild_id}/channels", re.compile(r"^/guilds/(\d+)/channels$"), "_route_guild_channels", 1),
    ("/guilds/{guild_id}/threads/active", re.compile(r"^/guilds/(\d+)/threads/active$"),
     "_route_active_threads", 1),
    ("/channels/{channel_id}", re.compile(r"^/channels/(\d+)$"), "_route_channel", 1),
    ("/channels/{channel_id}/messages", re.compile(r"^/channels/(\d+)/messages$"), "_route_messages", 1),
    ("/channels/{channel_id}/messages/{message_id}", re.compile(r"^/channels/(\d+)/messages/(\d+)$"),
     "_route_message", 1),
    ("/channels/{channel_id}/threads/archived/public",
     re.compile(r"^/channels/(\d+)/threads/archived/public$"), "_route_archived_threads", 1),
    ("/channels/{channel_id}/threads/search", re.compile(r"^/channels/(\d+)/threads/search$"),
     "_route_thread_search", 1),
]

_CDN_ATTACHMENT = re.compile(r"^/attachments/(\d+)/(\d+)/([^/]+)$")
_CDN_EXTERNAL = re.compile(r"^/external/(\d+)/([^/]+)$")


class DiscordEmulator:
    """Loopback Discord API v10 subset + CDN. See the module docstring."""

    def __init__(self, token: str, token_kind: str = "user", latency: float = 0.0,
                 rate_limits: bool = True, route_limit: tuple[int, float] = (5, 1.0),
                 link_ttl: float = 86400.0, username: str = "chart_watcher",
                 global_limit: Optional[tuple[int, float]] = None):
        """global_limit: optional (requests, seconds) across all API routes (Discord's
        is 50 per second); exceeding it answers a global 429."""
        if token_kind not in ("user", "bot"):
            raise ValueError("token_kind must be 'user' or 'bot'")
        self.token = token
        self.token_kind = token_kind
        self.latency = float(latency)
        self.rate_limits = bool(rate_limits)
        self.route_limit = (int(route_limit[0]), float(route_limit[1]))
        self.link_ttl = float(link_ttl)
        self.global_limit = None if global_limit is None else (int(global_limit[0]), float(global_limit[1]))
        self._global_window = [0.0, 0]
        self._expected_auth = token if token_kind == "user" else "Bot " + token
        self._lock = threading.RLock()          # world state
        self._log_lock = threading.Lock()       # request log + status counts
        self._rl_lock = threading.Lock()        # rate-limit buckets
        self._fault_lock = threading.Lock()
        self._increments: dict[int, int] = {}
        self._guilds: dict[int, dict] = {}
        self._guild_member: dict[int, bool] = {}
        self._channels: dict[int, _Channel] = {}
        self._blobs: dict[int, _Blob] = {}
        self._external: dict[int, _Blob] = {}
        self._faults: list[_Fault] = []
        self._buckets: dict[tuple[str, str], list[float]] = {}
        self._requests: list[RequestRecord] = []
        self._status_counts: dict[int, int] = {}
        self._link_secret = secrets.token_bytes(32)
        self._link_generation = 0
        self._api_server: Optional[_Server] = None
        self._cdn_server: Optional[_Server] = None
        self._threads: list[threading.Thread] = []
        now = datetime.now(UTC) - timedelta(days=900)
        self.me = self._user(self._new_id(now), username, bot=(token_kind == "bot"))
        self.poster = self._user(self._new_id(now), "spx_poster")

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> DiscordEmulator:
        if self._api_server is not None:
            return self
        self._api_server = _Server(self, "api")
        self._cdn_server = _Server(self, "cdn")
        for server in (self._api_server, self._cdn_server):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                      name=f"discord-emulator-{server.kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._api_server, self._cdn_server):
            if server is not None:
                server.shutdown()
                server.close_connections()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> DiscordEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port(self._api_server)}{API_PREFIX}"

    @property
    def cdn_base(self) -> str:
        return f"http://127.0.0.1:{self._port(self._cdn_server)}"

    @staticmethod
    def _port(server) -> int:
        if server is None:
            raise RuntimeError("call start() first")
        return server.server_address[1]

    # ---- IDs and objects -------------------------------------------------
    def _new_id(self, when: datetime) -> int:
        with self._lock:
            ms = int(math.floor(when.timestamp() * 1000))
            inc = self._increments.get(ms, 0)
            if inc > 0xFFF:
                raise ValueError("more than 4096 IDs in one millisecond")
            self._increments[ms] = inc + 1
            return snowflake_for(when, inc)

    @staticmethod
    def _user(uid: int, username: str, bot: bool = False) -> dict:
        user = {"id": str(uid), "username": username, "avatar": None, "discriminator": "0",
                "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
                "global_name": username.replace("_", " ").title(), "avatar_decoration_data": None,
                "collectibles": None, "primary_guild": None}
        if bot:
            user["bot"] = True
        return user

    def add_guild(self, name: str, member: bool = True) -> dict:
        """A guild; `member=False` makes one the token's user is not in
        (not listed; its channels answer 403)."""
        with self._lock:
            gid = self._new_id(datetime.now(UTC) - timedelta(days=800))
            guild = {"id": str(gid), "name": name, "icon": None, "banner": None, "owner": False,
                     "permissions": "1071698660929", "features": [],
                     "approximate_member_count": None, "approximate_presence_count": None}
            self._guilds[gid] = guild
            self._guild_member[gid] = member
            return dict(guild)

    def add_channel(self, guild_id, name: str, accessible: bool = True, topic: Optional[str] = None,
                    position: Optional[int] = None) -> dict:
        """A GUILD_TEXT channel (type 0). `accessible=False`: it exists, 403 Missing Access."""
        with self._lock:
            gid = int(guild_id)
            cid = self._new_id(datetime.now(UTC) - timedelta(days=700))
            if position is None:
                position = sum(1 for c in self._channels.values()
                               if c.obj["guild_id"] == str(gid) and c.obj["type"] == 0)
            obj = {"id": str(cid), "type": 0, "guild_id": str(gid), "name": name,
                   "position": position, "flags": 0, "parent_id": None, "topic": topic,
                   "nsfw": False, "rate_limit_per_user": 0, "permission_overwrites": [],
                   "last_message_id": None, "last_pin_timestamp": None}
            self._channels[cid] = _Channel(obj, accessible=accessible and self._guild_member.get(gid, False))
            return dict(obj)

    def add_thread(self, channel_id, name: str, archived: bool = False,
                   archive_time: Optional[datetime] = None) -> dict:
        """A PUBLIC_THREAD (type 11) of a channel; messages can be added to it like a channel."""
        with self._lock:
            parent = self._channels[int(channel_id)]
            created = datetime.now(UTC) - timedelta(days=60)
            tid = self._new_id(created)
            archive_time = archive_time or (datetime.now(UTC) - timedelta(days=1) if archived else created)
            obj = {"id": str(tid), "type": 11, "guild_id": parent.obj["guild_id"], "name": name,
                   "parent_id": parent.obj["id"], "owner_id": self.poster["id"], "flags": 0,
                   "last_message_id": None, "rate_limit_per_user": 0,
                   "message_count": 0, "member_count": 1, "total_message_sent": 0,
                   "thread_metadata": {"archived": archived, "archive_timestamp": iso(_aware(archive_time)),
                                       "auto_archive_duration": 1440, "locked": False,
                                       "create_timestamp": iso(created)}}
            self._channels[tid] = _Channel(obj, accessible=parent.accessible)
            return dict(obj)

    def _blob(self, channel_id: int, when: datetime, spec) -> _Blob:
        filename, data, content_type = spec
        blob = _Blob(self._new_id(when), channel_id, filename, bytes(data), content_type)
        self._blobs[blob.id] = blob
        return blob

    def add_message(self, channel_id, when: datetime, content: str = "", attachments=(), embeds=(),
                    snapshots=(), author: Optional[dict] = None) -> dict:
        """Post a message at `when` (aware); returns its Discord JSON (fresh signed links).

        attachments: (filename, bytes, content_type or None) tuples.
        snapshots: forwarded messages, dicts with content/attachments/embeds
        (and optionally "timestamp", the original's aware datetime)."""
        when = _aware(when)
        with self._lock:
            cid = int(channel_id)
            chan = self._channels[cid]
            mid = self._new_id(when)
            snaps = []
            for snap in snapshots:
                snap_when = _aware(snap.get("timestamp") or when)
                snaps.append(_Snapshot(snap.get("content", ""),
                                       [self._blob(cid, when, a) for a in snap.get("attachments", ())],
                                       [dict(e) for e in snap.get("embeds", ())], snap_when))
            reference = None
            if snaps:
                reference = {"type": 1, "channel_id": str(cid), "guild_id": chan.obj["guild_id"],
                             "message_id": str(snowflake_for(snaps[0].when))}
            msg = _Message(mid, cid, when, content, dict(author or self.poster),
                           [self._blob(cid, when, a) for a in attachments],
                           [dict(e) for e in embeds], snaps, reference)
            bisect.insort(chan.ids, mid)
            chan.messages[mid] = msg
            chan.obj["last_message_id"] = str(chan.ids[-1])
            if chan.obj["type"] == 11:
                chan.obj["message_count"] += 1
                chan.obj["total_message_sent"] += 1
            # a copy: callers may change what they get without touching the stored message
            return json.loads(json.dumps(self._render_message(msg, time.time())))

    def host_image(self, filename: str, data: bytes, content_type: str = "image/png") -> str:
        """Put bytes on the CDN at an unsigned external URL (for text URLs and embeds)."""
        with self._lock:
            blob = _Blob(self._new_id(datetime.now(UTC)), 0, filename, bytes(data), content_type)
            self._external[blob.id] = blob
        return f"{self.cdn_base}/external/{blob.id}/{quote(filename, safe='')}"

    # ---- rendering ---------------------------------------------------------
    def _sign(self, path: str, issued: int, expires: int, generation: int) -> str:
        msg = f"{generation}|{path}|{expires:x}|{issued:x}".encode()
        return hmac.new(self._link_secret, msg, hashlib.sha256).hexdigest()

    def _signed_url(self, blob: _Blob, now: float) -> str:
        path = f"/attachments/{blob.channel_id}/{blob.id}/{quote(blob.filename, safe='')}"
        issued = int(now)
        expires = int(now + self.link_ttl)
        hm = self._sign(path, issued, expires, self._link_generation)
        return f"{self.cdn_base}{path}?ex={expires:x}&is={issued:x}&hm={hm}&"

    def _render_attachment(self, blob: _Blob, now: float) -> dict:
        url = self._signed_url(blob, now)
        out = {"id": str(blob.id), "filename": blob.filename, "size": len(blob.data),
               "url": url, "proxy_url": url}
        if blob.content_type:
            out["content_type"] = blob.content_type
        dims = image_dimensions(blob.data) if (blob.content_type or "").startswith("image/") \
            or blob.content_type is None else None
        if dims:
            out["width"], out["height"] = dims
        return out

    def _render_message(self, msg: _Message, now: float) -> dict:
        out = {"type": 0, "id": str(msg.id), "channel_id": str(msg.channel_id), "author": msg.author,
               "content": msg.content, "timestamp": iso(msg.when), "edited_timestamp": None,
               "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
               "attachments": [self._render_attachment(b, now) for b in msg.attachments],
               "embeds": msg.embeds, "pinned": False, "flags": 0, "components": []}
        if msg.snapshots:
            out["flags"] = 1 << 14          # HAS_SNAPSHOT, as Discord marks forwards
            out["message_reference"] = msg.reference
            out["message_snapshots"] = [{"message": {
                "type": 0, "content": s.content, "timestamp": iso(s.when), "edited_timestamp": None,
                "flags": 0, "mentions": [], "mention_roles": [], "components": [],
                "attachments": [self._render_attachment(b, now) for b in s.attachments],
                "embeds": s.embeds}} for s in msg.snapshots]
        return out

    # ---- faults and inspection -----------------------------------------------
    def inject(self, kind: str, path_contains: str = "", times: int = 1, **params) -> None:
        """Make the next `times` requests whose path contains `path_contains` fail.

        kinds: "status" (status=500), "rate_limit" (retry_after=1.0, is_global=False),
        "rate_limit_absurd" (reset_after=3600.0; a 429 whose Retry-After/retry_after/
        X-RateLimit-Reset-After ask for that wait; status=200 sends those headers on a
        normal answer instead), "truncate" (body cut to half, connection closed),
        "html" (200 text/html error page), "slow" (delay=1.0 before the normal answer)."""
        if kind not in ("status", "rate_limit", "rate_limit_absurd", "truncate", "html", "slow"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._fault_lock:
            self._faults.append(_Fault(kind, path_contains, int(times), params))

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._faults.clear()

    def expire_links(self) -> None:
        """Every CDN link issued so far now answers 404; re-read messages for fresh ones."""
        with self._lock:
            self._link_generation += 1

    @property
    def requests(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._requests)

    @property
    def connections_opened(self) -> dict[str, int]:
        """TCP connections accepted so far per server ({"api": n, "cdn": m}):
        a client reusing keep-alive connections keeps these small."""
        return {s.kind: s.opened for s in (self._api_server, self._cdn_server) if s is not None}

    def count_status(self, status: int) -> int:
        with self._log_lock:
            return self._status_counts.get(int(status), 0)

    def clear_log(self) -> None:
        with self._log_lock:
            self._requests.clear()
            self._status_counts.clear()

    def reset_rate_limits(self) -> None:
        with self._rl_lock:
            self._buckets.clear()

    # ---- request handling ------------------------------------------------------
    def _serve(self, handler: _Handler, server: str) -> None:
        split = urlsplit(handler.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        auth = handler.headers.get("Authorization")
        if self.latency > 0:
            time.sleep(self.latency)

        def normal() -> _Response:
            if server == "api":
                return self._api(handler.command, path, query, auth)
            return self._cdn(handler.command, path, query)

        response = self._take_fault(path, server, normal)
        if response is None:
            response = normal()
        self._log(RequestRecord(server, handler.command, path, query, auth, response.status, time.time(),
                                handler.headers.get("User-Agent")))
        self._send(handler, response)

    def _log(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._requests.append(record)
            self._status_counts[record.status] = self._status_counts.get(record.status, 0) + 1

    @staticmethod
    def _send(handler: _Handler, response: _Response) -> None:
        body = response.body
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                handler.send_header(name, value)
            if response.truncate:
                handler.send_header("Connection", "close")
                handler.close_connection = True
                body = body[:len(body) // 2]
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _take_fault(self, path: str, server: str, normal) -> Optional[_Response]:
        """The injected answer for this request, or None to answer normally."""
        with self._fault_lock:
            fault = next((f for f in self._faults if f.times > 0 and f.path_contains in path), None)
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
        return self._fault_response(fault, server, normal)

    def _fault_response(self, fault: _Fault, server: str, normal) -> Optional[_Response]:
        p = fault.params
        if fault.kind == "slow":
            time.sleep(float(p.get("delay", 1.0)))
            return None
        if fault.kind == "status":
            status = int(p.get("status", 500))
            if server == "cdn":
                return _Response(status, b"upstream error", "text/plain")
            return _error(status, p.get("message", f"{status}: Internal Server Error"), 0)
        if fault.kind == "rate_limit":
            return self._too_many(float(p.get("retry_after", 1.0)), bool(p.get("is_global", False)))
        if fault.kind == "rate_limit_absurd":
            wait = float(p.get("reset_after", 3600.0))
            if int(p.get("status", 429)) == 429:
                return self._too_many(wait, False, bucket=self._bucket_hash("absurd"))
            response = normal()
            response.headers.update({"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": f"{time.time() + wait:.3f}",
                                     "X-RateLimit-Reset-After": f"{wait:.3f}"})
            return response
        if fault.kind == "truncate":
            response = normal()
            if response.status != 200 or len(response.body) < 2:
                response = _Response(200, b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(4000), "image/png")
            response.truncate = True
            return response
        # html: what a misbehaving proxy or captive portal sends with a 200
        page = (b"<!DOCTYPE html><html><head><title>Error</title></head><body>"
                b"<h1>Something went wrong</h1><p>Please try again later.</p></body></html>")
        return _Response(200, page, "text/html; charset=utf-8")

    @staticmethod
    def _bucket_hash(template: str) -> str:
        return hashlib.sha256(template.encode()).hexdigest()[:32]

    def _too_many(self, retry_after: float, is_global: bool, bucket: Optional[str] = None) -> _Response:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))),
                   "X-RateLimit-Scope": "global" if is_global else "user"}
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update({"X-RateLimit-Limit": str(self.route_limit[0]), "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                            "X-RateLimit-Reset-After": f"{retry_after:.3f}"})
            if bucket:
                headers["X-RateLimit-Bucket"] = bucket
        body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3),
                "global": is_global, "code": 0}
        return _json(429, body, headers)

    def _global_rate_limit(self) -> Optional[_Response]:
        if self.global_limit is None:
            return None
        limit, per = self.global_limit
        now = time.time()
        with self._rl_lock:
            window = self._global_window
            if now >= window[0]:
                window[0], window[1] = now + per, 0
            window[1] += 1
            if window[1] <= limit:
                return None
            wait = window[0] - now
        return self._too_many(wait, True)

    def _rate_limit(self, template: str, major: str) -> tuple[Optional[_Response], dict[str, str]]:
        """Fixed-window bucket per (route, major parameter): (429 response or None, headers)."""
        limit, per = self.route_limit
        now = time.time()
        with self._rl_lock:
            state = self._buckets.get((template, major))
            if state is None or now >= state[0]:
                state = [now + per, 0]
                self._buckets[(template, major)] = state
            state[1] += 1
            reset_at, used = state
        bucket = self._bucket_hash(template)
        reset_after = max(0.0, reset_at - now)
        if used > limit:
            return self._too_many(reset_after, False, bucket=bucket), {}
        return None, {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
                      "X-RateLimit-Reset": f"{reset_at:.3f}", "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                      "X-RateLimit-Bucket": bucket}

    def _api(self, method: str, path: str, query: dict[str, str], auth: Optional[str]) -> _Response:
        if not path.startswith(API_PREFIX + "/"):
            return _error(404, "404: Not Found", 0)
        if auth is None or not hmac.compare_digest(auth.encode("utf-8", "replace"),
                                                   self._expected_auth.encode("utf-8")):
            return _unauthorized()
        route = path[len(API_PREFIX):]
        for template, regex, name, major in _ROUTES:
            match = regex.match(route)
            if match:
                break
        else:
            return _error(404, "404: Not Found", 0)
        headers: dict[str, str] = {}
        if self.rate_limits:
            limited = self._global_rate_limit()
            if limited is not None:
                return limited
            limited, headers = self._rate_limit(template, match.group(major) if major else "")
            if limited is not None:
                return limited
        if method not in ("GET", "HEAD"):
            response = _error(405, "405: Method Not Allowed", 0)
        else:
            try:
                with self._lock:
                    response = getattr(self, name)(query, *match.groups())
            except _ClientError as exc:
                response = exc.response
        response.headers.update(headers)
        return response

    # ---- API routes ----------------------------------------------------------------
    def _route_me(self, query):
        return _json(200, self.me)

    def _route_my_guilds(self, query):
        limit = _int_param(query, "limit", 200, 1, 200)
        ids = sorted(gid for gid, member in self._guild_member.items() if member)
        if "after" in query:
            after = _snowflake_param(query, "after")
            ids = [g for g in ids if g > after]
        if "before" in query:
            before = _snowflake_param(query, "before")
            ids = [g for g in ids if g < before][-limit:]
        return _json(200, [self._guilds[g] for g in ids[:limit]])

    def _route_guild_channels(self, query, guild_id):
        gid = int(guild_id)
        if gid not in self._guilds:
            raise _ClientError(_error(404, "Unknown Guild", 10004))
        if not self._guild_member[gid]:
            raise _ClientError(_error(403, "Missing Access", 50001))
        chans = [c.obj for c in self._channels.values()
                 if c.obj["guild_id"] == guild_id and c.obj["type"] not in (10, 11, 12)]
        return _json(200, sorted(chans, key=lambda c: (c["position"], int(c["id"]))))

    def _channel(self, channel_id) -> _Channel:
        chan = self._channels.get(int(channel_id))
        if chan is None:
            raise _ClientError(_error(404, "Unknown Channel", 10003))
        if not chan.accessible:
            raise _ClientError(_error(403, "Missing Access", 50001))
        return chan

    def _route_channel(self, query, channel_id):
        return _json(200, self._channel(channel_id).obj)

    def _route_messages(self, query, channel_id):
        chan = self._channel(channel_id)
        limit = _int_param(query, "limit", 50, 1, 100)
        given = [k for k in ("before", "after", "around") if k in query]
        if len(given) > 1:
            raise _form_error(given[1], "BASE_TYPE_BAD_COMBINATION",
                              "before, after and around are mutually exclusive.")
        ids = chan.ids
        if not given:
            chosen = ids[-limit:]
        elif given[0] == "before":
            end = bisect.bisect_left(ids, _snowflake_param(query, "before"))
            chosen = ids[max(0, end - limit):end]
        elif given[0] == "after":
            start = bisect.bisect_right(ids, _snowflake_param(query, "after"))
            chosen = ids[start:start + limit]
        else:
            # around: the message itself (if any) with about half the limit on each side
            pivot = _snowflake_param(query, "around")
            mid = bisect.bisect_left(ids, pivot)
            newer = limit // 2
            hi = min(len(ids), mid + newer + (1 if mid < len(ids) and ids[mid] == pivot else 0))
            lo = max(0, hi - limit)
            chosen = ids[lo:hi]
        now = time.time()
        return _json(200, [self._render_message(chan.messages[m], now) for m in reversed(chosen)])

    def _route_message(self, query, channel_id, message_id):
        chan = self._channel(channel_id)
        msg = chan.messages.get(int(message_id))
        if msg is None:
            raise _ClientError(_error(404, "Unknown Message", 10008))
        return _json(200, self._render_message(msg, time.time()))

    def _threads_of(self, parent_id=None, guild_id=None, archived=None) -> list[dict]:
        out = []
        for chan in self._channels.values():
            obj = chan.obj
            if obj["type"] not in (10, 11, 12):
                continue
            if parent_id is not None and obj["parent_id"] != parent_id:
                continue
            if guild_id is not None and obj["guild_id"] != guild_id:
                continue
            if archived is not None and obj["thread_metadata"]["archived"] != archived:
                continue
            out.append(obj)
        return out

    def _bots_only(self):
        if self.token_kind != "bot":
            raise _ClientError(_error(403, "Only bots can use this endpoint", 20002))

    def _route_active_threads(self, query, guild_id):
        self._bots_only()
        gid = int(guild_id)
        if gid not in self._guilds:
            raise _ClientError(_error(404, "Unknown Guild", 10004))
        if not self._guild_member[gid]:
            raise _ClientError(_error(403, "Missing Access", 50001))
        threads = self._threads_of(guild_id=guild_id, archived=False)
        return _json(200, {"threads": threads, "members": [], "has_more": False})

    def _route_archived_threads(self, query, channel_id):
        self._channel(channel_id)
        limit = _int_param(query, "limit", 50, 2, 100)
        threads = self._threads_of(parent_id=channel_id, archived=True)
        threads.sort(key=lambda t: t["thread_metadata"]["archive_timestamp"], reverse=True)
        if "before" in query:
            try:
                before = datetime.fromisoformat(query["before"].replace("Z", "+00:00"))
            except ValueError:
                raise _form_error("before", "DATE_TIME_TYPE_CONVERT", "Could not interpret the value as a date.")
            if before.tzinfo is None:
                before = before.replace(tzinfo=UTC)
            threads = [t for t in threads
                       if datetime.fromisoformat(t["thread_metadata"]["archive_timestamp"]) < before]
        return _json(200, {"threads": threads[:limit], "members": [], "has_more": len(threads) > limit})

    def _route_thread_search(self, query, channel_id):
        if self.token_kind == "bot":
            # The contract fixes code 20002 here (Discord itself uses 20001,
            # "Bots cannot use this endpoint"); callers should key on the 403.
            raise _ClientError(_error(403, "Bots cannot use this endpoint", 20002))
        self._channel(channel_id)
        archived = None
        if "archived" in query:
            archived = query["archived"].lower() in ("true", "1")
        limit = _int_param(query, "limit", 25, 1, 25)
        offset = _int_param(query, "offset", 0, 0, 9975)
        threads = sorted(self._threads_of(parent_id=channel_id, archived=archived),
                         key=lambda t: int(t["id"]), reverse=True)
        page = threads[offset:offset + limit]
        return _json(200, {"threads": page, "members": [], "has_more": offset + limit < len(threads),
                           "total_results": len(threads)})

    # ---- CDN -----------------------------------------------------------------------
    def _cdn(self, method: str, path: str, query: dict[str, str]) -> _Response:
        gone = _Response(404, GONE_TEXT, "text/plain; charset=utf-8")
        match = _CDN_ATTACHMENT.match(path)
        if match:
            blob = self._blobs.get(int(match.group(2)))
            if blob is None or str(blob.channel_id) != match.group(1) \
                    or unquote(match.group(3)) != blob.filename:
                return gone
            try:
                expires, issued, hm = int(query["ex"], 16), int(query["is"], 16), query["hm"]
            except (KeyError, ValueError):
                return gone
            signed_path = f"/attachments/{blob.channel_id}/{blob.id}/{quote(blob.filename, safe='')}"
            good = self._sign(signed_path, issued, expires, self._link_generation)
            if not hmac.compare_digest(good, hm) or expires < time.time():
                return gone
            return _Response(200, blob.data, blob.content_type or "application/octet-stream",
                             {"Cache-Control": "public, max-age=31536000"})
        match = _CDN_EXTERNAL.match(path)
        if match:
            blob = self._external.get(int(match.group(1)))
            if blob is None or unquote(match.group(2)) != blob.filename:
                return _Response(404, b"Not Found", "text/plain; charset=utf-8")
            return _Response(200, blob.data, blob.content_type or "application/octet-stream")
        return _Response(404, b"Not Found", "text/plain; charset=utf-8")


def _int_param(query, name, default, low, high) -> int:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise _form_error(name, "NUMBER_TYPE_COERCE", f"Value \"{query[name]}\" is not int.")
    if value < low:
        raise _form_error(name, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
    if value > high:
        raise _form_error(name, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
    return value


def _snowflake_param(query, name) -> int:
    try:
        value = int(query[name])
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise _form_error(name, "NUMBER_TYPE_COERCE", f"Value \"{query[name]}\" is not snowflake.")


# --------------------------------------------------------------------------
# Generators: realistic, seeded channel traffic
# --------------------------------------------------------------------------

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


@functools.lru_cache(maxsize=8192)
def chart_image_bytes(key: int, width: int = 400, height: int = 250, label: str = "",
                      fmt: str = "PNG") -> bytes:
    """A candlestick chart screenshot look-alike; distinct per `key` (cached)."""
    from PIL import Image, ImageDraw

    rng = random.Random(key)
    dark = rng.random() < 0.7
    bg, grid, text = ((19, 23, 34), (42, 46, 57), (200, 204, 214)) if dark \
        else ((255, 255, 255), (226, 229, 236), (40, 44, 52))
    up, down = (38, 166, 154), (239, 83, 80)
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    top, bottom, left, right = 18, height - 12, 4, width - 48
    for gy in range(top, bottom, 28):
        draw.line([(left, gy), (right, gy)], fill=grid)
    for gx in range(left, right, 56):
        draw.line([(gx, top), (gx, bottom)], fill=grid)
    count = rng.randint(28, 64)
    price = rng.uniform(3800, 6000)
    vol = price * rng.uniform(0.0008, 0.0025)
    drift = rng.uniform(-0.4, 0.4) * vol
    candles = []
    for _ in range(count):
        close = price + rng.gauss(drift, vol)
        high = max(price, close) + abs(rng.gauss(0, vol * 0.6))
        low = min(price, close) - abs(rng.gauss(0, vol * 0.6))
        candles.append((price, high, low, close))
        price = close
    lo = min(c[2] for c in candles)
    hi = max(c[1] for c in candles)
    span = (hi - lo) or 1.0

    def y(value):
        return bottom - (value - lo) / span * (bottom - top)

    step = (right - left) / count
    body = max(1.0, step * 0.6)
    average, line = None, []
    for i, (o, h, low_, c) in enumerate(candles):
        x = left + step * (i + 0.5)
        colour = up if c >= o else down
        draw.line([(x, y(h)), (x, y(low_))], fill=colour)
        y0, y1 = sorted((y(o), y(c)))
        draw.rectangle([x - body / 2, y0, x + body / 2, max(y1, y0 + 1)], fill=colour)
        average = c if average is None else average * 0.85 + c * 0.15
        line.append((x, y(average)))
    draw.line(line, fill=(255, 183, 77), width=2)
    last = candles[-1][3]
    draw.rectangle([right + 2, y(last) - 6, width - 2, y(last) + 6], fill=up if last >= candles[0][0] else down)
    draw.text((right + 4, y(last) - 5), f"{last:.1f}", fill=(255, 255, 255))
    for gy in range(top, bottom, 56):
        draw.text((right + 4, gy - 5), f"{lo + (bottom - gy) / (bottom - top) * span:.0f}", fill=text)
    draw.text((6, 3), label or f"SPX 5m  #{key % 100000}", fill=text)
    buffer = io.BytesIO()
    if fmt.upper() == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _ChannelBuilder:
    """Posts one generated channel's messages and records what must be saved."""

    def __init__(self, emu: DiscordEmulator, rng: random.Random, seed: int, out: GeneratedChannel,
                 image_size: tuple[int, int]):
        self.emu, self.rng, self.seed, self.out = emu, rng, seed, out
        self.size = image_size
        self.cid = out.channel["id"]
        self.counter = 0

    def image(self, label: str, fmt: str = "PNG") -> bytes:
        self.counter += 1
        key = (self.seed * 1_000_003 + self.counter) & 0x7FFFFFFF
        return chart_image_bytes(key, self.size[0], self.size[1], label, fmt)

    def in_window(self, when: datetime) -> bool:
        return self.out.start <= when <= self.out.end

    def post(self, when, **kwargs) -> Optional[dict]:
        if not self.in_window(when):
            return None
        message = self.emu.add_message(self.cid, when, **kwargs)
        self.out.messages.append(message)
        return message

    def expect(self, message, source, ref, filename, data):
        self.out.expected_images.append(ExpectedImage(
            message["id"], source, ref, filename, _sha256(data), datetime.fromisoformat(message["timestamp"])))

    def expect_attachments(self, message, specs, source="attachment", rendered=None):
        rendered = message["attachments"] if rendered is None else rendered
        for spec, att in zip(specs, rendered):
            self.expect(message, source, att["id"], spec[0], spec[1])

    def attachment_spec(self, when: datetime, label: str):
        name = self.rng.choice(ATTACHMENT_NAMES)
        local = when.astimezone(_zone(MARKET_ZONE))
        name = name.format(stamp=local.strftime("%Y%m%d-%H%M%S"))
        if name.endswith(".jpg"):
            return name, self.image(label, "JPEG"), "image/jpeg"
        return name, self.image(label), "image/png"

    def hosted(self, name: str, label: str):
        data = self.image(label)
        return self.emu.host_image(name, data, "image/png"), data

    # ---- post kinds -------------------------------------------------------------
    def attachment_post(self, when, label, repost: bool):
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

    def embed_post(self, when, label):
        name = self.rng.choice(("chart.png", "spx_levels.png", "heatmap.png"))
        url, data = self.hosted(name, label)
        w, h = image_dimensions(data)
        embed = {"type": "rich", "title": "SPX levels", "description": label, "color": 3447003,
                 "image": {"url": url, "proxy_url": url, "width": w, "height": h}}
        message = self.post(when, content="", embeds=[embed])
        if message is not None:
            self.expect(message, "embed", url, name, data)

    def text_url_post(self, when, label, auto_embed: bool):
        name = self.rng.choice(("spx.png", "chart.png", "es-5m.png"))
        url, data = self.hosted(name, label)
        url += f"?width={self.size[0]}&height={self.size[1]}&ref=tv{self.rng.randrange(1000)}"
        embeds = []
        if auto_embed:
            # Discord auto-embeds a pasted image link with the very same URL.
            w, h = image_dimensions(data)
            embeds = [{"type": "image", "url": url,
                       "thumbnail": {"url": url, "proxy_url": url, "width": w, "height": h}}]
        message = self.post(when, content=f"chart: {url} watch 5800", embeds=embeds)
        if message is not None:
            self.expect(message, "text", url, name, data)

    def forward_post(self, when, label):
        spec = ("image.png", self.image(label), "image/png")
        url, data = self.hosted("fwd_chart.png", label + " fwd")
        embeds, embedded = [], None
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

    def same_second_burst(self, when):
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

    def non_image_posts(self, when):
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

    def duplicate_url_post(self, when, label):
        url, data = self.hosted("same.png", label)
        message = self.post(when, content=f"{url} and again {url}",
                            embeds=[{"type": "image", "url": url,
                                     "thumbnail": {"url": url, "proxy_url": url}}])
        if message is not None:
            self.expect(message, "text", url, "same.png", data)


def _zone(name: str):
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def _trading_days(start: datetime, end: datetime) -> list[date]:
    zone = _zone(MARKET_ZONE)
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    days = []
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _at(day: date, seconds: float, shift_hours: int = 0) -> datetime:
    """Aware UTC time of `seconds` after 09:30 New York time on `day`."""
    local = datetime(day.year, day.month, day.day, 9, 30, tzinfo=_zone(MARKET_ZONE))
    return (local + timedelta(seconds=seconds)).astimezone(UTC) + timedelta(hours=shift_hours)


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
    end = _aware(end or datetime.now(UTC))
    start = end - timedelta(days=days)
    rng = random.Random(seed)
    guild = next((dict(g) for g in emu._guilds.values() if g["name"] == guild_name), None) \
        or emu.add_guild(guild_name)
    channel = emu.add_channel(guild["id"], channel_name)
    out = GeneratedChannel(guild, channel, [], 0, start=start, end=end)
    out.trading_days = _trading_days(start, end)
    builder = _ChannelBuilder(emu, rng, seed, out, image_size)
    count = len(out.trading_days)
    bad_first, bad_count = tz_error_days or (0, 0)
    specials = {1 % max(count, 1): "non_image", count // 2: "burst", max(count - 2, 0): "forward",
                2 % max(count, 1): "dup_url"}
    previous_offset = None
    for index, day in enumerate(out.trading_days):
        shift = 5 if bad_first <= index < bad_first + bad_count else 0
        if shift:
            out.tz_error_dates.append(day)
        offset = datetime(day.year, day.month, day.day, 12, tzinfo=_zone(MARKET_ZONE)).utcoffset()
        if previous_offset is not None and offset != previous_offset:
            out.dst_change_dates.append(day)
        previous_offset = offset
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
        special = specials.get(index)
        if special == "non_image":
            builder.non_image_posts(_at(day, 3600 + 17, shift))
        elif special == "burst":
            builder.same_second_burst(_at(day, 6300 + 7, shift))
        elif special == "forward":
            builder.forward_post(_at(day, 9000 + 3, shift), f"SPX forwarded {day.isoformat()}")
        elif special == "dup_url":
            builder.duplicate_url_post(_at(day, 12000 + 11, shift), f"SPX dup {day.isoformat()}")
    out.messages.sort(key=lambda m: int(m["id"]))
    out.expected_images.sort(key=lambda e: (int(e.message_id), e.source, e.ref))
    out.image_count = len(out.expected_images)
    return out


def build_demo_channel(emu: DiscordEmulator, seed: int = 7, days: int = 30) -> GeneratedChannel:
    """The channel `main.py --demo` downloads: a few hundred images over ~`days`
    days ending now, with a two-day time-zone-error stretch (posts +5 h)."""
    return generate_channel(emu, seed=seed, days=days, per_day=(8, 13), image_size=(360, 220),
                            tz_error_days=(6, 2))

"""The HTTP side: two loopback servers (API and CDN), the request log, and `DiscordEmulator`.

`DiscordEmulator` is the public face: it starts and stops the servers, builds
the world (add_guild, add_channel, add_thread, add_message, host_image), takes
faults (inject, expire_links) and answers inspection (requests, count_status,
connections_opened). The work is done by the store, routes and faults modules.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import parse_qs, quote, urlsplit

from .faults import FaultInjector, RateLimiter
from .render import CdnLinks, render_message
from .responses import Response
from .routes import API_PREFIX, ApiRouter, ApiRoutes, CdnRoutes
from .snowflakes import UTC, message_time
from .store import FileSpec, Id, World, make_user


class Request(NamedTuple):
    server: str                 # "api" or "cdn"
    method: str
    path: str
    query: dict[str, str]
    authorization: Optional[str]
    user_agent: Optional[str]
    body: bytes = b""


class RequestRecord(NamedTuple):
    server: str                 # "api" or "cdn"
    method: str
    path: str
    query: dict[str, str]
    authorization: Optional[str]
    status: int
    at: float
    user_agent: Optional[str] = None


class RequestLog:
    """Every request answered, with a count per status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._status_counts: dict[int, int] = {}

    def add(self, request: Request, status: int) -> None:
        record = RequestRecord(request.server, request.method, request.path, request.query,
                               request.authorization, status, time.time(), request.user_agent)
        with self._lock:
            self._records.append(record)
            self._status_counts[status] = self._status_counts.get(status, 0) + 1

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, status: int) -> int:
        with self._lock:
            return self._status_counts.get(int(status), 0)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._status_counts.clear()


App = Callable[[Request], Response]


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) answering every request with `app`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, kind: str, app: App):
        self.kind = kind
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.opened = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(conn)
                self.opened += 1
            else:
                self._connections.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
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
    server: LoopbackServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus
        # delayed ACK would add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        request = Request(self.server.kind, self.command, split.path, query,
                          self.headers.get("Authorization"), self.headers.get("User-Agent"), body)
        self._send(self.server.app(request))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _send(self, response: Response) -> None:
        body = response.body
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            if not response.endless:  # an endless body has no length: it ends when the client hangs up
                self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.truncate or response.endless:
                self.send_header("Connection", "close")
                self.close_connection = True
            if response.truncate:
                body = body[:len(body) // 2]
            if response.trickle_headers:
                self._trickle_headers(response.trickle)
            else:
                self.end_headers()
            if self.command == "HEAD":
                return
            if response.trickle:
                self._trickle(body, response.trickle)
            else:
                self.wfile.write(body)
            if response.endless:
                self._endless(response.endless_rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _trickle(self, body: bytes, interval: float) -> None:
        # a few bytes at a time, each well within any read timeout, so that
        # only a limit on the whole transfer ends it
        for start in range(0, len(body), 16):
            self.wfile.write(body[start:start + 16])
            self.wfile.flush()
            time.sleep(interval)

    def _trickle_headers(self, interval: float) -> None:
        # what end_headers() sends at once (status line, headers, blank line), a few bytes at a time
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        head = b"".join(buffered) + b"\r\n"
        buffered.clear()
        self._trickle(head, interval)

    def _endless(self, rate: float) -> None:
        # ends with an OSError when the client hangs up or stop() shuts the socket
        block = os.urandom(64 * 1024)
        while True:
            self.wfile.write(block)
            if rate:
                time.sleep(len(block) / rate)


class DiscordEmulator:
    """Loopback Discord API v10 subset + CDN. See the package docstring."""

    def __init__(self, token: str, token_kind: str = "user", latency: float = 0.0,
                 rate_limits: bool = True, route_limit: tuple[int, float] = (5, 1.0),
                 link_ttl: float = 86400.0, username: str = "chart_watcher",
                 global_limit: Optional[tuple[int, float]] = None, message_content: bool = True,
                 manage_threads: bool = False, invalid_limit: int = 10000):
        """global_limit: optional (requests, seconds) across all API routes (Discord's
        is 50 per second); exceeding it answers a global 429.
        message_content=False: a bot without the Message Content intent (its
        messages come back empty). manage_threads: a bot may list private
        archived threads. invalid_limit: 401/403/429 answers (shared-scope 429s
        not counted) within 10 minutes after which the IP is banned, as Discord
        does at 10,000: every answer is then a 429 ban."""
        if token_kind not in ("user", "bot"):
            raise ValueError("token_kind must be 'user' or 'bot'")
        self.token = token
        self.token_kind = token_kind
        self.latency = float(latency)
        self.world = World()
        self.links = CdnLinks(link_ttl, lambda: self.cdn_base)
        self.limiter = RateLimiter(rate_limits, route_limit, global_limit)
        self.faults = FaultInjector(self.limiter)
        self.log = RequestLog()
        self._servers: dict[str, LoopbackServer] = {}
        self._threads: list[threading.Thread] = []
        now = datetime.now(UTC) - timedelta(days=900)
        self.me = make_user(self.world.new_id(now), username, bot=(token_kind == "bot"))
        self.poster = make_user(self.world.new_id(now), "spx_poster")
        expected_auth = token if token_kind == "user" else "Bot " + token
        routes = ApiRoutes(self.world, self.links, self.me, token_kind, proxy=self._proxied)
        routes.message_content, routes.manage_threads = message_content, manage_threads
        self.api = ApiRouter(routes, self.limiter, expected_auth)
        self.cdn = CdnRoutes(self.world, self.links)
        self.invalid_limit = invalid_limit
        self._invalid: list[float] = []
        self._banned = False

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> DiscordEmulator:
        if self._servers:
            return self
        for kind in ("api", "cdn"):
            server = self._servers[kind] = LoopbackServer(kind, self._answer)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                      name=f"discord-emulator-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> DiscordEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _port(self, kind: str) -> int:
        if kind not in self._servers:
            raise RuntimeError("call start() first")
        return self._servers[kind].port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port('api')}{API_PREFIX}"

    @property
    def cdn_base(self) -> str:
        return f"http://127.0.0.1:{self._port('cdn')}"

    # ---- building the world ------------------------------------------------
    def add_guild(self, name: str, member: bool = True) -> dict:
        """A guild; `member=False` makes one the token's user is not in
        (not listed; its channels answer 403)."""
        return dict(self.world.add_guild(name, member))

    def guilds(self) -> list[dict]:
        """Every guild added so far, member or not, oldest first (copies)."""
        with self.world.lock:
            return [dict(g) for g in self.world.guilds.values()]

    def add_channel(self, guild_id: Id, name: str, accessible: bool = True, topic: Optional[str] = None,
                    position: Optional[int] = None, kind: int = 0) -> dict:
        """A GUILD_TEXT channel (type 0; `kind` 15 a forum, 16 a media channel,
        4 a category...). `accessible=False`: it exists, 403 Missing Access.
        A forum or media channel's /messages answers 200 []: its posts are threads."""
        return dict(self.world.add_channel(guild_id, name, accessible, topic, position, kind))

    def add_thread(self, channel_id: Id, name: str, archived: bool = False,
                   archive_time: Optional[datetime] = None, created: Optional[datetime] = None,
                   private: bool = False, from_message: Optional[Id] = None) -> dict:
        """A PUBLIC_THREAD (type 11; PRIVATE_THREAD 12 with `private`) of a
        channel; messages can be added to it like a channel. `created`
        (default 60 days ago) sets its ID. `from_message`: a thread started
        from that message of the channel: it takes the message's ID, and its
        first message is a THREAD_STARTER_MESSAGE (type 21) referencing it."""
        if from_message is None:
            return dict(self.world.add_thread(channel_id, name, self.poster["id"], archived, archive_time,
                                              created, private=private))
        with self.world.lock:
            starter = self.world.channels[int(channel_id)].messages[int(from_message)]
            thread = self.world.add_thread(channel_id, name, self.poster["id"], archived, archive_time,
                                           starter.when, thread_id=starter.id, private=private)
            self.world.add_message(thread["id"], starter.when, "", (), (), (), starter.author, kind=21,
                                   reference={"type": 0, "channel_id": str(channel_id),
                                              "guild_id": thread["guild_id"], "message_id": str(starter.id)})
            return dict(thread)

    def add_forum_post(self, forum_id: Id, name: str, when: datetime, **message: Any) -> tuple[dict, dict]:
        """A post of a forum or media channel: a thread whose first message
        (same ID as the thread) holds the post; returns (thread, message)."""
        when = message_time(when)
        with self.world.lock:
            mid = self.world.new_id(when)
            thread = self.world.add_thread(forum_id, name, self.poster["id"], False, None, when, thread_id=mid)
            msg = self.world.add_message(thread["id"], when, message.pop("content", ""),
                                         message.pop("attachments", ()), message.pop("embeds", ()),
                                         message.pop("snapshots", ()), message.pop("author", None) or self.poster,
                                         components=message.pop("components", ()), message_id=mid)
            if message:
                raise TypeError(f"unknown message fields: {sorted(message)}")
            return dict(thread), self._copy(msg)

    def add_message(self, channel_id: Id, when: datetime, content: str = "", attachments: Iterable[FileSpec] = (),
                    embeds: Iterable[dict] = (), snapshots: Iterable[dict] = (),
                    author: Optional[dict] = None, components: Iterable = ()) -> dict:
        """Post a message at `when` (aware); returns its Discord JSON (fresh signed links).

        attachments: (filename, bytes, content_type or None[, {"title": ..., "flags": ...}]) tuples.
        snapshots: forwarded messages, dicts with content/attachments/embeds/components
        (and optionally "timestamp", the original's aware datetime).
        components: Components V2 trees (see emulator.components: gallery,
        section, file, container), uploads given as attachment tuples; the
        message is then flagged IS_COMPONENTS_V2 and those uploads are left
        out of `attachments`, as Discord does."""
        when = message_time(when)       # refuse a naive time before taking the lock
        with self.world.lock:
            msg = self.world.add_message(channel_id, when, content, attachments, embeds, snapshots,
                                         author or self.poster, components=components)
            return self._copy(msg)

    def _copy(self, msg: Any) -> dict:
        # a copy: callers may change what they get without touching the stored message
        return json.loads(json.dumps(render_message(msg, self.links, time.time(), self._proxied)))

    def _proxied(self, url: str) -> Optional[str]:
        """Discord's proxy copy of an external image this emulator hosts: on
        another host name (localhost) than the origin (127.0.0.1)."""
        prefix = f"{self.cdn_base}/external/"
        if not url.startswith(prefix):
            return None
        return f"http://localhost:{self._port('cdn')}/images-ext/{url[len(prefix):]}"

    def stale_link(self, channel_id: Id, filename: str, data: bytes, content_type: str = "image/png") -> str:
        """A signed CDN link to a stored upload that expired a day ago, as one
        pasted in a message's text; POST /attachments/refresh-urls re-signs it."""
        blob = self.world.add_blob(channel_id, (filename, data, content_type))
        return self.links.signed_url(blob, time.time() - 2 * self.links.ttl - 60)

    def host_image(self, filename: str, data: bytes, content_type: str = "image/png") -> str:
        """Put bytes on the CDN at an unsigned external URL (for text URLs and embeds)."""
        blob = self.world.add_external(filename, data, content_type)
        return f"{self.cdn_base}/external/{blob.id}/{quote(filename, safe='')}"

    # ---- faults --------------------------------------------------------------
    def inject(self, kind: str, path_contains: str = "", times: int = 1, **params: Any) -> None:
        """Make the next `times` requests whose path contains `path_contains` fail.

        kinds: "status" (status=500), "rate_limit" (retry_after=1.0, is_global=False),
        "rate_limit_absurd" (reset_after=3600.0; a 429 whose Retry-After/retry_after/
        X-RateLimit-Reset-After ask for that wait; status=200 sends those headers on a
        normal answer instead), "truncate" (body cut to half, connection closed),
        "html" (200 text/html error page), "slow" (delay=1.0 before the normal answer),
        "trickle" (the normal body 16 bytes per interval=0.05 s: every read well within a
        timeout, the whole transfer endless in practice; headers=True trickles the status
        line and headers too; on the API or the CDN, by path), "endless" (the normal body, then
        random bytes until the client hangs up; no Content-Length; rate= bytes per second,
        default unlimited),
        "ban" (shape="json": a 429 {"code": 0, "message": "You are being blocked..."}
        without rate-limit headers; "cloudflare": a 429 text/plain `error code: 1015`;
        "html": a 429 Cloudflare HTML page), "block" (403 {"code": 40333}).
        "status" takes code= (Discord's JSON error code, e.g. 40002 with status=403);
        "rate_limit" takes scope= ("user", "global" or "shared"). Any fault takes
        skip=n: the first n matching requests are answered normally."""
        self.faults.add(kind, path_contains, times, params)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_links(self) -> None:
        """Every CDN link issued so far now answers 404; re-read messages for fresh ones."""
        self.links.expire_all()

    def reset_rate_limits(self) -> None:
        self.limiter.reset()

    # ---- inspection ------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        return self.log.records()

    @property
    def connections_opened(self) -> dict[str, int]:
        """TCP connections accepted so far per server ({"api": n, "cdn": m}):
        a client reusing keep-alive connections keeps these small."""
        return {kind: server.opened for kind, server in self._servers.items()}

    def count_status(self, status: int) -> int:
        return self.log.count(status)

    def clear_log(self) -> None:
        self.log.clear()

    # ---- answering -----------------------------------------------------------------
    def _normal(self, request: Request) -> Response:
        if request.server == "api":
            return self.api.handle(request.method, request.path, request.query, request.authorization,
                                   request.body, request.user_agent)
        return self.cdn.handle(request.method, request.path, request.query)

    def _count_invalid(self, response: Response) -> None:
        """Discord's IP ban: too many 401/403/429 answers within 10 minutes."""
        if response.status not in (401, 403, 429) or response.headers.get("X-RateLimit-Scope") == "shared":
            return
        now = time.time()
        self._invalid = [t for t in self._invalid if t > now - 600] + [now]
        if len(self._invalid) >= self.invalid_limit:
            self._banned = True

    def _answer(self, request: Request) -> Response:
        if self.latency > 0:
            time.sleep(self.latency)
        if self._banned and request.server == "api":
            banned = self.faults.ban_answer("json")
            self.log.add(request, banned.status)
            return banned
        fault = self.faults.take(request.path)
        response: Optional[Response] = None
        if fault is not None:
            response = self.faults.respond(fault, request.server, lambda: self._normal(request))
        if response is None:
            response = self._normal(request)
        if request.server == "api":
            self._count_invalid(response)
        self.log.add(request, response.status)
        return response

"""The API v10 routes the downloader uses, and the CDN.

`ApiRouter` does what every API request goes through (the /api/v10 prefix, the
token check, route matching, rate limits, GET only) and hands the request to
an `ApiRoutes` handler, which answers from the `World` under its lock.
`CdnRoutes` serves attachment bytes behind signed links and external images.
"""
from __future__ import annotations

import bisect
import hmac
import io
import json
import re
import time
from datetime import datetime
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import unquote, urlsplit

from .faults import RateLimiter
from .render import CdnLinks, render_message
from .responses import ClientError, Response, error_response, form_error, json_response, text_response
from .snowflakes import UTC
from .store import Channel, World

API_PREFIX = "/api/v10"
GONE_TEXT = b"This content is no longer available."

Query = dict[str, str]


def int_param(query: Query, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or Discord's 400 naming it."""
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise form_error(name, "NUMBER_TYPE_COERCE", f"Value \"{query[name]}\" is not int.") from None
    if value < low:
        raise form_error(name, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
    if value > high:
        raise form_error(name, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
    return value


def snowflake_param(query: Query, name: str) -> int:
    try:
        value = int(query[name])
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise form_error(name, "NUMBER_TYPE_COERCE", f"Value \"{query[name]}\" is not snowflake.") from None


def _not_found() -> Response:
    return error_response(404, "404: Not Found", 0)


def _missing_access() -> ClientError:
    return ClientError(error_response(403, "Missing Access", 50001))


def page_of_ids(ids: list[int], query: Query, limit: int) -> list[int]:
    """The IDs a messages page holds for before / after / around (at most one given), oldest first."""
    given = [k for k in ("before", "after", "around") if k in query]
    if len(given) > 1:
        raise form_error(given[1], "BASE_TYPE_BAD_COMBINATION", "before, after and around are mutually exclusive.")
    if not given:
        return ids[-limit:]
    if given[0] == "before":
        end = bisect.bisect_left(ids, snowflake_param(query, "before"))
        return ids[max(0, end - limit):end]
    if given[0] == "after":
        start = bisect.bisect_right(ids, snowflake_param(query, "after"))
        return ids[start:start + limit]
    # around: the message itself (if any) with about half the limit on each side
    pivot = snowflake_param(query, "around")
    mid = bisect.bisect_left(ids, pivot)
    hi = min(len(ids), mid + limit // 2 + (1 if mid < len(ids) and ids[mid] == pivot else 0))
    return ids[max(0, hi - limit):hi]


# Application flags: GATEWAY_MESSAGE_CONTENT_LIMITED (an unverified bot's
# Message Content intent, enabled in the Developer Portal).
MESSAGE_CONTENT_LIMITED = 1 << 19
REFRESH_MAX = 50


class ApiRoutes:
    """One method per API route; each raises ClientError for Discord's error answers."""

    def __init__(self, world: World, links: CdnLinks, me: dict, token_kind: str,
                 proxy: Optional[Callable[[str], Optional[str]]] = None):
        self.world, self.links, self.me, self.token_kind = world, links, me, token_kind
        self.proxy = proxy
        self.message_content = True     # a bot's Message Content intent
        self.manage_threads = False     # a bot's Manage Threads permission (private archived threads)
        self.body: Any = None           # the JSON body of the request being answered

    def _render(self, msg: Any, now: float) -> dict:
        visible = self.token_kind != "bot" or self.message_content
        return render_message(msg, self.links, now, self.proxy, content_visible=visible)

    # ---- shared checks -----------------------------------------------------------
    def _channel(self, channel_id: str) -> Channel:
        chan = self.world.channels.get(int(channel_id))
        if chan is None:
            raise ClientError(error_response(404, "Unknown Channel", 10003))
        if not chan.accessible:
            raise _missing_access()
        return chan

    def _member_guild(self, guild_id: str) -> int:
        gid = int(guild_id)
        if gid not in self.world.guilds:
            raise ClientError(error_response(404, "Unknown Guild", 10004))
        if not self.world.guild_member[gid]:
            raise _missing_access()
        return gid

    # ---- users and guilds -----------------------------------------------------
    def me_route(self, query: Query) -> Response:
        return json_response(200, self.me)

    def my_guilds(self, query: Query) -> Response:
        limit = int_param(query, "limit", 200, 1, 200)
        ids = sorted(gid for gid, member in self.world.guild_member.items() if member)
        if "after" in query:
            after = snowflake_param(query, "after")
            ids = [g for g in ids if g > after]
        if "before" in query:
            before = snowflake_param(query, "before")
            ids = [g for g in ids if g < before][-limit:]
        return json_response(200, [self.world.guilds[g] for g in ids[:limit]])

    def guild_channels(self, query: Query, guild_id: str) -> Response:
        self._member_guild(guild_id)
        return json_response(200, self.world.guild_channels(guild_id))

    # ---- channels and messages ----------------------------------------------------
    def channel(self, query: Query, channel_id: str) -> Response:
        return json_response(200, self._channel(channel_id).obj)

    def messages(self, query: Query, channel_id: str) -> Response:
        """A page of messages; a forum or media channel has none of its own (200 [])."""
        chan = self._channel(channel_id)
        chosen = page_of_ids(chan.ids, query, int_param(query, "limit", 50, 1, 100))
        now = time.time()
        return json_response(200, [self._render(chan.messages[m], now) for m in reversed(chosen)])

    def message(self, query: Query, channel_id: str, message_id: str) -> Response:
        """The single-message GET is bots-only: a user token gets 403, code 20002."""
        if self.token_kind != "bot":
            raise ClientError(error_response(403, "Only bots can use this endpoint", 20002))
        msg = self._channel(channel_id).messages.get(int(message_id))
        if msg is None:
            raise ClientError(error_response(404, "Unknown Message", 10008))
        return json_response(200, self._render(msg, time.time()))

    def refresh_urls(self, query: Query) -> Response:
        """POST /attachments/refresh-urls {"attachment_urls": [...]} (at most 50):
        fresh signed links for the attachment links it recognises; others are left out."""
        urls = (self.body or {}).get("attachment_urls") if isinstance(self.body, dict) else None
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise form_error("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
        if len(urls) > REFRESH_MAX:
            raise form_error("attachment_urls", "BASE_TYPE_MAX_LENGTH",
                             f"Must be {REFRESH_MAX} or fewer in length.")
        now = time.time()
        refreshed = []
        for url in urls:
            blob = self.world.blobs.get(_attachment_id(url))
            if blob is not None and urlsplit(url).path == _attachment_path_of(blob):
                refreshed.append({"original": url, "refreshed": self.links.signed_url(blob, now)})
        return json_response(200, {"refreshed_urls": refreshed})

    def application(self, query: Query) -> Response:
        """GET /applications/@me: the bot's application; `flags` carries the
        Message Content intent when it is enabled."""
        if self.token_kind != "bot":
            raise ClientError(error_response(401, "401: Unauthorized", 0))
        flags = MESSAGE_CONTENT_LIMITED if self.message_content else 0
        owner = {k: v for k, v in self.me.items() if k != "bot"}
        owner.update(id=str(int(self.me["id"]) + 1), username="bot_owner", global_name="Bot Owner")
        return json_response(200, {
            "id": self.me["id"], "name": self.me["username"], "icon": None, "description": "",
            "type": None, "bot": self.me, "bot_public": False, "bot_require_code_grant": False,
            "verify_key": "0" * 64, "flags": flags, "flags_new": str(flags), "redirect_uris": [],
            "rpc_origins": [], "tags": [], "integration_types_config": {},
            "interactions_endpoint_url": None, "role_connections_verification_url": None, "owner": owner,
            "approximate_guild_count": len([m for m in self.world.guild_member.values() if m]),
            "approximate_user_install_count": 0, "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0, "team": None, "eligible_oauth2_scopes": []})

    # ---- threads -------------------------------------------------------------------
    def active_threads(self, query: Query, guild_id: str) -> Response:
        if self.token_kind != "bot":
            raise ClientError(error_response(403, "Only bots can use this endpoint", 20002))
        self._member_guild(guild_id)
        threads = self.world.threads_of(guild_id=guild_id, archived=False)
        return json_response(200, {"threads": threads, "members": [], "has_more": False})

    def archived_threads(self, query: Query, channel_id: str, which: str = "public") -> Response:
        self._channel(channel_id)
        if which == "private" and not (self.token_kind == "bot" and self.manage_threads):
            raise ClientError(error_response(403, "Missing Permissions", 50013))
        limit = int_param(query, "limit", 50, 2, 100)
        kind = 12 if which == "private" else 11
        threads = [t for t in self.world.threads_of(parent_id=channel_id, archived=True) if t["type"] == kind]
        threads.sort(key=lambda t: t["thread_metadata"]["archive_timestamp"], reverse=True)
        if "before" in query:
            before = _timestamp_param(query, "before")
            threads = [t for t in threads
                       if datetime.fromisoformat(t["thread_metadata"]["archive_timestamp"]) < before]
        return json_response(200, {"threads": threads[:limit], "members": [], "has_more": len(threads) > limit})

    def thread_search(self, query: Query, channel_id: str) -> Response:
        if self.token_kind == "bot":
            # The contract fixes code 20002 here (Discord itself uses 20001,
            # "Bots cannot use this endpoint"); callers should key on the 403.
            raise ClientError(error_response(403, "Bots cannot use this endpoint", 20002))
        self._channel(channel_id)
        archived = None
        if "archived" in query:
            archived = query["archived"].lower() in ("true", "1")
        limit = int_param(query, "limit", 25, 1, 25)
        offset = int_param(query, "offset", 0, 0, 9975)
        # sort_by=last_message_time (what clients ask for): newest last message first
        by_last = query.get("sort_by", "last_message_time") == "last_message_time"
        threads = sorted(self.world.threads_of(parent_id=channel_id, archived=archived),
                         key=lambda t: int((t["last_message_id"] if by_last else None) or t["id"]), reverse=True)
        page = threads[offset:offset + limit]
        return json_response(200, {"threads": page, "members": [], "has_more": offset + limit < len(threads),
                                   "total_results": len(threads)})


_ATTACHMENT_LINK = re.compile(r"/attachments/\d+/(\d+)/")


def _attachment_id(url: str) -> int:
    match = _ATTACHMENT_LINK.search(urlsplit(url).path)
    return int(match.group(1)) if match else -1


def _attachment_path_of(blob: Any) -> str:
    from .render import attachment_path

    return attachment_path(blob)


def _timestamp_param(query: Query, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(query[name].replace("Z", "+00:00"))
    except ValueError:
        raise form_error(name, "DATE_TIME_TYPE_CONVERT", "Could not interpret the value as a date.") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Route(NamedTuple):
    template: str                       # Discord's route, the rate-limit bucket's key
    regex: re.Pattern
    handler: Callable[..., Response]    # an ApiRoutes method, called with (routes, query, *groups)
    major: Optional[int]                # the regex group of the major parameter
    method: str = "GET"


ROUTES = [
    Route("/users/@me", re.compile(r"^/users/@me$"), ApiRoutes.me_route, None),
    Route("/users/@me/guilds", re.compile(r"^/users/@me/guilds$"), ApiRoutes.my_guilds, None),
    Route("/guilds/{guild_id}/channels", re.compile(r"^/guilds/(\d+)/channels$"), ApiRoutes.guild_channels, 1),
    Route("/guilds/{guild_id}/threads/active", re.compile(r"^/guilds/(\d+)/threads/active$"),
          ApiRoutes.active_threads, 1),
    Route("/channels/{channel_id}", re.compile(r"^/channels/(\d+)$"), ApiRoutes.channel, 1),
    Route("/channels/{channel_id}/messages", re.compile(r"^/channels/(\d+)/messages$"), ApiRoutes.messages, 1),
    Route("/channels/{channel_id}/messages/{message_id}", re.compile(r"^/channels/(\d+)/messages/(\d+)$"),
          ApiRoutes.message, 1),
    Route("/channels/{channel_id}/threads/archived/public",
          re.compile(r"^/channels/(\d+)/threads/archived/(public)$"), ApiRoutes.archived_threads, 1),
    Route("/channels/{channel_id}/threads/archived/private",
          re.compile(r"^/channels/(\d+)/threads/archived/(private)$"), ApiRoutes.archived_threads, 1),
    Route("/attachments/refresh-urls", re.compile(r"^/attachments/refresh-urls$"), ApiRoutes.refresh_urls,
          None, "POST"),
    Route("/applications/@me", re.compile(r"^/applications/@me$"), ApiRoutes.application, None),
    Route("/channels/{channel_id}/threads/search", re.compile(r"^/channels/(\d+)/threads/search$"),
          ApiRoutes.thread_search, 1),
]


class ApiRouter:
    """Prefix, token, route, rate limits and method, then the route's handler."""

    def __init__(self, routes: ApiRoutes, limiter: RateLimiter, expected_auth: str):
        self.routes, self.limiter = routes, limiter
        self._expected_auth = expected_auth.encode("utf-8")

    def _authorized(self, auth: Optional[str]) -> bool:
        return auth is not None and hmac.compare_digest(auth.encode("utf-8", "replace"), self._expected_auth)

    def handle(self, method: str, path: str, query: Query, auth: Optional[str], body: bytes = b"",
               user_agent: Optional[str] = None) -> Response:
        if not path.startswith(API_PREFIX + "/"):
            return _not_found()
        if not self._authorized(auth):
            return error_response(401, "401: Unauthorized", 0)
        if self.routes.token_kind == "bot" and "mozilla" in (user_agent or "").lower():
            # Discord checks the User-Agent against the token kind: a bot
            # token posing as a browser is blocked by Cloudflare (api-docs #6473)
            return error_response(403, "internal network error", 40333)
        found = _match(path[len(API_PREFIX):])
        if found is None:
            return _not_found()
        route, match = found
        headers: dict[str, str] = {}
        if self.limiter.enabled:
            limited = self.limiter.check_global()
            if limited is not None:
                return limited
            limited, headers = self.limiter.check_route(route.template, match.group(route.major) if route.major else "")
            if limited is not None:
                return limited
        response = self._call(route, method, query, match.groups(), body)
        response.headers.update(headers)
        return response

    def _call(self, route: Route, method: str, query: Query, groups: tuple, body: bytes) -> Response:
        if method not in ((route.method, "HEAD") if route.method == "GET" else (route.method,)):
            return error_response(405, "405: Method Not Allowed", 0)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            return error_response(400, "400: Bad Request", 50109)
        try:
            with self.routes.world.lock:
                self.routes.body = parsed
                return route.handler(self.routes, query, *groups)
        except ClientError as exc:
            return exc.response


def _match(route_path: str) -> Optional[tuple[Route, re.Match]]:
    for route in ROUTES:
        match = route.regex.match(route_path)
        if match:
            return route, match
    return None


class CdnRoutes:
    """Attachments (`/attachments/{channel}/{id}/{name}`, signed) and external images (unsigned)."""

    ATTACHMENT = re.compile(r"^/attachments/(\d+)/(\d+)/([^/]+)$")
    EXTERNAL = re.compile(r"^/(external|images-ext)/(\d+)/([^/]+)$")

    def __init__(self, world: World, links: CdnLinks):
        self.world, self.links = world, links

    def handle(self, method: str, path: str, query: Query) -> Response:
        match = self.ATTACHMENT.match(path)
        if match:
            return self._attachment(match, query)
        match = self.EXTERNAL.match(path)
        if match:   # an origin (external/) or Discord's proxy copy of it (images-ext/)
            blob = self.world.external.get(int(match.group(2)))
            if blob is None or unquote(match.group(3)) != blob.filename:
                return text_response(404, b"Not Found")
            return Response(200, blob.data, blob.content_type or "application/octet-stream")
        return text_response(404, b"Not Found")

    def _attachment(self, match: re.Match, query: Query) -> Response:
        blob = self.world.blobs.get(int(match.group(2)))
        if blob is None or str(blob.channel_id) != match.group(1) or unquote(match.group(3)) != blob.filename \
                or not self.links.is_valid(blob, query, time.time()):
            return text_response(404, GONE_TEXT)
        if any(k in query for k in ("width", "height", "format", "quality")):
            return _media_proxy_copy(blob.data, query)
        return Response(200, blob.data, blob.content_type or "application/octet-stream",
                        {"Cache-Control": "public, max-age=31536000"})


def _media_proxy_copy(data: bytes, query: Query) -> Response:
    """What Discord's media proxy answers to width/height/format: a resized,
    re-encoded copy (WebP by default), not the file."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as original:
        width = int(query.get("width") or original.width)
        height = int(query.get("height") or original.height)
        copy = original.convert("RGB").resize((max(1, width), max(1, height)))
    fmt = (query.get("format") or "webp").lower()
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    out = io.BytesIO()
    copy.save(out, fmt.upper(), quality=int(query.get("quality") or 80))
    return Response(200, out.getvalue(), f"image/{fmt}")

"""The API v10 routes the downloader uses, and the CDN.

`ApiRouter` does what every API request goes through (the /api/v10 prefix, the
token check, route matching, rate limits, GET only) and hands the request to
an `ApiRoutes` handler, which answers from the `World` under its lock.
`CdnRoutes` serves attachment bytes behind signed links and external images.
"""
from __future__ import annotations

import bisect
import hmac
import re
import time
from datetime import datetime
from typing import Callable, NamedTuple, Optional
from urllib.parse import unquote

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


class ApiRoutes:
    """One method per API route; each raises ClientError for Discord's error answers."""

    def __init__(self, world: World, links: CdnLinks, me: dict, token_kind: str):
        self.world, self.links, self.me, self.token_kind = world, links, me, token_kind

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
        chan = self._channel(channel_id)
        chosen = page_of_ids(chan.ids, query, int_param(query, "limit", 50, 1, 100))
        now = time.time()
        return json_response(200, [render_message(chan.messages[m], self.links, now) for m in reversed(chosen)])

    def message(self, query: Query, channel_id: str, message_id: str) -> Response:
        msg = self._channel(channel_id).messages.get(int(message_id))
        if msg is None:
            raise ClientError(error_response(404, "Unknown Message", 10008))
        return json_response(200, render_message(msg, self.links, time.time()))

    # ---- threads -------------------------------------------------------------------
    def active_threads(self, query: Query, guild_id: str) -> Response:
        if self.token_kind != "bot":
            raise ClientError(error_response(403, "Only bots can use this endpoint", 20002))
        self._member_guild(guild_id)
        threads = self.world.threads_of(guild_id=guild_id, archived=False)
        return json_response(200, {"threads": threads, "members": [], "has_more": False})

    def archived_threads(self, query: Query, channel_id: str) -> Response:
        self._channel(channel_id)
        limit = int_param(query, "limit", 50, 2, 100)
        threads = self.world.threads_of(parent_id=channel_id, archived=True)
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
        threads = sorted(self.world.threads_of(parent_id=channel_id, archived=archived),
                         key=lambda t: int(t["id"]), reverse=True)
        page = threads[offset:offset + limit]
        return json_response(200, {"threads": page, "members": [], "has_more": offset + limit < len(threads),
                                   "total_results": len(threads)})


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
          re.compile(r"^/channels/(\d+)/threads/archived/public$"), ApiRoutes.archived_threads, 1),
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

    def handle(self, method: str, path: str, query: Query, auth: Optional[str]) -> Response:
        if not path.startswith(API_PREFIX + "/"):
            return _not_found()
        if not self._authorized(auth):
            return error_response(401, "401: Unauthorized", 0)
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
        response = self._call(route, method, query, match.groups())
        response.headers.update(headers)
        return response

    def _call(self, route: Route, method: str, query: Query, groups: tuple) -> Response:
        if method not in ("GET", "HEAD"):
            return error_response(405, "405: Method Not Allowed", 0)
        try:
            with self.routes.world.lock:
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
    EXTERNAL = re.compile(r"^/external/(\d+)/([^/]+)$")

    def __init__(self, world: World, links: CdnLinks):
        self.world, self.links = world, links

    def handle(self, method: str, path: str, query: Query) -> Response:
        match = self.ATTACHMENT.match(path)
        if match:
            return self._attachment(match, query)
        match = self.EXTERNAL.match(path)
        if match:
            blob = self.world.external.get(int(match.group(1)))
            if blob is None or unquote(match.group(2)) != blob.filename:
                return text_response(404, b"Not Found")
            return Response(200, blob.data, blob.content_type or "application/octet-stream")
        return text_response(404, b"Not Found")

    def _attachment(self, match: re.Match, query: Query) -> Response:
        blob = self.world.blobs.get(int(match.group(2)))
        if blob is None or str(blob.channel_id) != match.group(1) or unquote(match.group(3)) != blob.filename \
                or not self.links.is_valid(blob, query, time.time()):
            return text_response(404, GONE_TEXT)
        return Response(200, blob.data, blob.content_type or "application/octet-stream",
                        {"Cache-Control": "public, max-age=31536000"})

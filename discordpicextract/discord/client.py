"""The Discord API client: the only code that sends the token.

The token is sent only to URLs under the API base (never to the CDN or to a
URL found in a message) and is scrubbed from every error text we produce.
"""
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional

import requests

import config
from discordpicextract.discord.errors import AccessError, AuthError, DiscordError, NotFoundError
from discordpicextract.discord.extract import message_time, parse_time
from discordpicextract.discord.ratelimit import RateLimiter, retry_after, route_key

# Seconds before retry n (x 2**n) after a connection error, 5xx or bad body.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
# 429s tolerated for one request before giving up (each one is waited out).
MAX_RATE_LIMITED = 10


def scrub(text, token) -> str:
    """`text` with every occurrence of the token masked, also as a repr
    shows it (requests quotes a bad header value that way)."""
    text = str(text)
    if token:
        for form in (token, repr(token)[1:-1]):
            text = text.replace(form, "[token]")
    return text


def backoff(attempt) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))


def thread_session(local) -> requests.Session:
    """One requests.Session per thread (sessions are not thread-safe), with
    our User-Agent and no Authorization header."""
    session = getattr(local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = config.USER_AGENT
        local.session = session
    return session


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
        return thread_session(self._local)

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
                self.limiter.limited(route, *retry_after(response))
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
    def paginate(self, path, params, next_params: Callable[[Any, dict], Optional[dict]],
                 expect=dict) -> Iterator[Any]:
        """GET `path` page after page. `next_params(page, params)` gives the
        parameters of the next page, or None after the last one; it runs only
        when the caller asks for another page, so a caller that stops early
        sends no request too many."""
        query: Optional[dict] = params
        while query is not None:
            page = self.request(path, query, expect=expect)
            yield page
            query = next_params(page, query)

    def fetch_guilds(self):
        """Pages of the token's guilds (partial guild objects), by ID."""
        def after(page, params):
            return None if len(page) < 200 else {**params, "after": page[-1]["id"]}

        for page in self.paginate("/users/@me/guilds", {"limit": 200}, after, expect=list):
            if page:
                yield page

    def fetch_channels(self, guild_id):
        return self.request(f"/guilds/{guild_id}/channels", expect=list)

    def fetch_channel(self, channel_id):
        return self.request(f"/channels/{channel_id}")

    def fetch_message(self, channel_id, message_id):
        return self.request(f"/channels/{channel_id}/messages/{message_id}")

    def fetch_messages(self, channel_id, cutoff):
        """Pages of messages, newest first, down to `cutoff` (aware datetime):
        stops at the first message posted before it."""
        def before(page, params):
            return None if len(page) < 100 else {**params, "before": page[-1]["id"]}

        for page in self.paginate(f"/channels/{channel_id}/messages", {"limit": 100}, before, expect=list):
            kept = list(_take_while_newer(page, cutoff))
            if kept:
                yield kept
            if len(kept) < len(page):
                return

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
        def before(page, params):
            threads = page.get("threads", [])
            if not page.get("has_more") or not threads:
                return None
            return {**params, "before": threads[-1]["thread_metadata"]["archive_timestamp"]}

        path = f"/channels/{channel_id}/threads/archived/public"
        for page in self.paginate(path, {"limit": 100}, before):
            threads = page.get("threads", [])
            recent = [t for t in threads if _active_since(t, cutoff)]
            yield recent
            if len(recent) < len(threads):
                return

    def _searched_threads(self, channel_id, archived, cutoff):
        def further(page, params):
            threads = page.get("threads", [])
            if not page.get("has_more") or not threads:
                return None
            return {**params, "offset": params["offset"] + len(threads)}

        params = {"archived": archived, "limit": 25, "offset": 0,
                  "sort_by": "last_message_time", "sort_order": "desc"}
        for page in self.paginate(f"/channels/{channel_id}/threads/search", params, further):
            yield [t for t in page.get("threads", []) if _active_since(t, cutoff)]


def _active_since(thread, cutoff) -> bool:
    archived_at = _archived_at(thread)
    return archived_at is None or archived_at >= cutoff


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

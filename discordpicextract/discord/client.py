"""The Discord API client: the only code that sends the token.

The token is sent only to URLs under the API base (never to the CDN or to a
URL found in a message) and is scrubbed from every error text we produce.
"""
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional

import requests
from urllib3.util import SKIP_HEADER

import config
from discordpicextract.discord import bans, deadline
from discordpicextract.discord.errors import (
    AccessError,
    AuthError,
    BanError,
    DiscordError,
    InvalidLimitError,
    NotFoundError,
    SharedLimitError,
    StopError,
    TokenRevokedError,
    VerifyError,
)
from discordpicextract.discord.extract import parse_time
from discordpicextract.discord.ratelimit import RateLimiter, retry_after, route_key
from discordpicextract.discord.window import as_window, snowflake_time

# Seconds before retry n (x 2**n) after a connection error, 5xx or bad body.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
log = logging.getLogger(__name__)  # -v: each API answer, wait and retry (never the token: it is only in a header)

# 429s tolerated for one request before giving up (each one is waited out).
MAX_RATE_LIMITED = 10
CHUNK = 64 * 1024


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


def user_agent_for(kind) -> str:
    """The User-Agent of a run with this token kind.

    `DiscordBot (url, version)` is the bot-library convention Discord asks
    bots for, and Discord checks the User-Agent against the token kind (a bot
    token with a browser User-Agent gets 403, code 40333). A user token must
    not announce a bot library, and posing as the official client (browser
    User-Agent, client headers) did not keep accounts from being disabled
    (DCE #1582) and is impersonation. So a user token sends no User-Agent at
    all, as DiscordChatExporter's bare HttpClient does (urllib3's default
    `python-urllib3/x` is skipped too).
    """
    return config.USER_AGENT if kind == "bot" else SKIP_HEADER


def thread_session(local, user_agent=SKIP_HEADER) -> requests.Session:
    """One requests.Session per thread (sessions are not thread-safe), with
    the run's User-Agent and no Authorization header; `deadline.watch`
    bounds its requests."""
    session = getattr(local, "session", None)
    if session is None:
        session = deadline.watched_session()
        session.headers["User-Agent"] = user_agent
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
                 timeout=config.REQUEST_TIMEOUT, total_seconds=None, max_answer_mb=None):
        self.token = token
        self.kind = kind
        self.api_base = (api_base or config.api_base()).rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
        # connect + headers + body of one request, in all (a trickling answer)
        self.total_seconds = config.API_REQUEST_SECONDS if total_seconds is None else total_seconds
        # and its body at most this big (a proxy answering without end would fill the memory)
        self.max_answer_mb = config.MAX_API_ANSWER_MB if max_answer_mb is None else max_answer_mb
        self.warnings = []
        self.limiter = RateLimiter(min_delay, max_wait, on_cap=self._report_cap)
        self._local = threading.local()
        self.signed_in = False          # identify succeeded: a 401 now means revoked
        self.stopped: Optional[StopError] = None   # after this, no request is sent
        self.invalid = bans.InvalidCounter(config.MAX_INVALID_REQUESTS, config.INVALID_REQUEST_WINDOW)
        self.calls = 0                  # API requests sent

    def _report_cap(self, wait, capped, route):
        warning = (f"rate limit on {route} asked to wait {wait:.0f} s; "
                   f"capped at {capped:g} s (--max-wait)")
        if warning not in self.warnings:
            self.warnings.append(warning)

    def session(self):
        """This thread's HTTP session. It carries no Authorization header:
        the token is added per request, to API URLs only."""
        return thread_session(self._local)

    @property
    def user_agent(self):
        return user_agent_for(self.kind)

    def _headers(self, url):
        headers = {"User-Agent": self.user_agent}
        if url.startswith(self.api_base + "/") and self.token:
            headers["Authorization"] = f"Bot {self.token}" if self.kind == "bot" else self.token
        return headers

    def scrub(self, text):
        return scrub(text, self.token)

    def request(self, path, params=None, method="GET", expect=dict, json_body=None):
        """One API call with rate limits and retries; returns the JSON body,
        which must be an `expect` (dict, or list of dicts). After a stop
        answer (a ban, a block, a revoked token...) nothing more is sent."""
        url = self.api_base + path
        route = route_key(method, path)
        failures = limited = 0
        while True:
            if self.stopped is not None:
                raise self.stopped
            self.limiter.acquire(route)
            try:
                self.calls += 1
                with deadline.watch(self.total_seconds) as watch:
                    response = self.session().request(
                        method, url, params=params, json=json_body, headers=self._headers(url),
                        timeout=self.timeout, allow_redirects=False, stream=True)
                    self._read_body(method, path, response, watch)
                if deadline.cut(watch):   # headers cut short can still parse as an answer
                    raise requests.ConnectionError("cut at the time limit")
            except requests.RequestException as exc:
                failures += 1
                if failures > self.max_retries:
                    raise DiscordError(f"{method} {path}: {self._failure(exc, watch, failures)}") from None
                log.debug("%s %s: no answer (attempt %d), retrying", method, path, failures)
                time.sleep(backoff(failures - 1))
                continue
            answer = bans.classify(response.status_code, response.headers, response.text
                                   if response.status_code >= 400 else "", response.headers.get("Content-Type", ""))
            self._check_stop(method, path, answer)
            self.limiter.update(route, response.headers, ok=response.status_code < 400)
            log.debug("%s %s%s: HTTP %d", method, path, _shown_params(params), response.status_code)
            if response.status_code == 429:
                limited += 1
                seconds, is_global = retry_after(response)
                if answer.kind == "shared_limited" and seconds > config.MAX_SHARED_LIMIT_WAIT:
                    raise SharedLimitError(f"{method} {path}: a shared rate limit (other clients' load on "
                                           f"this resource) asks to wait {seconds:.0f} s", status=429)
                if limited > MAX_RATE_LIMITED:
                    raise DiscordError(f"{method} {path}: still rate limited after "
                                       f"{limited} tries", status=429)
                log.debug("%s %s: rate limited, waiting %.2f s%s", method, path, seconds,
                          " (global)" if is_global else "")
                self.limiter.limited(route, seconds, is_global)
                continue
            if response.status_code >= 500:
                failures += 1
                if failures > self.max_retries:
                    raise self._error(method, path, response, answer)
                time.sleep(backoff(failures - 1))
                continue
            if response.status_code >= 300:
                raise self._error(method, path, response, answer)
            return self._body(method, path, response, expect)

    def _read_body(self, method, path, response, watch) -> None:
        """Read the answer's body into `response` (so .text and .json()
        work as usual), refusing one over the size cap: DiscordError, not
        retried (the same proxy would send the same again). Reading stops
        when the watch expires: its shutdown wakes a stalled read, but a
        body still pouring in would keep arriving after it."""
        limit = int(self.max_answer_mb * 1024 * 1024)
        with response:   # closed on any error: the connection is not reused
            declared = response.headers.get("Content-Length", "")
            body = bytearray()
            too_big = declared.isdigit() and int(declared) > limit
            if not too_big:
                for chunk in response.iter_content(CHUNK):
                    body += chunk
                    if len(body) > limit:
                        too_big = True
                        break
                    if deadline.cut(watch):
                        break   # the caller sees the cut and retries
            if too_big:
                raise DiscordError(f"{method} {path}: the answer is larger than {self.max_answer_mb:g} MiB "
                                   f"(config.MAX_API_ANSWER_MB); not Discord's, the transfer was stopped")
        response._content = bytes(body)

    def _failure(self, exc, watch, attempts) -> str:
        """Why the last attempt failed: the time limit, or the connection."""
        if deadline.cut(watch):
            return (f"no complete answer within {self.total_seconds:g} s, {attempts} attempts (the answer "
                    f"trickled or stalled; config.API_REQUEST_SECONDS)")
        return f"connection failed after {attempts} attempts: {self.scrub(exc)}"

    def _check_stop(self, method, path, answer):
        """Raise (and remember) a stop for an answer after which the run
        must send nothing more."""
        error: Optional[StopError] = None
        where = f"{method} {path}: HTTP {answer.status}"
        if answer.kind == "ban":
            error = BanError(f"Discord refuses this IP for now ({where} without rate-limit headers: a "
                             f"temporary ban); the run stopped; wait an hour before the next run",
                             status=answer.status, code=answer.code)
        elif answer.kind == "blocked":
            error = BanError(f"Cloudflare blocks the requests ({where}, code 40333); the run stopped; "
                             f"wait before the next run", status=answer.status, code=answer.code)
        elif answer.kind == "verify":
            error = VerifyError("the Discord account must be verified in the Discord app (code 40002) "
                                "before it can read; the run stopped", status=answer.status, code=answer.code)
        elif answer.kind == "unauthorized" and self.signed_in:
            error = TokenRevokedError(f"the token is no longer valid ({where} during the run); the run "
                                      f"stopped", status=answer.status, code=answer.code)
        elif bans.counts_as_invalid(answer) and self.invalid.add():
            error = InvalidLimitError(f"{len(self.invalid)} invalid answers (401/403/429) within "
                                      f"{config.INVALID_REQUEST_WINDOW // 60} minutes: the run stopped well "
                                      f"before Discord's IP ban at 10,000", status=answer.status)
        if error is not None:
            self.stopped = error
            raise error

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

    def _error(self, method, path, response, answer):
        body = answer.body
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
            return self._signed_in(self.request("/users/@me"))
        self.kind = "user"
        try:
            return self._signed_in(self.request("/users/@me"))
        except AuthError:
            self.kind = "bot"
        try:
            return self._signed_in(self.request("/users/@me"))
        except AuthError:
            self.kind = None
            raise

    def _signed_in(self, user):
        self.signed_in = True
        return user

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

    def fetch_message_around(self, channel_id, message_id):
        """One message by ID, or None when it is gone. Read as a page of one
        `around` it: the single-message GET is bots-only (a user token gets
        403, code 20002); the answer is checked to be that message."""
        page = self.request(f"/channels/{channel_id}/messages", {"around": message_id, "limit": 1}, expect=list)
        return next((m for m in page if str(m.get("id")) == str(message_id)), None)

    def refresh_urls(self, urls) -> dict:
        """{expired CDN link: fresh link} through POST /attachments/refresh-urls
        (either token kind, 50 links a call). A link Discord did not re-sign
        is left out."""
        fresh = {}
        urls = list(dict.fromkeys(urls))
        for start in range(0, len(urls), REFRESH_BATCH):
            body = self.request("/attachments/refresh-urls", method="POST",
                                json_body={"attachment_urls": urls[start:start + REFRESH_BATCH]})
            for entry in body.get("refreshed_urls") or []:
                if not isinstance(entry, dict) or not entry.get("refreshed"):
                    continue
                if entry["refreshed"] != entry.get("original"):
                    fresh[str(entry.get("original"))] = str(entry["refreshed"])
        return fresh

    def fetch_application(self):
        """The bot's application (GET /applications/@me): its `flags` say
        which privileged intents are enabled."""
        return self.request("/applications/@me")

    def fetch_messages(self, channel_id, cutoff):
        """Pages of messages, newest first, inside `cutoff` (an aware datetime
        or a Window): stops at the first message older than the window."""
        window = as_window(cutoff)

        def before(page, params):
            return None if len(page) < 100 else {**params, "before": page[-1]["id"]}

        params = {"limit": 100}
        if window.before_id is not None:
            params["before"] = window.before_id
        for page in self.paginate(f"/channels/{channel_id}/messages", params, before, expect=list):
            kept = list(_take_while_newer(page, window))
            if kept:
                yield kept
            if len(kept) < len(page):
                return

    def fetch_threads(self, channel, cutoff):
        """Pages of the threads of `channel` that may hold messages after
        `cutoff`, through the endpoints the token's kind may use: a thread
        whose last message is older than the window is not listed."""
        if self.kind == "bot":
            active = self.request(f"/guilds/{channel['guild_id']}/threads/active")
            yield [t for t in active.get("threads", [])
                   if t.get("parent_id") == channel["id"] and _active_since(t, cutoff)]
            yield from self._archived_threads(channel["id"], cutoff, "public")
            try:
                yield from self._archived_threads(channel["id"], cutoff, "private")
            except AccessError:  # needs MANAGE_THREADS: the public ones are all we may see
                self.warnings.append(f"private archived threads of channel {channel['id']} not listed "
                                     "(the bot lacks Manage Threads)")
        else:
            for archived in ("false", "true"):
                yield from self._searched_threads(channel["id"], archived, cutoff)

    def _archived_threads(self, channel_id, cutoff, which):
        def before(page, params):
            threads = page.get("threads", [])
            if not page.get("has_more") or not threads:
                return None
            return {**params, "before": threads[-1]["thread_metadata"]["archive_timestamp"]}

        path = f"/channels/{channel_id}/threads/archived/{which}"
        for page in self.paginate(path, {"limit": 100}, before):
            threads = page.get("threads") or []
            # archived before the window: nothing of it can be inside
            recent = [t for t in threads if _archived_since(t, cutoff)]
            yield [t for t in recent if _active_since(t, cutoff)]
            if len(recent) < len(threads):
                return

    def _searched_threads(self, channel_id, archived, cutoff):
        """threads/search sorted by last message time, newest first: paging
        stops at the first thread whose last message is older than the window."""
        done: list[bool] = []

        def further(page, params):
            threads = page.get("threads") or []
            if done or not page.get("has_more") or not threads:
                return None
            return {**params, "offset": params["offset"] + len(threads)}

        params = {"archived": archived, "limit": 25, "offset": 0,
                  "sort_by": "last_message_time", "sort_order": "desc"}
        for page in self.paginate(f"/channels/{channel_id}/threads/search", params, further):
            threads = page.get("threads") or []   # the key may be missing (gallery-dl #7706)
            recent = list(itertools.takewhile(lambda t: _active_since(t, cutoff), threads))
            if len(recent) < len(threads):
                done.append(True)
            yield recent


REFRESH_BATCH = 50


def last_activity(thread):
    """When a thread last had a message: its last message ID's time (the
    thread's own ID, its creation, when it has none)."""
    return snowflake_time(thread.get("last_message_id") or thread["id"])


def _active_since(thread, cutoff) -> bool:
    return last_activity(thread) >= as_window(cutoff).start


def _archived_since(thread, cutoff) -> bool:
    archived_at = _archived_at(thread)
    return archived_at is None or archived_at >= as_window(cutoff).start


def _archived_at(thread):
    stamp = (thread.get("thread_metadata") or {}).get("archive_timestamp")
    if not stamp or not (thread.get("thread_metadata") or {}).get("archived"):
        return None
    return parse_time(stamp)


def _take_while_newer(messages, window):
    for message in messages:
        if not window.keeps(message):
            return
        yield message


def _shown_params(params) -> str:
    """A request's query for the -v log (IDs and limits: nothing secret)."""
    if not params:
        return ""
    return "?" + "&".join(f"{key}={value}" for key, value in dict(params).items())

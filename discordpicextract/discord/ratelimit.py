"""Discord's rate limits: which bucket a request falls in, and a limiter
that learns the buckets from response headers and waits before a request
rather than after a 429."""
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import config

_MAJOR_ROUTE = re.compile(r"^/(channels|guilds|webhooks)/(\d+)")
_ID_IN_PATH = re.compile(r"/\d{5,}")


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


def retry_after(response):
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

"""What makes the emulator hard to talk to: rate limits, and injected faults.

`RateLimiter` keeps Discord's per-route buckets (fixed windows per route and
major parameter) and an optional global limit, and writes the 429 answers and
X-RateLimit-* headers. `FaultInjector` holds the faults a test asked for
(5xx, 429 storms, absurd waits, truncated bodies, HTML pages, slow answers,
bodies that trickle or never end)
and turns the next matching request into one.
"""
from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .responses import Response, error_response, json_response

FAULT_KINDS = ("status", "rate_limit", "rate_limit_absurd", "truncate", "html", "slow", "trickle", "endless",
               "ban", "block")
# the ban answers (facts sheet, "Blocks and limits"): JSON code 0 without any
# rate-limit header (api-docs #5810), Cloudflare's plain-text 1015 (#1771,
# #5385), and its HTML block page
BAN_JSON = {"code": 0, "message": "You are being blocked from accessing our API temporarily due to "
                                  "exceeding our rate limits frequently. Please read our docs at "
                                  "https://discord.com/developers/docs/topics/rate-limits to prevent this "
                                  "moving forward."}
CLOUDFLARE_1015 = b"error code: 1015"
CLOUDFLARE_PAGE = (b"<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to "
                   b"restrict access</title></head><body><h1>You are being rate limited</h1><p>The owner "
                   b"of this website (discord.com) has banned you temporarily from accessing this "
                   b"website.</p><p>Error 1015</p></body></html>")
# what a misbehaving proxy or captive portal sends with a 200
HTML_ERROR_PAGE = (b"<!DOCTYPE html><html><head><title>Error</title></head><body>"
                   b"<h1>Something went wrong</h1><p>Please try again later.</p></body></html>")


def bucket_hash(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:32]


class RateLimiter:
    """Per-route fixed-window buckets plus an optional global window, as Discord answers them."""

    def __init__(self, enabled: bool, route_limit: tuple[int, float],
                 global_limit: Optional[tuple[int, float]]):
        self.enabled = bool(enabled)
        self.route_limit = (int(route_limit[0]), float(route_limit[1]))
        self.global_limit = None if global_limit is None else (int(global_limit[0]), float(global_limit[1]))
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], list[float]] = {}
        self._global_window = [0.0, 0]

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def too_many(self, retry_after: float, is_global: bool, bucket: Optional[str] = None,
                 scope: Optional[str] = None) -> Response:
        """Discord's 429: Retry-After in whole seconds, the body's retry_after in seconds with ms."""
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))),
                   "X-RateLimit-Scope": scope or ("global" if is_global else "user")}
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
        return json_response(429, body, headers)

    def check_global(self) -> Optional[Response]:
        """A global 429 once more than global_limit requests fall in one window, else None."""
        if self.global_limit is None:
            return None
        limit, per = self.global_limit
        now = time.time()
        with self._lock:
            window = self._global_window
            if now >= window[0]:
                window[0], window[1] = now + per, 0
            window[1] += 1
            if window[1] <= limit:
                return None
            wait = window[0] - now
        return self.too_many(wait, True)

    def check_route(self, template: str, major: str) -> tuple[Optional[Response], dict[str, str]]:
        """Count one request in its (route, major parameter) bucket: (429 response or None, headers)."""
        limit, per = self.route_limit
        now = time.time()
        with self._lock:
            state = self._buckets.get((template, major))
            if state is None or now >= state[0]:
                state = [now + per, 0]
                self._buckets[(template, major)] = state
            state[1] += 1
            reset_at, used = state
        bucket = bucket_hash(template)
        reset_after = max(0.0, reset_at - now)
        if used > limit:
            return self.too_many(reset_after, False, bucket=bucket), {}
        return None, {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
                      "X-RateLimit-Reset": f"{reset_at:.3f}", "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                      "X-RateLimit-Bucket": bucket}


@dataclass
class Fault:
    kind: str
    path_contains: str
    times: int
    params: dict[str, Any]


class FaultInjector:
    """Faults waiting for a request whose path contains their `path_contains`."""

    def __init__(self, limiter: RateLimiter):
        self._limiter = limiter
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, path_contains: str, times: int, params: dict[str, Any]) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, path_contains, int(times), params))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Optional[Fault]:
        """The first fault that applies to `path`, counted as used once; a
        fault with skip=n lets the first n matching requests through."""
        with self._lock:
            fault = next((f for f in self._faults if f.times > 0 and f.path_contains in path), None)
            if fault is None:
                return None
            if fault.params.get("skip", 0) > 0:
                fault.params["skip"] -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            return fault

    @staticmethod
    def ban_answer(shape: str) -> Response:
        if shape == "cloudflare":
            return Response(429, CLOUDFLARE_1015, "text/plain; charset=UTF-8")
        if shape == "html":
            return Response(429, CLOUDFLARE_PAGE, "text/html; charset=UTF-8")
        return json_response(429, BAN_JSON)

    def respond(self, fault: Fault, server: str, normal: Callable[[], Response]) -> Optional[Response]:
        """The faulty answer (`normal()` gives the real one), or None to answer normally."""
        p = fault.params
        if fault.kind == "slow":
            time.sleep(float(p.get("delay", 1.0)))
            return None
        if fault.kind == "status":
            status = int(p.get("status", 500))
            if server == "cdn":
                return Response(status, b"upstream error", "text/plain")
            return error_response(status, p.get("message", f"{status}: Internal Server Error"), int(p.get("code", 0)))
        if fault.kind == "ban":
            return self.ban_answer(str(p.get("shape", "json")))
        if fault.kind == "block":
            return error_response(403, "internal network error", 40333)
        if fault.kind == "rate_limit":
            return self._limiter.too_many(float(p.get("retry_after", 1.0)), bool(p.get("is_global", False)),
                                          scope=p.get("scope"))
        if fault.kind == "rate_limit_absurd":
            return self._absurd_wait(float(p.get("reset_after", 3600.0)), int(p.get("status", 429)), normal)
        if fault.kind == "truncate":
            response = normal()
            if response.status != 200 or len(response.body) < 2:
                response = Response(200, b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(4000), "image/png")
            response.truncate = True
            return response
        if fault.kind in ("trickle", "endless"):
            response = normal()
            response.trickle = float(p.get("interval", 0.05)) if fault.kind == "trickle" else 0.0
            response.trickle_headers = fault.kind == "trickle" and bool(p.get("headers", False))
            response.endless = fault.kind == "endless"
            response.endless_rate = float(p.get("rate", 0.0)) if response.endless else 0.0
            return response
        return Response(200, HTML_ERROR_PAGE, "text/html; charset=utf-8")

    def _absurd_wait(self, wait: float, status: int, normal: Callable[[], Response]) -> Response:
        """A 429, or with status=200 a normal answer, whose headers ask for a `wait`-second pause."""
        if status == 429:
            return self._limiter.too_many(wait, False, bucket=bucket_hash("absurd"))
        response = normal()
        response.headers.update({"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": f"{time.time() + wait:.3f}",
                                 "X-RateLimit-Reset-After": f"{wait:.3f}"})
        return response

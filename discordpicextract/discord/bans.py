"""What an API answer means beyond its status (pure): a rate limit or a ban,
a Cloudflare block, a token or account problem; and the count of invalid
answers Discord bans an IP for.

Decided by status, headers and parsed fields, never by a substring of the
body (facts sheet, "Blocks and limits"):
- a ban: a 429 without any `X-RateLimit-*` or `Retry-After` header (JSON
  `code: 0`, "You are being blocked...", api-docs #5810), or a 429 whose body is not JSON (the
  Cloudflare page `error code: 1015`, api-docs #1771, #5385);
- a block: a 403 with `code: 40333` (Cloudflare blocking the request; also
  what a bot token sent with a browser User-Agent gets, api-docs #6473);
- 401: the token is not (or no longer) valid; code 40002: the account must
  be verified in the Discord app;
- a 429 with `X-RateLimit-Scope: shared` is another client's load on the
  resource and does not count towards the invalid-request limit.
"""
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

CLOUDFLARE_BLOCK = 40333
VERIFY_ACCOUNT = 40002
INVALID_STATUSES = frozenset({401, 403, 429})


@dataclass(frozen=True)
class Answer:
    """A response, classified."""

    status: int
    kind: str            # ok | rate_limited | shared_limited | ban | blocked | unauthorized | verify | error
    code: Optional[int]  # Discord's JSON error code, when the body has one
    message: str         # Discord's message, or the first words of a non-JSON body
    body: Any            # the parsed JSON body, or None


def parse_body(text, content_type=""):
    """The JSON body, or None when there is none (an HTML or text page)."""
    import json

    if "json" not in (content_type or "").lower() and not (text or "").lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def classify(status, headers, text, content_type="") -> Answer:
    """What an answer with this status, headers and body text means (a
    success is not parsed here: its body is read once, by its caller)."""
    if status < 400:
        return Answer(status, "ok", None, "", None)
    body = parse_body(text, content_type)
    code = body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), int) else None
    message = str(body.get("message", "")) if isinstance(body, dict) else " ".join((text or "").split())[:80]
    limit_headers = [h for h in headers if h.lower().startswith("x-ratelimit-")]
    scope = (headers.get("X-RateLimit-Scope") or "").lower()
    if status == 429:
        if not isinstance(body, dict) or not (limit_headers or headers.get("Retry-After")):
            kind = "ban"
        else:
            kind = "shared_limited" if scope == "shared" else "rate_limited"
    elif status == 403 and code == CLOUDFLARE_BLOCK:
        kind = "blocked"
    elif status == 403 and code == VERIFY_ACCOUNT:
        kind = "verify"
    elif status == 401:
        kind = "unauthorized"
    else:
        kind = "error"
    return Answer(status, kind, code, message, body)


def counts_as_invalid(answer: Answer) -> bool:
    """Discord counts 401, 403 and 429 answers, except shared-scope 429s."""
    return answer.status in INVALID_STATUSES and answer.kind != "shared_limited"


class InvalidCounter:
    """Invalid answers in the last `window` seconds; `add` says whether the
    run must stop (at `limit`, far below Discord's 10,000)."""

    def __init__(self, limit, window, clock=time.monotonic):
        self.limit, self.window, self._clock = limit, window, clock
        self._times: deque = deque()

    def add(self) -> bool:
        now = self._clock()
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times) >= self.limit

    def __len__(self):
        return len(self._times)

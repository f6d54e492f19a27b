"""Image transfers: fetch one planned image from the CDN (no token, ever)
into a temp file, check it is a complete image, and publish it under its
planned name without overwriting anything."""
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import requests
import urllib3

import config
from discordpicextract import fileops
from discordpicextract.discord import deadline
from discordpicextract.discord.client import backoff, thread_session
from discordpicextract.discord.plan import PlannedDownload
from discordpicextract.errors import DISK_ERRNOS, RunError
from discordpicextract.images import integrity

CHUNK = 64 * 1024


@dataclass
class Outcome:
    plan: PlannedDownload
    status: str                 # saved | expired | failed | conflict | maybe_present | misnamed
    filename: str = ""
    size: int = 0
    sha256: str = ""
    reason: str = ""
    temp: Optional[Path] = None
    matches: tuple = ()         # for maybe_present: identical files on disk
    extension: str = ""         # for misnamed: the extension of the decoded format


class BadBody(Exception):
    """A response body that is not the complete image it should be."""


class Transfer:
    """Downloads image bytes (no token, ever) into `folder`, one session per thread.

    Each transfer is bounded: at most `max_bytes` (a bigger or endless body
    is refused) and `max_seconds` in all (a trickling body is cut), each a
    counted error without retries. A write that fails for lack of space or
    an I/O error raises DiskError: the run cannot go on, and retrying would
    only fill the disk again.
    """

    def __init__(self, folder, max_retries=config.MAX_RETRIES, timeout=config.REQUEST_TIMEOUT,
                 scrubber=str, max_bytes=None, max_seconds=None, same_size=None, user_agent=None):
        self.folder = Path(folder)
        self.max_retries = max_retries
        self.timeout = timeout
        self.scrub = scrubber
        self.max_bytes = max_bytes if max_bytes is not None else int(config.MAX_IMAGE_MB * 1024 * 1024)
        self.max_seconds = max_seconds if max_seconds is not None else config.MAX_TRANSFER_SECONDS
        # {size: [paths]} of files on disk no archive row names (read only
        # here): a body of one of those sizes is compared with them
        self.same_size = same_size or {}
        # saved images get the user's usual mode, not the temp file's 0o600
        self.file_mode = fileops.new_file_mode()
        self.user_agent = user_agent
        self._local = threading.local()

    def session(self):
        if self.user_agent is None:
            return thread_session(self._local)
        return thread_session(self._local, self.user_agent)

    def __call__(self, plan):
        """The outcome of fetching the plan's URL, and when that fails, of
        its fallback (an embed's origin behind the proxy copy)."""
        outcome = self._fetch_into_place(plan, plan.item.url)
        if outcome.status in ("expired", "failed") and plan.item.fallback and not plan.refreshed:
            second = self._fetch_into_place(plan, plan.item.fallback)
            if second.status not in ("expired", "failed"):
                return second
        return outcome

    def _fetch_into_place(self, plan, url):
        reason = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(backoff(attempt - 1))
            try:
                temp = fileops.temp_path_beside(self.folder / plan.name)
            except OSError as exc:
                _raise_if_disk(exc, self.folder)
                return Outcome(plan, "failed", reason=f"cannot write in {self.folder}: {exc.strerror or exc}")
            try:
                size, digest, kind = self._fetch(url, temp)
                found = verify_image(temp, kind)
                os.chmod(temp, self.file_mode)
                # the file's time is the message's: a folder sorted by date sorts by post
                os.utime(temp, ns=(time.time_ns(), posted_ns(plan.item.posted)))
            except _Expired as exc:
                temp.unlink(missing_ok=True)
                return Outcome(plan, "expired", reason=str(exc))
            except _Refused as exc:  # too big or too slow: the same again next time
                temp.unlink(missing_ok=True)
                return Outcome(plan, "failed", reason=str(exc))
            except (BadBody, requests.RequestException, OSError) as exc:
                temp.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    _raise_if_disk(exc, self.folder)
                reason = self.scrub(_describe(exc))
                continue
            except Exception as exc:  # a surprise must not end the whole run
                temp.unlink(missing_ok=True)
                return Outcome(plan, "failed", reason=self.scrub(f"{type(exc).__name__}: {exc}"))
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            right = FORMAT_EXTENSIONS.get(found, "")
            if right and os.path.splitext(plan.name)[1].lower() not in _SAME_FORMAT.get(right, (right,)):
                # named .png by Discord, decoded as a JPEG: the main thread picks the right name
                return Outcome(plan, "misnamed", size=size, sha256=digest, temp=temp, extension=right)
            try:
                return self._publish(plan, temp, size, digest)
            except OSError as exc:
                temp.unlink(missing_ok=True)
                _raise_if_disk(exc, self.folder)
                return Outcome(plan, "failed", reason=f"saving failed: {exc.strerror or exc}")
        tries = self.max_retries + 1
        return Outcome(plan, "failed", reason=f"{reason} (after {tries} attempts)")

    def _fetch(self, url, temp):
        """Stream `url` into `temp`: (size, sha256, content type). The time
        limit is checked between pieces of the body, and a timer shuts the
        socket at it (headers trickled, or a read stuck between slow bytes)."""
        with deadline.watch(self.max_seconds) as watch:
            try:
                fetched = self._stream(url, temp)
            except (BadBody, requests.RequestException):
                fetched = None
                if not deadline.cut(watch):
                    raise
            if deadline.cut(watch):   # a body without a length ends, cut short, as if complete
                raise _Refused(f"transfer took longer than {self.max_seconds:g} s; stopped")
            return fetched

    def _stream(self, url, temp):
        ends = time.monotonic() + self.max_seconds
        with self.session().get(url, stream=True, timeout=self.timeout) as response:
            status = response.status_code
            if status in (403, 404):
                raise _Expired(f"HTTP {status} from the CDN (link expired or removed)")
            if status != 200:
                raise BadBody(f"HTTP {status}")
            expected = response.headers.get("Content-Length", "")
            if expected.isdigit() and int(expected) > self.max_bytes:
                raise _Refused(f"{_too_big(self.max_bytes)} (Content-Length {int(expected):,} bytes); not fetched")
            digest, size = hashlib.sha256(), 0
            with open(temp, "wb") as out:
                for chunk in _chunks(response):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _Refused(f"{_too_big(self.max_bytes)}; the transfer was stopped")
                    if time.monotonic() > ends:
                        raise _Refused(f"transfer took longer than {self.max_seconds:g} s "
                                       f"({size:,} bytes received); stopped")
            if expected.isdigit() and not response.headers.get("Content-Encoding") and int(expected) != size:
                raise BadBody(f"body shorter than its Content-Length ({size} of {expected} bytes)")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if size == 0:
            raise BadBody("empty body")
        return size, digest.hexdigest(), kind

    def _publish(self, plan, temp, size, digest):
        candidates = dict.fromkeys([*plan.compare_with, *self.same_size.get(size, ())])
        matches = tuple(p.name for p in candidates if _same_content(temp, p))
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


def posted_ns(posted) -> int:
    """An aware datetime as nanoseconds since the epoch, exactly (no float)."""
    return (posted - _EPOCH) // timedelta(microseconds=1) * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _Refused(Exception):
    """A body over the size cap or the time limit: counted, not retried."""


class DiskError(RunError):
    """Writing into the download folder failed for lack of space or an I/O
    error: the run stops (exit 1) with what it saved so far."""


def _raise_if_disk(exc, folder):
    if exc.errno in DISK_ERRNOS:
        raise DiskError(f"cannot write in {folder}: {exc.strerror or exc} (errno {exc.errno})") from None


def _too_big(limit):
    return f"image larger than the {limit / (1024 * 1024):g} MiB cap (config.MAX_IMAGE_MB, --max-image-mb)"


def _chunks(response):
    """The body in pieces as they arrive: read1 returns after one socket
    read, so the time limit is checked while a body trickles (iter_content
    would wait for a whole chunk). urllib3 1.x has no read1."""
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(CHUNK)
        return
    while True:
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ConnectionError(exc) from None
        except urllib3.exceptions.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        if not chunk:
            return
        yield chunk


def _describe(exc):
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the body was complete"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({type(exc).__name__})"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc)


# Pillow's format name -> the extension a file of it should carry
FORMAT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
_SAME_FORMAT = {".jpg": (".jpg", ".jpeg")}


def verify_image(path, kind=""):
    """Raise BadBody unless `path` is a complete, decodable image: the one
    check dedupe makes too (images.integrity), which also finds the JPEG,
    GIF and WebP bodies cut short that Pillow would decode. Returns its
    format (Pillow's name: PNG, JPEG...)."""
    try:
        return integrity.verify_file(path)
    except integrity.DamagedImage as exc:
        sent = f"{kind} body" if kind else "body"
        raise BadBody(f"not a decodable image ({sent}; {exc})") from None

"""One download run: fetch the message pages, plan the names, transfer the
images with a pool of workers, record each saved file in the folder's
download archive, and return what happened (nothing is printed here)."""
import concurrent.futures
import logging
import os
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional
from zoneinfo import ZoneInfo

import config
from discordpicextract import fileops, locking, messages, naming
from discordpicextract.archive import DownloadArchive
from discordpicextract.discord.errors import (
    AccessError,
    AuthError,
    DiscordError,
    IntentError,
    SharedLimitError,
    StopError,
)
from discordpicextract.discord.extract import extract_images, has_content, thumbnail_count
from discordpicextract.discord.plan import SECOND, name_family, plan_names, release_batches
from discordpicextract.discord.transfer import DiskError, Transfer
from discordpicextract.discord.window import as_window

log = logging.getLogger(__name__)  # -v: each file saved or found on disk

# Expired links are re-signed in batches of up to this many (Discord's
# limit for one POST /attachments/refresh-urls).
REFRESH_BATCH = 50
# Application flags: the Message Content intent, enabled or limited.
MESSAGE_CONTENT_INTENT = (1 << 18) | (1 << 19)
# Channel types whose threads may start from a message of the channel.
TEXT_PARENT_TYPES = frozenset({0, 5})

# Each saved file's archive row is committed before the next file is
# reported saved: a crash loses no row whose file exists (the archive keeps
# its journal in WAL mode, so a commit costs no disk sync).

# progress(found, done): images newly found, images newly finished
Progress = Callable[[int, int], None]


def _no_progress(found: int, done: int) -> None:
    pass


@dataclass
class DownloadResult:
    downloaded: list = field(default_factory=list)   # file names saved
    skipped: int = 0          # items already in the archive
    thumbnails: int = 0       # media-channel grid thumbnails (IS_THUMBNAIL), not saved
    present: int = 0          # identical file already on disk (not in archive)
    errors: list = field(default_factory=list)       # (description, reason)
    warnings: list = field(default_factory=list)
    messages: int = 0
    images: int = 0
    channels: list = field(default_factory=list)     # (name, id) fetched
    stopped: str = ""         # why the run ended early (disk full, I/O error)
    cleaned: list = field(default_factory=list)      # leftover .part files removed at start
    unrecorded: int = 0       # saved files whose archive row could not be written

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.stopped)


def describe_item(item) -> str:
    when = item.posted.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{item.original} ({item.source}, message {item.message_id}, {when})"


class _Run:
    """State of one download run; every method runs in the main thread."""

    def __init__(self, client, folder, tz, workers, progress, keep_messages=True, max_bytes=None):
        self.client = client
        self.folder = Path(folder)
        self.zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.result = DownloadResult()
        self.archive = DownloadArchive(self.folder, fast_commits=True)
        self.known = self.archive.keys()
        on_disk = {p.name for p in self.folder.iterdir()}
        self.taken = set(on_disk)
        # Files on disk no archive row names, by their first 19 characters:
        # a name's collision family all starts with its YYYY-MM-DD_HH-MM-SS,
        # so each item is compared with its own second's files, not with
        # every file (quadratic in a big folder whose archive was lost).
        self.unclaimed: dict[str, set[str]] = {}
        for name in on_disk - self.archive.filenames():
            if not name.startswith(".") and naming.is_image_name(name):
                self.unclaimed.setdefault(name[:SECOND], set()).add(name)
        # ...and all of them by size: a file saved by a run that died before
        # its archive row was written, then renamed by the timestamp tools,
        # is found again by its bytes whatever its name now says.
        self.free = set().union(*self.unclaimed.values())
        by_size: dict[int, list] = {}
        for name in self.free:
            try:
                by_size.setdefault(os.lstat(self.folder / name).st_size, []).append(self.folder / name)
            except OSError:
                pass
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="download")
        self.transfer = Transfer(self.folder, client.max_retries, client.timeout, client.scrub,
                                 max_bytes=max_bytes, same_size=by_size, user_agent=client.user_agent)
        self.expired: list = []   # (plan, reason) waiting for a refresh-urls batch
        self.intent_checked = False
        self.pending = {}
        self.rows = []
        self.progress = progress or _no_progress
        self.on_paged: Callable[[int, bool], None] = lambda messages, ended: None
        # messages.csv: rows of the files saved (or claimed) in this run, and
        # of archived files still without one (a folder from before messages.csv)
        self.message_rows: Optional[list] = [] if keep_messages else None
        self.listed = {row["file"] for row in messages.read_rows(self.folder)} if keep_messages else set()
        self.guild_of: dict[str, str] = {}

    def submit(self, plan):
        self.pending[self.pool.submit(self.transfer, plan)] = plan

    def dispatch(self, items):
        self.result.images += len(items)
        fresh = [i for i in items if i.key not in self.known]
        self.result.skipped += len(items) - len(fresh)
        self.progress(len(items), len(items) - len(fresh))
        if self.message_rows is not None and len(fresh) < len(items):
            self._backfill_rows(i for i in items if i.key in self.known)
        for plan in plan_names(fresh, self.taken, self.zone):
            self.taken.add(plan.name)
            same_second = self.unclaimed.get(plan.base[:SECOND])
            family = name_family(plan.base, same_second) if same_second else []
            self.submit(replace(plan, compare_with=tuple(self.folder / n for n in family)))

    def drain(self, block):
        if not self.pending:
            return
        done, _ = concurrent.futures.wait(
            list(self.pending), timeout=None if block else 0,
            return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            self.pending.pop(future)
            self.finish(future.result())
        if self.expired and (len(self.expired) >= REFRESH_BATCH or not self.pending):
            self._refresh_expired()

    def finish(self, outcome):
        handler = getattr(self, f"_on_{outcome.status}")
        handler(outcome)

    def _backfill_rows(self, items):
        for item in items:
            name = self.archive.filename_of(item.key)
            if name and name not in self.listed and (self.folder / name).is_file():
                self._add_message_row(item, name)

    def _add_message_row(self, item, filename):
        if self.message_rows is None:
            return
        self.listed.add(filename)
        self.message_rows.append(messages.row(
            filename, message_id=item.message_id, posted=item.posted, author=item.author,
            author_id=item.author_id, text=item.text, guild_id=self.guild_of.get(item.channel_id),
            channel_id=item.channel_id, source=item.source, original_posted=item.original_posted))

    def _record(self, item, filename, size, sha256):
        """Write the archive row of a file already in place, before the file
        is reported saved. Should the archive be unwritable (disk full), the
        rows wait in memory for one more try at the end, and the run stops."""
        self.rows.append((item.key, item.message_id, filename, size, sha256, item.channel_id))
        self.known.add(item.key)
        self._add_message_row(item, filename)
        self.flush()

    def flush(self):
        if not self.rows:
            return
        try:
            self.archive.add_many(self.rows)
        except sqlite3.Error as exc:
            raise DiskError(f"cannot write the download archive {self.archive.path}: {exc}") from None
        self.rows = []

    def _on_saved(self, outcome):
        log.debug("saved %s: %s", outcome.filename, describe_item(outcome.plan.item))
        self.result.downloaded.append(outcome.filename)  # in place, whether or not its row can be written
        self._record(outcome.plan.item, outcome.filename, outcome.size, outcome.sha256)
        self.progress(0, 1)

    def _on_maybe_present(self, outcome):
        free = [n for n in outcome.matches if n in self.free]
        if not free:  # all identical files already belong to other items
            self._publish_here(outcome, outcome.plan.name)
            return
        outcome.temp.unlink(missing_ok=True)
        log.debug("already on disk as %s: %s", free[0], describe_item(outcome.plan.item))
        self.free.discard(free[0])
        self.unclaimed.get(free[0][:SECOND], set()).discard(free[0])
        self._record(outcome.plan.item, free[0], outcome.size, outcome.sha256)
        self.result.present += 1
        self.progress(0, 1)

    def _publish_here(self, outcome, name):
        while True:
            try:
                fileops.publish_no_clobber(outcome.temp, self.folder / name)
                break
            except FileExistsError:
                self.taken.add(name)
                name = naming.unique_name(name, lambda n: n in self.taken)
        self.taken.add(name)
        self._on_saved(replace(outcome, status="saved", filename=name))

    def _on_conflict(self, outcome):
        # a file appeared under the reserved name while we downloaded (the temp
        # file is gone): fetch again under the next free name
        plan = outcome.plan
        self.taken.add(plan.name)
        folded = {t.casefold() for t in self.taken}
        name = naming.unique_name(plan.base, lambda n: n.casefold() in folded)
        self.taken.add(name)
        self.submit(replace(plan, name=name))

    def _on_misnamed(self, outcome):
        """The file decoded as another format than its name says: saved under
        its name with the right extension."""
        stem = os.path.splitext(outcome.plan.name)[0]
        name = naming.unique_name(stem + outcome.extension, lambda n: n.casefold() in self._folded_taken())
        self._publish_here(outcome, name)

    def _folded_taken(self):
        return {t.casefold() for t in self.taken}

    def _on_expired(self, outcome):
        plan = outcome.plan
        if plan.refreshed:
            self._fail(plan, f"{outcome.reason}; still failing after refreshing the link")
            return
        if plan.item.source.startswith("embed"):  # an external image: Discord signs no such link
            self._fail(plan, f"{outcome.reason}; gone at Discord's proxy and at its origin")
            return
        self.expired.append((plan, outcome.reason))

    def _refresh_expired(self):
        """Re-sign the expired links of a batch with POST /attachments/refresh-urls
        (for user and bot tokens alike; it also saves a stale link pasted in
        message text, which re-reading the message never re-signs); a link it
        does not re-sign is looked up again in its message, read `around` it."""
        batch, self.expired = self.expired, []
        try:
            fresh = self.client.refresh_urls([plan.item.url for plan, _ in batch])
            trouble = ""
        except StopError:
            raise
        except DiscordError as exc:
            fresh, trouble = {}, f"refreshing the link failed ({exc})"
        reread: dict = {}
        for plan, reason in batch:
            url = fresh.get(plan.item.url)
            why = trouble
            if url is None:
                url, why = self._reread_url(plan.item, reread, trouble)
            if url is None:
                self._fail(plan, f"{reason}; {why}")
            else:
                self.submit(replace(plan, item=replace(plan.item, url=url), refreshed=True))

    def _reread_url(self, item, cache, trouble):
        """(fresh URL or None, why not) from the item's message read again."""
        if item.source.startswith("text"):
            return None, trouble or "Discord did not re-sign the link pasted in the message text"
        if item.message_id not in cache:
            try:
                cache[item.message_id] = self.client.fetch_message_around(item.channel_id, item.message_id)
            except StopError:
                raise
            except DiscordError as exc:
                cache[item.message_id] = exc
        message = cache[item.message_id]
        if isinstance(message, DiscordError):
            return None, f"re-reading its message failed ({message})"
        if message is None:
            return None, "the message was deleted"
        for candidate in extract_images(message):
            if candidate.key == item.key:
                return candidate.url, ""
        return None, "the message no longer holds it"

    def _on_failed(self, outcome):
        self._fail(outcome.plan, outcome.reason)

    def _fail(self, plan, reason):
        self.result.errors.append((describe_item(plan.item), reason))
        self.progress(0, 1)

    def stop(self, reason):
        """End early (disk full): let running transfers end, keep the files
        they saved (their rows are written like any other), drop the rest."""
        self.result.stopped = reason
        self.pool.shutdown(wait=True, cancel_futures=True)
        for future, plan in list(self.pending.items()):
            if future.cancelled() or future.exception() is not None:
                continue
            outcome = future.result()
            if outcome.status == "saved":
                self.rows.append((plan.item.key, plan.item.message_id, outcome.filename,
                                  outcome.size, outcome.sha256, plan.item.channel_id))
                self.result.downloaded.append(outcome.filename)
            elif outcome.temp is not None:
                outcome.temp.unlink(missing_ok=True)
        self.pending.clear()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.flush()
        except DiskError as exc:
            self.result.unrecorded = len(self.rows)
            self.result.stopped = self.result.stopped or str(exc)
        finally:
            self.archive.close()
            self._write_messages()

    def _write_messages(self):
        """messages.csv once per run, whole and atomic (also after Ctrl-C or
        an error: the rows of what was saved are not lost)."""
        if not self.message_rows:
            return
        try:
            messages.add_rows(self.folder, self.message_rows)
        except OSError as exc:
            self.result.warnings.append(f"{messages.MESSAGES_FILE} not written: {exc.strerror or exc}")


def run_download(client, channels, folder, cutoff, *, tz=config.TIMEZONE,
                 workers=config.DEFAULT_WORKERS, progress: Optional[Progress] = None,
                 keep_messages=True, max_bytes=None, since_last=False, starters=(),
                 on_paged: Optional[Callable[[int, bool], None]] = None):
    """Download the images posted inside `cutoff` (an aware datetime or a
    Window) in `channels` (channel objects: the channel, then its threads)
    into `folder`, holding the folder's lock throughout (BusyError when
    another run holds it).

    Items already in the folder's archive are skipped; every saved file is
    recorded there. Failures are counted in the result, never raised,
    except an invalid token or lost access on the first page, and the
    answers after which no request may follow (errors.StopError); a full
    disk or an I/O error stops the run with `result.stopped` set.
    `progress(found, done)` hears of images found and images finished, and
    `on_paged(messages, ended)` of the messages read after each page and
    at the end of paging. With `keep_messages`, each
    saved image's message goes into the folder's messages.csv. With
    `since_last`, each channel is read only after the newest message the
    archive holds for it. `starters`: messages of a parent channel (a
    thread's starter) read beside the channels.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    window = as_window(cutoff)
    with locking.hold(folder, "download") as cleaned:
        run = _Run(client, folder, tz, workers, progress, keep_messages, max_bytes)
        run.result.cleaned = cleaned
        run.on_paged = on_paged or (lambda messages, ended: None)
        try:
            if starters:
                run.guild_of[str(starters[0]["channel_id"])] = str((channels[0] if channels else {}).get("guild_id")
                                                                   or "")
                _read_pages(run, {"id": starters[0]["channel_id"], "name": "starter"}, iter([list(starters)]))
            for channel in channels:
                run.result.channels.append((channel.get("name", ""), channel["id"]))
                run.guild_of[str(channel["id"])] = str(channel.get("guild_id") or "")
                newest = run.archive.newest_message(channel["id"]) if since_last else None
                _fetch_channel(run, channel, window.since(newest))
            run.on_paged(run.result.messages, True)
            while run.pending:
                run.drain(block=True)
        except DiskError as exc:
            run.stop(str(exc))
        finally:
            run.close()
    run.result.warnings.extend(w for w in client.warnings if w not in run.result.warnings)
    return run.result


def _fetch_channel(run, channel, window):
    where = f"#{channel.get('name', channel['id'])}"
    try:
        _read_pages(run, channel, run.client.fetch_messages(channel["id"], window))
    except (AuthError, StopError, IntentError):
        raise
    except SharedLimitError as exc:
        run.result.warnings.append(f"{where} skipped: {exc}")
    except AccessError as exc:
        if len(run.result.channels) == 1 and run.result.messages == 0:
            raise
        run.result.errors.append((f"channel {where}", str(exc)))
    except DiscordError as exc:
        run.result.errors.append((f"fetching messages of {where}", f"{exc}; later messages were not fetched"))


def _read_pages(run, channel, pages):
    for items, count in release_batches(_checked(run, pages), run.zone):
        run.result.messages += count
        run.dispatch(items)
        run.on_paged(run.result.messages, False)
        run.drain(block=False)


def _checked(run, pages):
    """The pages as they come, counting media-channel thumbnails, and with
    a bot token checking that a page of messages with nothing in them is
    not a missing Message Content intent."""
    for page in pages:
        run.result.thumbnails += sum(thumbnail_count(m) for m in page)
        if run.client.kind == "bot" and not run.intent_checked and not any(has_content(m) for m in page):
            run.intent_checked = True
            _check_intent(run.client)
        yield page


def _check_intent(client):
    flags = int(client.fetch_application().get("flags") or 0)
    if not flags & MESSAGE_CONTENT_INTENT:
        raise IntentError("the bot sees messages without their content: enable the Message Content "
                          "intent (Developer Portal -> your application -> Bot -> Privileged Gateway "
                          "Intents), then run again")


def starter_message(client, thread, parent, window):
    """The parent channel's message a thread was started from (same ID as
    the thread), when it is inside the window; None for a forum post (its
    starter is the thread's own first message) or a thread started on its
    own. Read `around` it: the single-message GET is bots-only."""
    if thread.get("type") not in (10, 11, 12) or (parent or {}).get("type") not in TEXT_PARENT_TYPES:
        return None
    message = client.fetch_message_around(thread["parent_id"], thread["id"])
    if message is None or not window.keeps(message):
        return None
    return {**message, "channel_id": message.get("channel_id") or thread["parent_id"]}


def list_threads(client, channel, cutoff):
    """The threads of `channel` active after `cutoff`, sorted by ID."""
    threads = {}
    for page in client.fetch_threads(channel, cutoff):
        for thread in page:
            threads[thread["id"]] = thread
    return [threads[k] for k in sorted(threads, key=int)]


def cutoff_for(days, now=None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now - timedelta(days=days)


# Forum (15) and media (16) channels hold no messages of their own: their
# posts are threads.
FORUM_TYPES = frozenset({15, 16})


def channels_with_threads(client, channel, cutoff, include):
    """([channel] plus its threads when `include`, error items): a thread
    listing that fails is an error item, and the channel itself is still read;
    only an invalid token or a stop answer is raised. A forum or media
    channel is always read through its posts (threads), never by itself."""
    forum = channel.get("type") in FORUM_TYPES
    if not include and not forum:
        return [channel], []
    own = [] if forum else [channel]
    try:
        return [*own, *list_threads(client, channel, cutoff)], []
    except (AuthError, StopError):
        raise
    except DiscordError as exc:  # 403, 404, a server error
        return own, [("listing threads", client.scrub(exc))]

"""When each file was really posted: a Discord snowflake encodes its
message's post time to the millisecond, and a download archive row ties a
file to its message, by name in the folder's own archive, or by content
(sha256) in any archive, so that a file saved by another tool, or renamed
since, still finds its message after a fresh download of the same window.

Matching by content is exact only when the content was posted once. Bytes
posted more than once (a re-post a minute later) are resolved, in order:
a message whose post time is the name's time; else one whose offset is the
one the other files of that date (then of the folder) show; else, when the
files and the messages are equally many, in time order (a shift keeps
order). A file still undecided is unknown, never guessed.
"""
import csv
import hashlib
import os
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple, Optional

import config
from discordpicextract.archive import name_from_db
from discordpicextract.errors import UsageError
from discordpicextract.timestamps.convert import to_wall

DISCORD_EPOCH_MS = 1420070400000
BY_NAME, BY_CONTENT = "archive", "sha256"
_CHUNK = 1 << 20


def snowflake_time(message_id) -> Optional[datetime]:
    """The aware UTC post time of a message ID: ((id >> 22) + epoch) ms.
    None for anything that is not a snowflake."""
    try:
        value = int(str(message_id))
    except ValueError:
        return None
    if value <= 0 or value >= 1 << 64:
        return None
    ms = (value >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms // 1000, timezone.utc) + timedelta(milliseconds=ms % 1000)


# --- archives -------------------------------------------------------------------

class ArchiveRow(NamedTuple):
    """A download archive row (a tuple: 100,000 of them are read at once)."""

    item_key: str
    message_id: str
    filename: str
    size: int
    sha256: str


def archive_file_for(path) -> Path:
    """The archive file `path` names: a folder holding one, or the file
    itself. UsageError when there is none."""
    path = Path(path)
    if path.is_dir():
        found = path / config.ARCHIVE_FILE
        if not found.is_file():
            raise UsageError(f"no download archive in {path} (expected {found}); "
                             f"--archive takes a downloaded folder or its archive file")
        return found
    if not path.is_file():
        raise UsageError(f"--archive: not found: {path}")
    return path


def read_archive_rows(path) -> list:
    """Every row of the archive file at `path`, opened read-only (a
    download running meanwhile is not disturbed, nothing is created)."""
    return list(iter_archive_rows(path))


def iter_archive_rows(path):
    """The rows of the archive file at `path` one by one (read-only, as
    read_archive_rows), so that a caller keeps only what it needs."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            for row in db.execute("SELECT item_key, message_id, filename, size, sha256 FROM downloads"):
                yield _archive_row(path, row)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read the download archive {path}: {exc}") from None


def _archive_row(path, row) -> ArchiveRow:
    """One row as read; a row whose size is no number (a damaged or
    hand-edited archive) is a UsageError, not a traceback."""
    key, mid, name, size, digest = row
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UsageError(f"the download archive {path} has a damaged row (item {key}: size {size!r}); "
                         f"restore it or pass another --archive") from None
    return ArchiveRow(str(key), str(mid), str(name_from_db(name)), size, str(digest or "").lower())


def own_archive_rows(folder) -> list:
    """The rows that tie `folder`'s own file names to messages: its download
    archive, and its messages.csv (which the copy steps carry to their
    outputs) for names the archive does not hold."""
    path = Path(folder) / config.ARCHIVE_FILE
    rows = read_archive_rows(path) if path.is_file() else []
    named = {row.filename for row in rows}
    try:
        listed = list(message_ids(folder))
    except (OSError, ValueError):
        listed = []  # an unreadable messages.csv only means fewer names known
    rows += [ArchiveRow(f"messages.csv:{name}", message_id, name, -1, "")
             for name, message_id in listed if name not in named]
    return rows


def message_ids(folder):
    """(file, message_id) of each row of `folder`'s messages.csv that has
    both, one by one (not a dict of every column per row); nothing when
    there is no messages.csv. OSError/ValueError for an unreadable one."""
    from discordpicextract import messages

    try:
        with open(messages.messages_path(folder), encoding="utf-8", newline="",
                  errors="surrogateescape") as handle:
            yield from _id_columns(csv.reader(handle))
    except FileNotFoundError:
        return


def _id_columns(reader):
    header: list = next(reader, [])
    if "file" not in header or "message_id" not in header:
        return
    at_file, at_id = header.index("file"), header.index("message_id")
    for row in reader:
        name = row[at_file] if at_file < len(row) else ""
        message_id = row[at_id] if at_id < len(row) else ""
        if name and message_id:
            yield name, message_id


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


# --- matching files to messages ---------------------------------------------------

class Known(NamedTuple):
    message_id: str
    posted: datetime   # aware UTC
    via: str           # BY_NAME or BY_CONTENT


@dataclass
class Matches:
    known: dict = field(default_factory=dict)     # name -> Known
    ambiguous: list = field(default_factory=list)  # names whose content several messages posted
    unreadable: list = field(default_factory=list)  # (name, reason) files that could not be hashed


def match_messages(images, own_rows, other_rows, zone, digest=sha256_of) -> Matches:
    """Tie each image (naming.ImageFile) to its message: by name through
    `own_rows` (the folder's archive), else by content through both row
    lists. `zone` is the names' zone (for the tie-breaks); `digest(path)`
    hashes a file, called only for files whose size some row has."""
    return _match(images, lambda: own_rows, lambda: (), lambda: other_rows, zone, digest)


def match_folder(images, folder, other_path, zone, digest=sha256_of) -> Matches:
    """match_messages against `folder`'s own archive and messages.csv (and
    the archive file at `other_path`), read row by row: only what ties a
    file to its message is kept, not every row of every archive."""
    own = Path(folder) / config.ARCHIVE_FILE

    def own_rows():
        return iter_archive_rows(own) if own.is_file() else ()

    def other_rows():
        return iter_archive_rows(other_path) if other_path else ()

    return _match(images, own_rows, lambda: message_ids(folder), other_rows, zone, digest)


def _match(images, own_rows, own_messages, other_rows, zone, digest) -> Matches:
    """`own_rows`, `own_messages` (the (file, message_id) of messages.csv,
    used for names no own row has) and `other_rows` are callables giving
    the rows afresh: they are read again only when some file is matched by
    content."""
    out = Matches()
    out.known = _by_name(images, own_rows, own_messages)
    rest = [image for image in images if image.name not in out.known]
    if rest:
        claimed = _claimed(images, own_rows, out.known)
        undecided = _match_by_content(rest, (own_rows, other_rows), claimed, zone, digest, out)
        if undecided:
            _pair_by_neighbours(undecided, images, zone, out)
    return out


def _by_name(images, own_rows, own_messages) -> dict:
    """{name: Known}: each file's earliest message by name (the first row
    of the earliest post time); messages.csv only for names no own row
    holds. Keyed on the listing's own strings, one small tuple per file."""
    names = {image.name: image.name for image in images}
    known: dict = {}
    named = set()  # listing names some own row holds, a snowflake or not
    for row in own_rows():
        name = names.get(row.filename)
        if name is not None:
            named.add(name)
            _offer(known, name, row.message_id)
    listed: dict = {}
    try:
        for filename, message_id in own_messages():
            name = names.get(filename)
            if name is not None and name not in named:
                _offer(listed, name, message_id)
    except (OSError, ValueError):
        listed = {}  # an unreadable messages.csv only means fewer names known
    known.update(listed)
    return known


def _offer(known, name, message_id):
    posted = snowflake_time(message_id)
    if posted is None:
        return
    held = known.get(name)
    if held is None or posted < held.posted:
        known[name] = Known(message_id, posted, BY_NAME)


def _claimed(images, own_rows, known) -> set:
    """The item keys of the rows `_by_name` chose (the first row of a known
    name with its message): no other file takes them by content."""
    names = {image.name: image.name for image in images}
    claimed, done = set(), set()
    for row in own_rows():
        name = names.get(row.filename)
        found = known.get(name) if name is not None else None
        if found is not None and name not in done and row.message_id == found.message_id:
            claimed.add(row.item_key)
            done.add(name)
    return claimed


def _match_by_content(images, sources, claimed, zone, digest, out):
    """Three passes, so that only the rows of content some file has are
    held: the sizes rows have, the files of those sizes hashed, then the
    rows of the (size, sha256) found."""
    def usable():
        for rows in sources:
            for row in rows():
                posted = snowflake_time(row.message_id) if row.sha256 and row.item_key not in claimed else None
                if posted is not None:
                    yield row, posted

    sizes = {row.size for row, _posted in usable()}
    groups: dict = {}  # _content_key -> [its images..., then _Message of its rows...]: one list a content
    for image in images:
        try:
            size = os.stat(image.path).st_size
            if size in sizes:
                groups.setdefault(_content_key(size, digest(image.path)), []).append(image)
        except OSError as exc:
            out.unreadable.append((image.name, exc.strerror or str(exc)))
    del sizes
    groups.pop(None, None)
    for row, _posted in usable():  # only the rows of contents some file has
        group = groups.get(_content_key(row.size, row.sha256))
        if group is not None:
            group.append(_Message(row.item_key, row.message_id))
    undecided = []
    for group in groups.values():
        found = [item for item in group if type(item) is _Message]
        if found:
            members = [item for item in group if type(item) is not _Message]
            latest = {message.item_key: message for message in found}  # a later row of one item replaces it
            posted = [(snowflake_time(message.message_id), message) for message in latest.values()]
            pool = sorted(((to_wall(when, zone), when, message) for when, message in posted if when is not None),
                          key=lambda c: (c[1], c[2].item_key))
            undecided += _pair_exact(members, pool, out)
    return undecided


def _content_key(size: int, sha256: str) -> Optional[bytes]:
    """(size, sha256) as one small bytes object (100,000 of them are held);
    None for a digest that is no hex (a damaged row: nothing has it)."""
    if not sha256.isalnum():  # fromhex would skip spaces: only the digest itself matches
        return None
    try:
        return size.to_bytes(8, "big", signed=True) + bytes.fromhex(sha256)
    except (ValueError, OverflowError):
        return None


class _Message(NamedTuple):
    """What matching by content keeps of a row: not its name or digest."""

    item_key: str
    message_id: str


def _pair_exact(members, pool, out):
    """Files of one content whose message is certain: a single post time,
    or a post time equal to the name's. Returns (files, pool left) pairs."""
    if len({wall for wall, _posted, _row in pool}) == 1:
        for image in members:  # one post time: every copy was posted then
            wall, posted, row = pool[0]
            out.known[image.name] = Known(row.message_id, posted, BY_CONTENT)
        return []
    left, rest = list(pool), []
    for image in sorted(members, key=lambda i: (i.timestamp, i.name)):
        hit = next((c for c in left if c[0] == image.timestamp), None)
        if hit is None:
            rest.append(image)
        else:
            left.remove(hit)
            out.known[image.name] = Known(hit[2].message_id, hit[1], BY_CONTENT)
    return [(rest, left)] if rest else []


def _pair_by_neighbours(undecided, images, zone, out):
    """Repeated content, no exact hit: the message whose offset the other
    known files of the date (then of the folder) show; else time order when
    the counts match; else unknown (ambiguous)."""
    by_date: dict = defaultdict(Counter)
    overall: Counter = Counter()
    for image in images:
        known = out.known.get(image.name)
        if known is not None:
            offset = image.timestamp - to_wall(known.posted, zone)
            by_date[image.timestamp.date()][offset] += 1
            overall[offset] += 1
    usual = overall.most_common(1)[0][0] if overall else None
    for files, left in undecided:
        rest = []
        for image in files:
            day = by_date.get(image.timestamp.date())
            wanted = [offset for offset in (day.most_common(1)[0][0] if day else None, usual)
                      if offset is not None]
            hit = next((c for offset in wanted for c in left if image.timestamp - c[0] == offset), None)
            if hit is None:
                rest.append(image)
            else:
                left.remove(hit)
                out.known[image.name] = Known(hit[2].message_id, hit[1], BY_CONTENT)
        if rest and len(rest) == len(left):
            for image, (_wall, posted, row) in zip(sorted(rest, key=lambda i: (i.timestamp, i.name)), left):
                out.known[image.name] = Known(row.message_id, posted, BY_CONTENT)
        else:
            out.ambiguous += [image.name for image in rest]


# --- verification -------------------------------------------------------------------

class Checked(NamedTuple):
    """A file whose message is known: its name's time against the post time
    in the names' zone (a tuple: one per file of the folder)."""

    name: str
    named: datetime    # the name's naive time
    posted: datetime   # naive post time in the names' zone, whole seconds
    instant: datetime  # aware UTC post time (orders equal names)
    via: str

    @property
    def original(self) -> str:
        """The part of the name after its time (naming.ImageFile.parsed)."""
        return self.name[len("YYYY-MM-DD_HH-MM-SS_"):]

    @property
    def offset(self) -> timedelta:
        return self.named - self.posted

    @property
    def agrees(self) -> bool:
        return self.named == self.posted

    @property
    def date(self) -> date:
        return self.named.date()


@dataclass
class Verification:
    folder: str
    zone: str
    checked: list = field(default_factory=list)    # [Checked], in name order
    unknown: list = field(default_factory=list)    # names whose message is not known
    ambiguous: list = field(default_factory=list)  # of those, content several messages posted
    unreadable: list = field(default_factory=list)  # (name, reason)
    unparsed: list = field(default_factory=list)   # names that are no pipeline name
    other_archive: str = ""

    @property
    def agree(self) -> list:
        return [item for item in self.checked if item.named == item.posted]  # .agrees, inline: per file

    @property
    def differ(self) -> list:
        return [item for item in self.checked if item.named != item.posted]


def plan_verification(listing, matches, zone, folder="") -> Verification:
    """Pure: compare each image of `listing` (naming.FolderListing) with
    its message's post time (`matches`)."""
    out = Verification(str(folder), str(zone), unparsed=[path.name for path in listing.unparsed])
    for image in listing.images:
        known = matches.known.get(image.name)
        if known is None:
            out.unknown.append(image.name)
            continue
        out.checked.append(Checked(image.name, image.timestamp, to_wall(known.posted, zone), known.posted,
                                   known.via))
    out.ambiguous = sorted(set(matches.ambiguous))
    out.unreadable = list(matches.unreadable)
    return out


def fetch_verification(folder, zone, archive=None, listing=None) -> Verification:
    """Read `folder` (unless `listing`, naming.list_images of it, is given)
    and its archive (and the archive at `archive`, a folder holding one or
    the file) and verify every image against its post time."""
    from discordpicextract import naming

    other_path = archive_file_for(archive) if archive else None
    listing = listing if listing is not None else naming.list_images(folder)
    matches = match_folder(listing.images, folder, other_path, zone)
    result = plan_verification(listing, matches, zone, folder)
    result.other_archive = str(other_path or "")
    return result


def post_time_targets(verification, staying):
    """New names for the files of `verification` whose name is not their
    post time (convert.plan_targets: no two files ever get one name).
    `staying` is every name in the folder that is not checked."""
    from discordpicextract.timestamps.convert import Wanted, plan_targets

    wanted = [Wanted(item.name, item.original, item.posted, item.instant) for item in verification.checked]
    return plan_targets(wanted, staying)


def format_offset(offset) -> str:
    """A timedelta (or seconds) as +H:MM:SS / -H:MM:SS."""
    seconds = int(offset.total_seconds()) if isinstance(offset, timedelta) else int(offset)
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

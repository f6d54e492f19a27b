"""The timestamped file name every pipeline step reads and writes.

`YYYY-MM-DD_HH-MM-SS_originalname.ext`, the time in `config.TIMEZONE`.
Parsing, formatting, sanitising and collision-free naming live here so that
no script carries its own copy.
"""
import operator
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
NAME_TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"
_NAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})_(.+)$", re.DOTALL)
# Characters Windows forbids in names, plus both path separators.
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10)),
}
# Most file systems cap a name at 255 bytes; stay well under it so that
# the timestamp prefix and a collision suffix always fit.
MAX_ORIGINAL_BYTES = 150


class BadName(ValueError):
    """A file name that is not `YYYY-MM-DD_HH-MM-SS_name.ext`."""


class TimestampedName(NamedTuple):
    """A parsed pipeline file name (a tuple: the rename tools parse 166,800
    names in one run, and a frozen dataclass costs three times as much to
    make)."""

    timestamp: datetime  # naive, in config.TIMEZONE
    original: str        # the part after the timestamp, extension included

    @property
    def date(self) -> date:
        return self.timestamp.date()

    @property
    def name(self) -> str:
        return format_name(self.timestamp, self.original)


class ImageFile:
    """An image in a pipeline folder.

    Compact on purpose: a listing of 100,000 files holds 100,000 of these,
    so each keeps only its name, its timestamp and the folder's Path (one
    object shared by the whole listing). `path` and `parsed` are made on
    demand; the original part of a name is everything after the 20
    characters of `YYYY-MM-DD_HH-MM-SS_` (the regex matches exactly 19
    characters of stamp, whatever digits they are)."""

    __slots__ = ("folder", "name", "timestamp")

    def __init__(self, path, parsed: TimestampedName):
        path = Path(path)
        self.folder = path.parent
        self.name = path.name
        self.timestamp = parsed.timestamp  # naive, in config.TIMEZONE

    @classmethod
    def _of(cls, folder: Path, name: str, timestamp: datetime) -> "ImageFile":
        image = cls.__new__(cls)
        image.folder, image.name, image.timestamp = folder, name, timestamp
        return image

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def parsed(self) -> TimestampedName:
        return TimestampedName(self.timestamp, self.name[20:])

    @property
    def date(self) -> date:
        return self.timestamp.date()

    def _key(self):
        return (str(self.folder), self.name, self.timestamp)

    def __eq__(self, other):
        return isinstance(other, ImageFile) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"ImageFile({str(self.path)!r}, {self.timestamp.isoformat(sep=' ')})"


@dataclass
class FolderListing:
    """Images of a folder in (timestamp, name) order, and the image files
    whose names did not parse (reported by callers, never dropped silently)."""

    images: list
    unparsed: list
    # Image-named entries that are no regular file (a folder, a broken
    # link): nothing to read or copy, but callers report them.
    not_files: list = field(default_factory=list)


def parse_name(name: str) -> TimestampedName:
    """Parse `YYYY-MM-DD_HH-MM-SS_original`; raise BadName if it is not one."""
    match = _NAME_RE.match(name)
    if not match:
        raise BadName(f"not a YYYY-MM-DD_HH-MM-SS_name file name: {name!r}")
    try:
        stamp = _parse_stamp(match.group(1))
    except ValueError:
        raise BadName(f"impossible date or time in file name: {name!r}") from None
    return TimestampedName(stamp, match.group(2))


def _parse_stamp(text: str) -> datetime:
    """The datetime of a `YYYY-MM-DD_HH-MM-SS` the regex matched; ValueError
    for an impossible one. Every listing parses every name: slicing ASCII
    digits is ~10x faster than strptime (which stays for other digits, so
    that it alone decides what they mean)."""
    if not text.isascii():
        return datetime.strptime(text, NAME_TIME_FORMAT)
    if text[11:13] < "24":
        # ASCII digits in ISO's places: fromisoformat, in C, is 4x the six
        # int() slices (hour 24, which newer Pythons read as the next day's
        # midnight, is left to datetime() to refuse).
        return _from_iso(text.replace("-", ":").replace(":", "-", 2).replace("_", "T"))
    return datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]),
                    int(text[11:13]), int(text[14:16]), int(text[17:19]))


_from_iso = datetime.fromisoformat


def try_parse_name(name: str):
    """Like parse_name, but None for a name that does not parse."""
    try:
        return parse_name(name)
    except BadName:
        return None


def parse_stamp_of(name: str):
    """The timestamp of a pipeline name, or None: what a listing needs,
    without building a TimestampedName per file."""
    if _STAMP_RE.match(name) is None:
        return None
    try:
        return _parse_stamp(name[:19])   # the stamp: 19 characters, as \d is one
    except ValueError:
        return None


# What _NAME_RE matches, without reading the name past the stamp (with
# DOTALL, "(.+)$" is any one character or more)
_STAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_.", re.DOTALL)


def format_name(timestamp: datetime, original: str) -> str:
    """The pipeline name for an image taken at `timestamp` (local, naive):
    NAME_TIME_FORMAT spelled out, a quarter of strftime's cost, and the
    year always four digits (strftime writes year 999 as '999', a name no
    parse reads back)."""
    # isoformat (C) gives "YYYY-MM-DDTHH:MM:SS[.ffffff][+zone]", the year
    # in four digits: its pieces, half the cost of six formatted fields.
    t = timestamp.isoformat()
    return f"{t[:10]}_{t[11:13]}-{t[14:16]}-{t[17:19]}_{original}"


def is_image_name(name: str) -> bool:
    """Whether `name`'s extension is an image's, as os.path.splitext reads
    it (leading dots belong to the stem). Every listing asks it of every
    entry: slicing at the last dot costs a third of splitext."""
    dot = name.rfind(".")
    if dot <= 0 or name[dot:].lower() not in IMAGE_EXTENSIONS:
        return False
    return name[0] != "." or bool(name[:dot].lstrip("."))


# listings.shared() puts a memo here for a pipeline run: every step's listing
# of a folder that still holds the very same entries is answered from it.
_memo = None


def list_images(folder) -> FolderListing:
    """The images of `folder`, ordered by timestamp then name (see
    list_images_afresh; within listings.shared(), from its memo)."""
    if _memo is not None:
        return _memo(folder)
    return list_images_afresh(folder)


def set_listing_memo(memo):
    """Install `memo` (a callable folder -> FolderListing, or None) for
    list_images; returns the one it replaces."""
    global _memo
    outer, _memo = _memo, memo
    return outer


def list_images_afresh(folder) -> FolderListing:
    """The images of `folder`, ordered by timestamp then name.

    Hidden files (the download archive, rename journal, temp files) and files
    without an image extension are ignored; image files whose name does not
    parse are returned in `unparsed`, image-named entries that are no
    regular file (folders, broken links) in `not_files`, and so are links
    to a file outside the folder: a step never reads or copies through
    them (a link to /etc/passwd named x.png is not an image of the folder).
    """
    return scan_images(folder, ImageFile._of)


def scan_images(folder, make) -> FolderListing:
    """list_images_afresh, with each image made by `make(folder, name,
    timestamp)` (folder: the listing's Path) instead of an ImageFile; what
    it returns needs the attributes `name` and `timestamp`. Never answered
    from a memo: dedupe makes its records here, with what it learns of
    each file now."""
    names, keyed, unparsed, not_files = [], [], [], []
    base = Path(folder)  # base / name: a child path without parsing the whole path again
    inside = None
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not is_image_name(name):
                continue
            if entry.is_symlink():
                inside = inside or os.path.realpath(folder)
                if os.path.dirname(os.path.realpath(entry.path)) != inside:
                    not_files.append(base / entry.name)  # never followed out of the folder
                    continue
            if not entry.is_file():
                not_files.append(base / name)
                continue
            names.append(name)
    # The images are made in name order, which is (timestamp, name) order
    # but for unusual digits, and each holds a copy of its name made then:
    # the passes of a step over 100,000 of them walk memory in the order it
    # was filled, not scattered as the directory listed the names (a third
    # of a cached dedupe's time, else).
    names.sort()
    for listed in names:
        name = (listed + "/")[:-1]
        stamp = parse_stamp_of(name)
        if stamp is None:
            unparsed.append(base / name)
        else:
            keyed.append(make(base, name, stamp))
    # A stable sort of the name order gives (timestamp, name) order (linear where they agree).
    keyed.sort(key=operator.attrgetter("timestamp"))
    unparsed.sort()
    return FolderListing(keyed, unparsed, sorted(not_files))


def skipped_warnings(unparsed, not_files, where="") -> list:
    """The warning lines for what a listing skipped (`unparsed`,
    `not_files`), worded alike in every script's report; `where` (a folder)
    prefixes them when a report covers several folders."""
    prefix = f"{where}: " if where else ""
    return ([f"warning: {prefix}skipped {path.name}: name is not YYYY-MM-DD_HH-MM-SS_name.ext"
             for path in unparsed]
            + [f"warning: {prefix}skipped {path.name}: " + (
                "a link to a file outside the folder (not followed)" if _links_out(path)
                else "not a readable file (a folder or a broken link)") for path in not_files])


def _links_out(path) -> bool:
    return os.path.islink(path) and os.path.exists(path)


def sanitize_original(name: str, default: str = "image.png") -> str:
    """Make a name from Discord (or a URL) safe as one path component.

    No separators, no `..`, no control characters, nothing Windows forbids,
    no reserved device names, and at most MAX_ORIGINAL_BYTES UTF-8 bytes with
    the extension kept.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _FORBIDDEN.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" .")
    if not name:
        return default
    stem, ext = os.path.splitext(name)
    if not stem:  # a name like ".png"
        stem, ext = ext.lstrip(".") or "image", ""
    if stem.upper() in _WINDOWS_RESERVED:
        stem = f"{stem}_"
    ext = _truncate_bytes(ext, 16)
    stem = _truncate_bytes(stem, MAX_ORIGINAL_BYTES - len(ext.encode("utf-8"))).rstrip(" .")
    return f"{stem or 'image'}{ext}"


def _truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def unique_name(name: str, exists) -> str:
    """`name`, or `stem_2.ext`, `stem_3.ext`, ... : the first for which
    `exists(candidate)` is false. `exists` is a callable so that callers can
    check a folder, a set of names already planned, or both."""
    if not exists(name):
        return name
    stem, ext = os.path.splitext(name)
    counter = 2
    while exists(f"{stem}_{counter}{ext}"):
        counter += 1
    return f"{stem}_{counter}{ext}"

"""What deduplicate_images.py knows about one file: a fast digest of its
bytes, a cheap integrity check, and (only when needed) its perceptual hash;
plus the hash cache that makes a re-run near instant.

The cache is a hidden SQLite file in the *output* folder (sources are never
written to), keyed by source path, size and modification time (ns): a file
that changed in any of them is read again.
"""
import hashlib
import io
import sqlite3
import struct
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CACHE_FILE = ".dedupe-hash-cache.sqlite3"
# Below these many jobs a process pool costs more than it saves.
PARALLEL_MIN_CHECKS = 400
PARALLEL_MIN_DECODES = 8


@dataclass(frozen=True)
class FileCheck:
    """Digest and integrity verdict of one file (error is None when sound)."""

    digest: Optional[str]
    error: Optional[str]

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class HashResult:
    phash: Optional[str]
    error: Optional[str]


def check_file(path) -> FileCheck:
    """Read the file once: blake2b digest plus an integrity check of the
    image: a PNG's chunk CRCs up to IEND (far cheaper than decoding the
    pixels); formats without checksums are decoded (a JPEG at 1/8 scale).

    Limit: a PNG whose chunks carry correct CRCs over bad compressed data
    (a broken encoder, not transfer or disk damage) passes this check; only
    --no-fast-path, which decodes every file, reports it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileCheck(None, f"cannot read: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        _verify_structure(data)
    except Exception as exc:  # Pillow raises many kinds for bad files
        return FileCheck(digest, f"corrupt image: {_describe(exc)}")
    return FileCheck(digest, None)


def _verify_structure(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format
        image.verify()  # PNG: every chunk's CRC; other formats: header only
    extra = _TAIL_CHECKS.get(fmt)
    if extra:
        extra(data)
    if fmt != "PNG":
        # Without a checksum (JPEG, GIF, WebP...) damaged data can pass the
        # checks above and still fail to decode; decoding here keeps the
        # fast path's answer equal to hashing every file. A JPEG decodes at
        # 1/8 scale: its entropy data is still read to the end.
        with Image.open(io.BytesIO(data)) as image:
            if fmt in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()


def _jpeg_tail(data: bytes) -> None:
    # A truncated JPEG has no end-of-image marker after its last scan.
    if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ValueError("JPEG data truncated (no end-of-image marker)")


def _gif_tail(data: bytes) -> None:
    if not data.rstrip(b"\x00").endswith(b"\x3b"):
        raise ValueError("GIF data truncated (no trailer)")


def _webp_tail(data: bytes) -> None:
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if len(data) < declared:
        raise ValueError(f"WebP data truncated ({len(data)} of {declared} bytes)")


def _bmp_tail(data: bytes) -> None:
    declared = struct.unpack("<I", data[2:6])[0]
    if len(data) < declared:
        raise ValueError(f"BMP data truncated ({len(data)} of {declared} bytes)")


_TAIL_CHECKS = {"JPEG": _jpeg_tail, "MPO": _jpeg_tail, "GIF": _gif_tail,
                "WEBP": _webp_tail, "BMP": _bmp_tail}


def compute_phash(path) -> HashResult:
    """imagehash.phash of the decoded image, as a hex string."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(path) as image:
            return HashResult(str(imagehash.phash(image)), None)
    except Exception as exc:
        return HashResult(None, f"cannot decode: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def hamming(hex_a: str, hex_b: str) -> int:
    return bin(int(hex_a, 16) ^ int(hex_b, 16)).count("1")


class WorkerDied(Exception):
    """A worker process ended without an answer (killed, out of memory)."""


class Workers:
    """A process pool started only when a batch is big enough to pay for it."""

    def __init__(self, count: int):
        self.count = max(1, count)
        self._pool = None

    def map(self, func, items, minimum):
        items = list(items)
        if self.count == 1 or len(items) < minimum:
            return [func(item) for item in items]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.count)
        chunk = max(1, min(64, len(items) // (self.count * 4)))
        try:
            return list(self._pool.map(func, items, chunksize=chunk))
        except BrokenProcessPool:
            self._pool = None
            raise WorkerDied("a worker process stopped without an answer (out of memory?); "
                             "try again with fewer --workers") from None

    def close(self, wait=True):
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # On Ctrl-C do not wait for queued work.
        self.close(wait=exc_type is None)


def file_stamp(stat) -> str:
    """When a cached result is still good for the file at a path.

    Size and modification time alone are not enough: a rename can put a
    different image with the same size and mtime (two pasted `image.png`
    saved in one second, names shifted by the timestamp tools) at a path the
    cache knows. A rename or copy changes the inode or its change time."""
    return f"{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


# files_v2: keyed by file_stamp (v1 used the modification time alone).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files_v2 (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    stamp    TEXT NOT NULL,
    digest   TEXT,
    error    TEXT,
    phash    TEXT
);
"""


class HashCache:
    """Cached FileCheck and pHash per (path, size, file_stamp).

    `readonly` (dry runs) reads an existing cache and never writes one.
    A damaged or unwritable cache is not fatal: the run just hashes again.
    """

    def __init__(self, folder, readonly=False):
        self.path = Path(folder) / CACHE_FILE
        self.readonly = readonly
        self.warning = None
        self._rows = {}
        self._dirty = {}
        self._load()

    def _load(self):
        if not self.path.exists():
            return
        try:
            # as_uri() escapes "#", "?" and "%" in folder names, which a
            # plain "file:" URI would read as its own syntax.
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                rows = db.execute("SELECT path, size, stamp, digest, error, phash FROM files_v2")
                self._rows = {row[0]: row[1:] for row in rows}
            finally:
                db.close()
        except sqlite3.Error as exc:
            self.warning = f"hash cache {self.path} unreadable ({exc}); hashing again"
            self._rows = {}

    def _fresh(self, path, size, stamp):
        row = self._rows.get(str(path))
        if row and row[0] == size and row[1] == stamp:
            return row
        return None

    def get_check(self, path, size, stamp) -> Optional[FileCheck]:
        row = self._fresh(path, size, stamp)
        if row is None or (row[2] is None and row[3] is None):
            return None
        return FileCheck(row[2], row[3])

    def get_phash(self, path, size, stamp) -> Optional[str]:
        row = self._fresh(path, size, stamp)
        return row[4] if row else None

    def put(self, path, size, stamp, check: FileCheck, phash=None):
        key = str(path)
        row = (size, stamp, check.digest, check.error, phash)
        if self._rows.get(key) != row:
            self._rows[key] = row
            self._dirty[key] = row

    def save(self):
        """Write new rows in one transaction; returns a warning or None."""
        if self.readonly or not self._dirty:
            return None
        try:
            db = sqlite3.connect(self.path)
            try:
                with db:
                    db.executescript(_SCHEMA)
                    db.executemany(
                        "INSERT OR REPLACE INTO files_v2 VALUES (?, ?, ?, ?, ?, ?)",
                        [(key, *row) for key, row in self._dirty.items()])
            finally:
                db.close()
        except sqlite3.Error as exc:
            return f"hash cache not saved to {self.path}: {exc}"
        self._dirty = {}
        return None


class NoCache(HashCache):
    """--no-cache: remembers nothing."""

    def __init__(self):
        self.path, self.readonly, self.warning = None, True, None
        self._rows, self._dirty = {}, {}

    def put(self, *args, **kwargs):
        pass

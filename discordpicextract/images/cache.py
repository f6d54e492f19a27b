"""Dedupe's hash cache: what a run learnt about each file (digest,
integrity verdict, pHash), so that a re-run reads only what changed.

A hidden SQLite file in the *output* folder (sources are never written to),
keyed by the file's identity (`file_identity`: device, inode, size,
modification time), not by its name: the timestamp tools rename files all
the time (adjust, then undo; the nightly flow shifts names and dedupes
again), and a renamed file is still the same bytes. The path is kept as a
hint for people reading the cache, never to accept a row.
"""
import sqlite3
from pathlib import Path
from typing import Optional

from discordpicextract.images.integrity import FileCheck

CACHE_FILE = ".dedupe-hash-cache.sqlite3"


def file_identity(stat) -> tuple:
    """When a cached result is still good for a file, whatever its name.

    A rename keeps all four; writing the file changes its modification time
    (or size); another file has another inode. (Two different images can
    share a size and an mtime, two pasted `image.png` saved in one second,
    but not an inode while both exist.)"""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def file_stamp(stat) -> str:
    """A path-keyed record's freshness stamp (the review's thumbnails):
    a rename or copy changes the inode or its change time, so a different
    image put at a known path with the same size and mtime is not taken
    for the one recorded there."""
    return f"{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


# files_v3: keyed by identity (v2 by path + mtime:ctime:inode, which a
# rename changes; v1 by path + mtime). Older tables are left unread.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files_v3 (
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    path     TEXT,
    digest   TEXT,
    error    TEXT,
    phash    TEXT,
    PRIMARY KEY (dev, ino)
);
"""


def db_key(path) -> str:
    """A path as SQLite can store it: a name that is not valid UTF-8 (bytes
    Python keeps as surrogate escapes) is written with \\xNN escapes."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class HashCache:
    """Cached FileCheck and pHash per file identity.

    `readonly` (dry runs) reads an existing cache and never writes one.
    A damaged or unwritable cache is not fatal: the run just hashes again.

    Two ways in: `get_check`/`get_phash`/`put` (a dict of every row, loaded
    on first use: the review's few hundred look-ups), and `lookup` /
    `put_many` (dedupe's whole folder: the table is streamed once against
    the files listed and new rows are streamed out, so a run of 100,000
    files never holds the table as Python objects).
    """

    def __init__(self, folder, readonly=False):
        self.path: Optional[Path] = Path(folder) / CACHE_FILE
        self.readonly = readonly
        self.warning: Optional[str] = None
        # (dev, ino) -> (size, mtime_ns, digest, error, phash); None until first needed
        self._rows: Optional[dict] = None
        self._dirty: dict[tuple, tuple] = {}
        self._pending: list = []   # iterables given to put_many, written by save()

    def _connect(self):
        # as_uri() escapes "#", "?" and "%" in folder names, which a
        # plain "file:" URI would read as its own syntax.
        assert self.path is not None
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)

    def _stream(self):
        """Every row as (dev, ino, size, mtime_ns, digest, error, phash);
        an unreadable cache yields nothing and sets `warning`."""
        path = self.path
        if path is None or not path.exists():
            return
        try:
            db = self._connect()
            try:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'files_v3'").fetchone():
                    yield from db.execute("SELECT dev, ino, size, mtime_ns, digest, error, phash FROM files_v3")
            finally:
                db.close()
        except sqlite3.Error as exc:
            self.warning = f"hash cache {self.path} unreadable ({exc}); hashing again"

    def lookup(self, wanted: dict):
        """`wanted` is {inode: value}; yields (value, row) for each that has
        a row, the row as stored, (dev, ino, size, mtime_ns, digest, error,
        phash), not copied: the caller checks that device, size and mtime
        are still the file's (a row holds no check when digest and error are
        both None). Keyed by inode alone, the files' own numbers serve as
        keys (no tuple per file)."""
        if self._rows is not None:
            rows = ((dev, ino, *row) for (dev, ino), row in self._rows.items())
        else:
            rows = self._stream()
        for row in rows:
            value = wanted.get(row[1])
            if value is not None:
                yield value, row

    def _load(self):
        if self._rows is None:
            self._rows = {(row[0], row[1]): row[2:] for row in self._stream()}
            if self.warning:
                self._rows = {}
        return self._rows

    def _fresh(self, identity):
        dev, ino, size, mtime_ns = identity
        row = self._load().get((dev, ino))
        if row and row[0] == size and row[1] == mtime_ns:
            return row
        return None

    def get_check(self, identity) -> Optional[FileCheck]:
        row = self._fresh(identity)
        if row is None or (row[2] is None and row[3] is None):
            return None
        return FileCheck(row[2], row[3])

    def get_phash(self, identity) -> Optional[str]:
        row = self._fresh(identity)
        return row[4] if row else None

    def put(self, identity, path, check: FileCheck, phash=None):
        dev, ino, size, mtime_ns = identity
        row = (size, mtime_ns, check.digest, check.error, phash)
        rows = self._load()
        if rows.get((dev, ino)) != row:
            rows[(dev, ino)] = row
            self._dirty[(dev, ino)] = (db_key(path), row)

    def put_many(self, rows) -> None:
        """Rows to write at save(): an iterable of (identity, path, FileCheck,
        phash), consumed only then (a generator keeps memory flat)."""
        self._pending.append(rows)

    def _all_dirty(self):
        for (dev, ino), (path, row) in self._dirty.items():
            yield (dev, ino, row[0], row[1], path, *row[2:])
        for rows in self._pending:
            for (dev, ino, size, mtime_ns), path, check, phash in rows:
                yield (dev, ino, size, mtime_ns, db_key(path), check.digest, check.error, phash)

    def save(self):
        """Write new rows in one transaction; returns a warning or None."""
        if self.readonly or self.path is None or not (self._dirty or self._pending):
            self._pending = []
            return None
        if self.path.is_symlink():   # SQLite would write through it, out of the folder
            self._pending = []
            return f"hash cache not saved to {self.path}: it is a link (not followed)"
        try:
            db = sqlite3.connect(self.path)
            try:
                with db:
                    db.executescript(_SCHEMA)
                    db.executemany("INSERT OR REPLACE INTO files_v3 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   self._all_dirty())
            finally:
                db.close()
        except (sqlite3.Error, OSError, ValueError) as exc:
            return f"hash cache not saved to {self.path}: {exc}"
        finally:
            self._pending = []
        self._dirty = {}
        return None


class NoCache(HashCache):
    """--no-cache: remembers nothing."""

    def __init__(self):
        self.path: Optional[Path] = None
        self.readonly, self.warning = True, None
        self._rows, self._dirty, self._pending = {}, {}, []

    def put(self, *args, **kwargs):
        pass

    def put_many(self, rows) -> None:
        pass

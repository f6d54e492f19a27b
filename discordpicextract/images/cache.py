"""Dedupe's hash cache: what a run learnt about each file (digest,
integrity verdict, pHash), so that a re-run is near instant.

A hidden SQLite file in the *output* folder (sources are never written to),
keyed by source path, size and `file_stamp`: a file that changed in any of
them is read again.
"""
import sqlite3
from pathlib import Path
from typing import Optional

from discordpicextract.images.integrity import FileCheck

CACHE_FILE = ".dedupe-hash-cache.sqlite3"


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
        self.path: Optional[Path] = Path(folder) / CACHE_FILE
        self.readonly = readonly
        self.warning: Optional[str] = None
        self._rows: dict[str, tuple] = {}
        self._dirty: dict[str, tuple] = {}
        self._load()

    def _load(self):
        path = self.path
        if path is None or not path.exists():
            return
        try:
            # as_uri() escapes "#", "?" and "%" in folder names, which a
            # plain "file:" URI would read as its own syntax.
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
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
        if self.readonly or not self._dirty or self.path is None:
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
        self.path: Optional[Path] = None
        self.readonly, self.warning = True, None
        self._rows, self._dirty = {}, {}

    def put(self, *args, **kwargs):
        pass

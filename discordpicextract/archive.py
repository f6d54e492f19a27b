"""The download archive: a small SQLite file inside a download folder that
remembers which Discord items are already saved, and under which name.

Keyed by item (message ID + attachment ID or URL), so that a re-run skips an
image even after the timestamp tools renamed it; those tools call
`record_renames` so the archive keeps pointing at the current name. A row is
written only after its file is in place.
"""
import sqlite3
from pathlib import Path

import config

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    item_key   TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    filename   TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    saved_at   TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS downloads_filename ON downloads(filename);
"""


class ArchiveError(sqlite3.DatabaseError):
    """The archive file exists but cannot be used (not SQLite, damaged)."""


def archive_path(folder) -> Path:
    return Path(folder) / config.ARCHIVE_FILE


class DownloadArchive:
    """Open (and create) the archive of `folder`. Use from one thread."""

    def __init__(self, folder):
        self.path = archive_path(folder)
        try:
            self._db = sqlite3.connect(self.path)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from None

    def _unusable(self, exc) -> ArchiveError:
        return ArchiveError(f"cannot use the download archive {self.path}: {exc} (move that file "
                            f"away to start a new one)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._db.close()

    def keys(self) -> set:
        return {row[0] for row in self._db.execute("SELECT item_key FROM downloads")}

    def __contains__(self, item_key) -> bool:
        row = self._db.execute("SELECT 1 FROM downloads WHERE item_key = ?", (item_key,))
        return row.fetchone() is not None

    def filenames(self) -> set:
        return {row[0] for row in self._db.execute("SELECT filename FROM downloads")}

    def filename_of(self, item_key):
        row = self._db.execute("SELECT filename FROM downloads WHERE item_key = ?", (item_key,))
        found = row.fetchone()
        return found[0] if found else None

    def add(self, item_key, message_id, filename, size, sha256):
        self.add_many([(item_key, message_id, filename, size, sha256)])

    def add_many(self, rows):
        """Add (item_key, message_id, filename, size, sha256) rows in one
        transaction: one disk sync for a batch instead of one per file."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO downloads(item_key, message_id, filename, size, sha256)"
                " VALUES (?, ?, ?, ?, ?)",
                [(key, str(mid), name, size, digest) for key, mid, name, size, digest in rows],
            )

    def rename(self, mapping):
        """Point rows at new names. `mapping` is {old: new} applied all at
        once, so a chain or a swap (a->b, b->a) lands right in any order."""
        mapping = dict(mapping)
        rows = self._db.execute("SELECT item_key, filename FROM downloads").fetchall()
        updates = [(mapping[name], key) for key, name in rows if name in mapping]
        with self._db:
            self._db.executemany("UPDATE downloads SET filename = ? WHERE item_key = ?", updates)


def record_renames(folder, mapping) -> None:
    """Tell the archive of `folder`, if it has one, that files were renamed
    ({old name: new name}, applied at once)."""
    if not archive_path(folder).exists():
        return
    with DownloadArchive(folder) as archive:
        archive.rename(mapping)

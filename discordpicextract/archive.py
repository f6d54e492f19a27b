"""The download archive: a small SQLite file inside a download folder that
remembers which Discord items are already saved, and under which name.

Keyed by item (message ID + attachment ID or URL), so that a re-run skips an
image even after the timestamp tools renamed it; those tools call
`record_renames` so the archive keeps pointing at the current name. A row is
written only after its file is in place.

A file name that is not UTF-8 (kept by Python as surrogate escapes, which
SQLite's TEXT cannot hold) is stored as its bytes, a BLOB: `stored_name`
and `name_from_db` convert at the boundary.
"""
import os
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
# Added later: the channel (or thread) of the item's message, for --since-last.
_CHANNEL_COLUMN = "ALTER TABLE downloads ADD COLUMN channel_id TEXT"


class ArchiveError(sqlite3.DatabaseError):
    """The archive file exists but cannot be used (not SQLite, damaged)."""


class ArchiveFull(ArchiveError):
    """The archive cannot be written: the disk is full (or failing)."""


_FULL = ("database or disk is full", "disk i/o error")


def stored_name(name):
    """`name` as the archive stores it: text, or its bytes when not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def name_from_db(value) -> str:
    """A stored file name back as Python names files (surrogate escapes)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def archive_path(folder) -> Path:
    return Path(folder) / config.ARCHIVE_FILE


class DownloadArchive:
    """Open (and create) the archive of `folder`. Use from one thread.

    `fast_commits` (the downloader, which commits every saved file's row
    before reporting it saved): the journal goes to WAL mode without a disk
    sync per commit (a commit survives the process being killed; a power
    cut may lose the last rows, whose files the next download finds again
    by content) and back to a plain rollback journal on close, so that
    readers find an ordinary file."""

    def __init__(self, folder, fast_commits=False):
        self.path = archive_path(folder)
        self.fast_commits = fast_commits
        if self.path.is_symlink():   # SQLite would write through it, out of the folder
            raise ArchiveError(f"the download archive {self.path} is a link; not followed (move it away "
                               f"to start a new one)")
        try:
            self._db = sqlite3.connect(self.path)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(downloads)")}
            if "channel_id" not in columns:
                with self._db:
                    self._db.execute(_CHANNEL_COLUMN)
            if fast_commits:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from None

    def _unusable(self, exc) -> ArchiveError:
        if any(words in str(exc).lower() for words in _FULL):
            return ArchiveFull(f"cannot write the download archive {self.path}: {exc} "
                               "(free some space and run again)")
        return ArchiveError(f"cannot use the download archive {self.path}: {exc} (move that file "
                            f"away to start a new one)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.fast_commits:
            try:
                self._db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error:
                pass  # still WAL: SQLite reads it as well, and the next close tries again
        self._db.close()

    def keys(self) -> set:
        return {row[0] for row in self._db.execute("SELECT item_key FROM downloads")}

    def __contains__(self, item_key) -> bool:
        row = self._db.execute("SELECT 1 FROM downloads WHERE item_key = ?", (item_key,))
        return row.fetchone() is not None

    def filenames(self) -> set:
        return {name_from_db(row[0]) for row in self._db.execute("SELECT filename FROM downloads")}

    def filename_of(self, item_key):
        row = self._db.execute("SELECT filename FROM downloads WHERE item_key = ?", (item_key,))
        found = row.fetchone()
        return name_from_db(found[0]) if found else None

    def add(self, item_key, message_id, filename, size, sha256, channel_id=None):
        self.add_many([(item_key, message_id, filename, size, sha256, channel_id)])

    def add_many(self, rows):
        """Add (item_key, message_id, filename, size, sha256[, channel_id])
        rows in one transaction: one disk sync for a batch instead of one per file."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO downloads(item_key, message_id, filename, size, sha256, channel_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(row[0], str(row[1]), stored_name(row[2]), row[3], row[4],
                  str(row[5]) if len(row) > 5 and row[5] else None) for row in rows],
            )

    def newest_message(self, channel_id):
        """The highest message ID archived for `channel_id`, or None."""
        found = self._db.execute("SELECT MAX(CAST(message_id AS INTEGER)) FROM downloads WHERE channel_id = ?",
                                 (str(channel_id),)).fetchone()
        return found[0] if found and found[0] is not None else None

    def rename(self, mapping):
        """Point rows at new names. `mapping` is {old: new} applied all at
        once, so a chain or a swap (a->b, b->a) lands right in any order:
        the pairs go into a temporary table and one UPDATE reads each row's
        new name from it (no row of the archive is held in memory)."""
        with self._db:
            # No column type: a name stored as its bytes (not UTF-8) stays a BLOB and matches its row.
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS renames (old PRIMARY KEY, new NOT NULL)")
            self._db.execute("DELETE FROM temp.renames")
            pairs = mapping.items() if isinstance(mapping, dict) else dict(mapping).items()
            self._db.executemany("INSERT OR REPLACE INTO temp.renames(old, new) VALUES (?, ?)",
                                 ((stored_name(old), stored_name(new)) for old, new in pairs))
            self._db.execute("UPDATE downloads SET filename = (SELECT new FROM temp.renames WHERE old = filename)"
                             " WHERE filename IN (SELECT old FROM temp.renames)")
            self._db.execute("DELETE FROM temp.renames")


def record_renames(folder, mapping) -> None:
    """Tell the archive of `folder`, if it has one, that files were renamed
    ({old name: new name}, applied at once)."""
    if not archive_path(folder).exists() or archive_path(folder).is_symlink():
        return   # none of ours (a link is never written through)
    with DownloadArchive(folder) as archive:
        archive.rename(mapping)

"""The folder's rename journal (`config.JOURNAL_FILE`, JSON lines, fsync):
each batch is written whole before any file moves, then its progress and
its end. Reading it back gives the batches (`read_journal`) and the one left
unfinished by a crash (`pending_batch`). The journal file is also the
folder's lock: one rename batch at a time."""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import config
from discordpicextract.errors import BusyError, UsageError
from discordpicextract.renames.plan import Move, Skip

# A step as journaled: (src, dst, move index, inode or None).
JournalStep = tuple


@dataclass
class Batch:
    """A batch as the journal tells it."""

    id: str
    label: str
    created: str
    moves: list[Move]
    steps: list[JournalStep]
    undoes: Optional[str] = None
    recovers: Optional[str] = None
    update_archive: bool = True
    failed: dict[int, str] = field(default_factory=dict)   # step index -> reason
    archived: bool = False
    status: Optional[str] = None  # "completed", "reverted" or None (unfinished)
    skipped: list[Skip] = field(default_factory=list)     # at apply time

    def done_moves(self) -> list[Move]:
        failed_moves = {self.steps[i][2] for i in self.failed}
        # A batch finished by `--recover complete` logs its failures only in
        # its end record.
        skipped = {(skip.name, skip.target) for skip in self.skipped}
        return [move for i, move in enumerate(self.moves)
                if i not in failed_moves and (move.old, move.new) not in skipped]


def journal_path(folder) -> Path:
    return Path(folder) / config.JOURNAL_FILE


def read_journal(folder) -> list[Batch]:
    """The batches of `folder`'s journal, oldest first. A torn line (a crash
    while writing it) is ignored: no file moves before its line is complete
    and synced. An unreadable journal is a UsageError."""
    path = journal_path(folder)
    batches: dict[str, Batch] = {}
    try:
        with open(path, "rb") as handle:
            for line in handle:
                try:
                    _apply_record(batches, json.loads(line.decode("utf-8")))
                except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                    continue  # torn or damaged line
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot read the rename journal {path}: {exc.strerror or exc}") from None
    return list(batches.values())


def _apply_record(batches, record):
    event, batch_id = record.get("event"), record.get("batch")
    if event == "begin":
        batches[batch_id] = Batch(
            batch_id, record.get("label", ""), record.get("created", ""),
            [Move(old, new) for old, new in record["moves"]],
            [tuple(step) for step in record["steps"]],
            record.get("undoes"), record.get("recovers"), record.get("update_archive", True))
        return
    batch = batches.get(batch_id)
    if batch is None:
        return
    if event == "step" and not record.get("ok", True):
        batch.failed[record["i"]] = record.get("reason", "")
    elif event == "archive":
        batch.archived = True
    elif event == "end":
        batch.status = record.get("status", "completed")
        batch.skipped = [Skip(*item) for item in record.get("skipped", [])]


class BatchRunning(BusyError):
    """Another process is renaming in this folder right now (exit 2: the
    run refused to start, nothing was moved in that folder)."""


class Journal:
    """The folder's journal, opened for appending and locked for the time of
    one batch, so two runs never interleave their renames (POSIX flock; the
    lock dies with the process, so a crash leaves no stale lock). Use it as
    a context manager: leaving syncs and unlocks."""

    def __init__(self, folder):
        path = journal_path(folder)
        try:
            # Held open (and locked) for the whole batch, closed by close().
            self.handle = open(path, "a+b")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write the rename journal {path}: {exc.strerror or exc}") from None
        self._lock(folder)
        size = self.handle.seek(0, os.SEEK_END)
        if size == 0:
            sync_dir(folder)  # the journal's own name must survive a crash too
        else:
            # A line torn by a crash must not swallow the next record.
            self.handle.seek(size - 1)
            if self.handle.read(1) != b"\n":
                self.handle.write(b"\n")

    def _lock(self, folder):
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock
            return
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise BatchRunning(f"{folder}: another rename is running in this folder; "
                               f"try again when it has finished") from None

    def write(self, record, sync=False):
        # ASCII escapes keep names that are not valid UTF-8 (surrogate escapes) intact
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self.handle.write(line.encode("utf-8"))
        if sync:
            self.sync()

    def sync(self):
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self):
        self.sync()
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def close_batch(folder, batch_id, status) -> None:
    """Write the end record of `batch_id` with `status` ("reverted")."""
    with Journal(folder) as journal:
        journal.write({"event": "end", "batch": batch_id, "status": status}, sync=True)


def sync_dir(folder) -> None:
    """Make the renames themselves durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pending_batch(folder) -> Optional[Batch]:
    """The batch of `folder` that started and neither completed nor was
    recovered, or None."""
    batches = read_journal(folder)
    # A recovery that is itself unfinished is the pending one (it comes
    # later); one that was reverted gives its batch back.
    recovered = {batch.recovers for batch in batches if batch.recovers and batch.status != "reverted"}
    for batch in reversed(batches):
        if batch.status is None and batch.id not in recovered:
            return batch
    return None


def pending_message(folder, batch) -> str:
    return (f"{folder}: an unfinished rename batch {batch.id} ({batch.label or 'no label'}, started {batch.created}) "
            f"must be recovered first: rerun with --recover complete (finish it) "
            f"or --recover revert (put every name back)")

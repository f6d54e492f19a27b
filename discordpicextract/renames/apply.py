"""Carrying out a rename plan: `apply_plan` writes the whole batch to the
folder's journal (fsync) before moving any file, moves files without ever
replacing one, records the outcome and tells the download archive about the
new names. The begin record also holds the inode of each move's file, so an
interrupted batch can be found exactly on disk (see `recovery`)."""
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Optional

from discordpicextract import archive, locking, messages, records
from discordpicextract.errors import UsageError
from discordpicextract.fileops import move_no_clobber, renamer_at, renames_at_supported
from discordpicextract.renames.journal import (
    Batch,
    Journal,
    JournalError,
    compact_steps,
    note_history_names,
    rotate_if_finished,
    sync_dir,
)
from discordpicextract.renames.plan import TEMP_PREFIX, Move, PlanSteps, RenamePlan, Skip

# The journal gets no line per successful step: recovery finds every file
# by the inode the begin record holds, not by progress lines. A failed step
# is written (its reason is reported), synced with the end of the folder.


@dataclass
class ApplyResult:
    folder: str
    batch_id: str
    done: list[Move] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)   # plan + apply time
    unparsed: list[str] = field(default_factory=list)
    unselected: int = 0
    interrupted: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)   # for the script to show; the renames stand


@dataclass
class FolderOutcome:
    """A folder's plan and, once applied, what happened."""

    folder: str
    plan: RenamePlan
    result: Optional[ApplyResult] = None

    @property
    def done(self) -> list:
        """Moves done, or (before apply, a dry run) planned."""
        return self.result.done if self.result else self.plan.moves

    @property
    def skipped(self) -> list[Skip]:
        return self.result.skipped if self.result else self.plan.skipped

    @property
    def warnings(self) -> list[str]:
        return self.result.warnings if self.result else []


def apply_plan(folder, plan: RenamePlan, *, label="", undoes=None, recovers=None,
               update_archive=True, stop_after=None) -> ApplyResult:
    """Journal the batch, then rename (see apply_batch). `stop_after` (tests)
    stops after that many steps, leaving the batch unfinished as a crash would."""
    return apply_batch([(folder, plan)], label=label, undoes=undoes, recovers=recovers,
                       update_archive=update_archive, stop_after=stop_after)[0]


def apply_batch(parts, *, label="", undoes=None, recovers=None, update_archive=True,
                stop_after=None) -> list[ApplyResult]:
    """Carry out one run's batch over several folders: `parts` is
    [(folder, plan)], the plans sharing one batch id.

    Every folder's lock is held throughout, and each plan is checked again
    under it (a plan made before another run renamed files is refused, not
    applied on top), unless it was made under this very hold (see
    RenamePlan.hold): then the listing it was made from stands. Every folder with something to do journals the whole
    batch (naming all its folders) before any file moves in any of them, so
    a crash anywhere leaves a record in each that recovery can finish or
    roll back as one."""
    results = [ApplyResult(str(folder), plan.batch_id, skipped=list(plan.skipped),
                           unparsed=list(plan.unparsed), unselected=plan.unselected) for folder, plan in parts]
    active = [(Path(folder), plan, result) for (folder, plan), result in zip(parts, results) if plan.steps]
    if not active:
        return results
    with locking.hold_all([folder for folder, _plan, _result in active], "renames"):
        inodes = [_inodes_under_hold(folder, plan) for folder, plan, _result in active]
        everyone = [os.path.realpath(folder) for folder, _plan, _result in active]
        journals = []
        try:
            for (folder, plan, _result), found in zip(active, inodes):
                journal = Journal(folder)
                journals.append(journal)
                created = datetime.now(timezone.utc).isoformat(timespec="seconds")
                batch = Batch(plan.batch_id, label, created, plan.moves, compact_steps(plan.moves, plan.steps, found),
                              undoes, recovers, update_archive, folders=everyone)
                journal.write_begin(batch, {
                    "event": "begin", "batch": plan.batch_id, "label": label, "created": created,
                    "undoes": undoes, "recovers": recovers, "update_archive": update_archive,
                    "folders": everyone,
                }, sync=True)
            del inodes
            budget = [stop_after]
            finished = True
            for (folder, plan, result), journal in zip(active, journals):
                if not _run_steps(folder, plan, journal, plan.steps, update_archive, result, budget):
                    finished = False
                    break
        except BaseException:
            for journal in journals:
                journal.__exit__(JournalError, None, None)  # closed; the first error is the one told
            raise
        for journal in journals:
            journal.close()
        if finished:   # in every folder: no history file may hold an unfinished part
            for folder, _plan, _result in active:
                rotate_if_finished(folder)
    return results


def _run_steps(folder, plan, journal, steps, update_archive, result, budget) -> bool:
    """The moves of one folder, then its end; False when `budget[0]` steps
    (tests' stop_after, over the whole batch) ran out first."""
    failed: dict[int, str] = {}
    failed_set: set[int] = set()
    with _Mover(folder) as mover:
        move_one = mover.move
        start = 0
        if budget[0] is None:   # a real run: every step at once until one fails
            start, exc = _moves_until_one_fails(move_one, steps)
            if exc is not None:
                src, dst, move, _inode = steps[start]
                failed[start] = failed_reason(mover, src, dst, exc)
                failed_set.add(move)
                journal.write({"event": "step", "batch": plan.batch_id, "i": start, "ok": False,
                               "reason": failed[start]})
                start += 1
        for i in range(start, len(steps)):   # by index: nothing to step over after a real run
            src, dst, move, _inode = steps[i]
            if budget[0] is not None:
                if budget[0] <= 0:
                    result.interrupted = True
                    return False
                budget[0] -= 1
            if move not in failed_set:
                try:
                    move_one(src, dst)
                    continue
                except (OSError, KeyboardInterrupt) as exc:
                    reason = failed_reason(mover, src, dst, exc)
            else:
                reason = "an earlier step of this rename failed"
            failed[i] = reason
            failed_set.add(move)
            journal.write({"event": "step", "batch": plan.batch_id, "i": i, "ok": False, "reason": reason})
    journal.sync()
    finish(folder, journal, plan.batch_id, plan.moves, failed_moves(steps, failed), update_archive, result)
    return True


def _moves_until_one_fails(move_one, steps) -> tuple[int, Optional[BaseException]]:
    """Run `steps` in order with no other work per step (100,000s of
    them); (the index of the first that raised and its error, not retried),
    or (len(steps), None) when all went."""
    i = 0
    pairs = steps.pairs() if isinstance(steps, PlanSteps) else map(itemgetter(0, 1), steps)
    try:
        for i, (src, dst) in enumerate(pairs):  # noqa: B007 (the except reads it)
            move_one(src, dst)
    except (OSError, KeyboardInterrupt) as exc:
        return i, exc
    return len(steps), None


def _inodes_under_hold(folder, plan: RenamePlan) -> list:
    """The inode of each move's file, read under the lock now held: the
    plan's own when it was made under this hold (a plan is trusted once),
    else from check_still_fits."""
    hold, plan.hold = plan.hold, None
    if hold is not None and plan.inodes is not None and hold is locking.hold_token(folder):
        if plan.hidden is not None:   # the history files among them: none to list for again
            note_history_names(folder, plan.hidden)
        return plan.inodes
    return check_still_fits(folder, plan)


def check_still_fits(folder, plan: RenamePlan) -> list:
    """Under the lock, every file the plan moves must still be there. If
    one is gone, another run renamed files since the plan was made: refuse
    rather than shift files twice. (A target name taken meanwhile is a
    per-file skip at its step, as before: the move never overwrites.)
    Returns the inode of each move's file, by move index, from the same
    listing (the inode recovery finds the file by; read from the folder
    listing as recovery reads it, not one lstat per file)."""
    index = dict(zip(map(_old, plan.moves), range(len(plan.moves))))   # made in C
    inodes: list = [None] * len(plan.moves)
    others = []   # the few other names: the folder's history files among them
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                i = index.get(entry.name)
                if i is not None:
                    inodes[i] = entry.inode()
                else:
                    others.append(entry.name)
    except OSError as exc:
        raise UsageError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    del index
    note_history_names(folder, others)
    gone = [move.old for move, inode in zip(plan.moves, inodes) if inode is None] if None in inodes else []
    if gone:
        raise PlanOutdated(f"{folder} changed since the rename plan was made ({len(gone)} file(s) gone, "
                           f"e.g. {gone[0]}): another run renamed files meanwhile? Nothing was renamed; "
                           "run again to plan afresh")
    return inodes


_old = itemgetter(0)


class PlanOutdated(UsageError):
    """The folder changed between planning and applying (exit 2, nothing moved)."""


class _Mover:
    """No-clobber renames inside one folder: one system call on the names
    where the platform has it (the folder held open), else
    fileops.move_no_clobber on the paths."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.fd: Optional[int] = None
        self._rename_at = None
        if renames_at_supported():
            try:
                self.fd = os.open(self.folder, os.O_RDONLY)
            except OSError:
                self.fd = None
            else:
                self._rename_at = renamer_at(self.fd)

    def move(self, src, dst) -> None:
        rename_at = self._rename_at
        if rename_at is not None:
            if rename_at(src, dst):
                return
            self.close()   # this file system does not do it: paths from now on
        move_no_clobber(os.path.join(self.folder, src), os.path.join(self.folder, dst))  # str: no Path per file

    def close(self):
        self._rename_at = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def failed_reason(mover, src, dst, exc) -> str:
    """Why a step failed (it is skipped and reported). Ctrl-C is raised
    again, once the step is settled."""
    if isinstance(exc, KeyboardInterrupt):
        # Ctrl-C lands right after the link, before the unlink, as often
        # as not: finish the step so no file is left under two names.
        settle_half_move(Path(mover.folder), src, dst)
        raise exc
    if isinstance(exc, FileExistsError):
        return f"target {dst} appeared meanwhile (left untouched)"
    if isinstance(exc, FileNotFoundError):
        return f"{src} vanished meanwhile"
    return f"rename failed: {exc.strerror or exc}"


def settle_half_move(folder, src, dst, inode=None) -> bool:
    """A move stopped between its hard link and its unlink leaves one file
    under both names: drop the source name (the file itself stays)."""
    try:
        at_src, at_dst = os.lstat(folder / src), os.lstat(folder / dst)
    except OSError:
        return False
    if not os.path.samestat(at_src, at_dst) or (inode is not None and at_src.st_ino != inode):
        return False
    os.unlink(folder / src)
    return True


def failed_moves(steps, failed) -> dict[int, tuple[str, str]]:
    """{move index: (reason, name the file is left under)} from failed steps."""
    out: dict[int, tuple[str, str]] = {}
    for i, reason in sorted(failed.items()):
        out.setdefault(steps[i][2], (reason, steps[i][0]))
    return out


def finish(folder, journal, batch_id, moves, failed, update_archive, result: ApplyResult) -> None:
    """Report failed moves, update the download archive (and the other
    records that name the files), close the batch."""
    new_skips = []
    for move_index, (reason, left_at) in sorted(failed.items()):
        move = moves[move_index]
        note = (f"; the file is kept under the temporary name {left_at}, rename it by hand"
                if left_at.startswith(TEMP_PREFIX) and left_at != move.old else "")
        new_skips.append(Skip(move.old, move.new, reason + note))
    result.skipped += new_skips
    result.done = [move for i, move in enumerate(moves) if i not in failed] if failed else moves
    if update_archive and result.done:
        # Synced before a record changes (recovery must know they follow
        # the new names); with no record there is nothing to order it before.
        has_records = _has_records(folder)
        journal.write({"event": "archive", "batch": batch_id}, sync=has_records)
        if has_records:   # else no {old: new} of 100,000 names is made for nothing
            result.warnings += update_records(folder, {move.old: move.new for move in result.done})
    journal.write({"event": "end", "batch": batch_id, "status": "completed",
                   "skipped": [[s.name, s.target, s.reason] for s in new_skips]}, sync=True)
    sync_dir(folder)


def _has_records(folder) -> bool:
    """Whether `folder` holds a record that names its files."""
    return any(os.path.lexists(path) for path in (archive.archive_path(folder), messages.messages_path(folder),
                                                    records.record_path(folder)))


def update_records(folder, mapping) -> list[str]:
    """The download archive, messages.csv and a copy step's record follow
    renamed files ({old: new}, applied at once); a warning per record that
    could not (the renames stand)."""
    warnings = []
    try:
        archive.record_renames(folder, mapping)
    except sqlite3.Error as exc:
        warnings.append(f"{folder}: the download archive still lists the old names of "
                        f"{len(mapping)} renamed file(s): {exc}")
    return warnings + _follow_renames(folder, mapping)


def _follow_renames(folder, mapping) -> list[str]:
    """messages.csv rows and a copy step's record of what it wrote follow
    the files to their new names; returns a warning per one that could not."""
    warnings = []
    for what, follow in (("messages.csv", messages.record_renames),
                         ("the copy record", records.record_renames)):
        try:
            follow(folder, mapping)
        except OSError as exc:
            warnings.append(f"{folder}: {what} still lists the old names of {len(mapping)} renamed "
                            f"file(s): {exc.strerror or exc}")
    return warnings

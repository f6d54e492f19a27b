"""Carrying out a rename plan: `apply_plan` writes the whole batch to the
folder's journal (fsync) before moving any file, moves files without ever
replacing one, records the outcome and tells the download archive about the
new names. Each step also records the inode of the file it moves, so an
interrupted batch can be found exactly on disk (see `recovery`)."""
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from discordpicextract import archive, messages, records
from discordpicextract.fileops import move_no_clobber
from discordpicextract.renames.journal import Journal, JournalStep, sync_dir
from discordpicextract.renames.plan import TEMP_PREFIX, Move, RenamePlan, Skip, Step

# Progress lines are flushed and synced every this many steps; recovery
# relies on inodes, not on them, so losing the last few is harmless.
SYNC_EVERY = 1000


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
    """Journal the batch, then rename. `stop_after` (tests) stops after that
    many steps, leaving the batch unfinished as a crash would."""
    result = ApplyResult(str(folder), plan.batch_id, skipped=list(plan.skipped),
                         unparsed=list(plan.unparsed), unselected=plan.unselected)
    if not plan.steps:
        return result
    folder = Path(folder)
    steps = _steps_with_inodes(folder, plan.steps)
    with Journal(folder) as journal:
        journal.write({
            "event": "begin", "batch": plan.batch_id, "label": label,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "undoes": undoes, "recovers": recovers, "update_archive": update_archive,
            "moves": [[move.old, move.new] for move in plan.moves],
            "steps": [list(step) for step in steps],
        }, sync=True)
        failed: dict[int, str] = {}
        failed_set: set[int] = set()
        for i, (src, dst, move, _inode) in enumerate(steps):
            if stop_after is not None and i >= stop_after:
                result.interrupted = True
                return result
            reason = move_step(folder, src, dst, move, failed_set)
            if reason:
                failed[i] = reason
                failed_set.add(move)
            journal.write({"event": "step", "batch": plan.batch_id, "i": i, "ok": not reason,
                           **({"reason": reason} if reason else {})}, sync=(i + 1) % SYNC_EVERY == 0)
        journal.sync()
        finish(folder, journal, plan.batch_id, plan.moves, failed_moves(steps, failed),
               update_archive, result)
    return result


def _steps_with_inodes(folder, steps: list[Step]) -> list[JournalStep]:
    """(src, dst, move, inode): the inode of the file each step moves, so
    that recovery finds every file on disk without trusting progress lines."""
    inode_at: dict[str, Optional[int]] = {}
    rows = []
    for step in steps:
        inode = inode_at.pop(step.src, None)
        if inode is None:
            try:
                inode = os.lstat(folder / step.src).st_ino
            except OSError:
                inode = None
        inode_at[step.dst] = inode
        rows.append((step.src, step.dst, step.move, inode))
    return rows


def move_step(folder, src, dst, move, failed_set) -> Optional[str]:
    """Do one step; return None or the reason it was skipped. A step whose
    move already failed earlier (the first half of a cycle) is not tried."""
    if move in failed_set:
        return "an earlier step of this rename failed"
    try:
        move_no_clobber(folder / src, folder / dst)
    except FileExistsError:
        return f"target {dst} appeared meanwhile (left untouched)"
    except FileNotFoundError:
        return f"{src} vanished meanwhile"
    except OSError as exc:
        return f"rename failed: {exc.strerror or exc}"
    except KeyboardInterrupt:
        # Ctrl-C lands right after the link, before the unlink, as often
        # as not: finish the step so no file is left under two names.
        settle_half_move(folder, src, dst)
        raise
    return None


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
    result.done = [move for i, move in enumerate(moves) if i not in failed]
    mapping = {move.old: move.new for move in result.done}
    if update_archive and mapping:
        journal.write({"event": "archive", "batch": batch_id}, sync=True)
        try:
            archive.record_renames(folder, mapping)
        except sqlite3.Error as exc:  # e.g. locked by a running download: the renames stand
            result.warnings.append(f"{folder}: the download archive still lists the old names of "
                                   f"{len(mapping)} renamed file(s): {exc}")
        result.warnings += _follow_renames(folder, mapping)
    journal.write({"event": "end", "batch": batch_id, "status": "completed",
                   "skipped": [[s.name, s.target, s.reason] for s in new_skips]}, sync=True)
    sync_dir(folder)


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

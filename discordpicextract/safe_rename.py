"""The safe rename engine shared by the timestamp tools.

A batch of renames is planned first, in pure functions (`plan_renames`,
`plan_mapping`): every target is checked against the names in the folder,
two files never get the same name, a target held by a file that stays is
skipped and reported, and chains, swaps and cycles inside the batch are
ordered (through temporary names in the same folder when needed).

`apply_plan` then writes the whole batch to the folder's journal
(`config.JOURNAL_FILE`, JSON lines, fsync) before moving any file, moves
files without ever replacing one, records the outcome and tells the
download archive about the new names. Each step also records the inode of
the file it moves, so an interrupted batch can be found exactly on disk and
completed or reverted (`recover`) even if the last progress lines were not
written. `undo_last` reverts the last completed batch through a new,
journaled batch.
"""
import json
import os
import sqlite3
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import config
from discordpicextract import cli, download_archive, messages, naming, records
from discordpicextract.errors import BusyError
from discordpicextract.fileops import move_no_clobber

TEMP_PREFIX = ".dpe-rename-"
# Progress lines are flushed and synced every this many steps; recovery
# relies on inodes, not on them, so losing the last few is harmless.
SYNC_EVERY = 1000
RECOVER_MODES = ("complete", "revert")


# --- values given on the command line ---------------------------------------

def parse_date(text) -> date:
    """A `yyyy-mm-dd` date; ValueError with a message to show otherwise."""
    text = str(text).strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date {text!r} (expected yyyy-mm-dd, a real calendar date)") from None


def end_not_before(start, end):
    """`end`, unless it is before `start` (ValueError with a message to show)."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return end


def parse_hours(text) -> Decimal:
    """Hours to add: a non-zero integer or decimal number (negative
    subtracts) that is a whole number of seconds, e.g. -5, 3, 5.5, -0.25."""
    raw = str(text).strip()
    try:
        hours = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"hours must be a number, e.g. -5 or 1.5 (got {raw!r})") from None
    if not hours.is_finite():
        raise ValueError(f"hours must be a finite number (got {raw!r})")
    if hours == 0:
        raise ValueError("hours must not be 0 (nothing would change)")
    if abs(hours) > 24 * 366 * 100:
        raise ValueError(f"hours out of range (got {raw!r})")
    if (hours * 3600) % 1:
        raise ValueError(f"hours must be a whole number of seconds (got {raw!r})")
    return hours


def hours_delta(hours) -> timedelta:
    return timedelta(seconds=int(Decimal(hours) * 3600))


def format_hours(hours) -> str:
    """-5, 3, 1.5: how the user wrote it, without trailing zeros."""
    text = format(Decimal(hours).normalize(), "f")
    return text


def shift_by(hours, select=None):
    """A shift function for `plan_renames`: the name time moved by `hours`
    (naive wall-clock arithmetic, so day, month and year roll over), for the
    names `select(parsed)` accepts (all when None)."""
    delta = hours_delta(hours)

    def shift(parsed):
        if select is not None and not select(parsed):
            return None
        return parsed.timestamp + delta
    return shift


# --- plans -------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    old: str
    new: str


@dataclass(frozen=True)
class Skip:
    name: str
    target: str  # "" when there is none (the new time is out of range)
    reason: str

    def describe(self) -> str:
        target = f" -> {self.target}" if self.target else ""
        return f"{self.name}{target} ({self.reason})"


@dataclass(frozen=True)
class Step:
    """One physical rename; `move` indexes RenamePlan.moves."""

    src: str
    dst: str
    move: int


@dataclass
class RenamePlan:
    batch_id: str
    moves: list = field(default_factory=list)      # [Move], listing order
    steps: list = field(default_factory=list)      # [Step], execution order
    skipped: list = field(default_factory=list)    # [Skip]
    unparsed: list = field(default_factory=list)   # [str] names left alone
    unselected: int = 0                            # parsed, not in the batch


def new_batch_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def plan_renames(listing, shift, occupied=None, batch_id=None) -> RenamePlan:
    """Plan renaming the files of `listing` (a naming.FolderListing or an
    iterable of names). `shift(parsed)` returns the new naive timestamp of a
    file, or None to leave it out of the batch. `occupied` is every name in
    the folder (hidden and non-image files included); default: the listing.
    """
    if isinstance(listing, naming.FolderListing):  # already parsed: not again
        entries = ([(image.name, image.parsed) for image in listing.images]
                   + [(path.name, None) for path in listing.unparsed])
    else:
        entries = [(name, naming.try_parse_name(name)) for name in listing]
    names = [name for name, _parsed in entries]
    unparsed, skipped, targets, unselected = [], [], {}, 0
    for name, parsed in entries:
        if parsed is None:
            unparsed.append(name)
            continue
        try:
            stamp = shift(parsed)
        except OverflowError:
            skipped.append(Skip(name, "", "the new time is out of range"))
            continue
        if stamp is None:
            unselected += 1
            continue
        if not 1000 <= stamp.year <= 9999:
            skipped.append(Skip(name, "", "the new time is out of range"))
            continue
        new = naming.format_name(stamp, parsed.original)
        if new == name:
            unselected += 1
        else:
            targets[name] = new
    occupied = set(names) if occupied is None else set(occupied) | set(names)
    plan = plan_mapping(targets, occupied, batch_id, require_sources=False)
    plan.skipped[:0] = skipped
    plan.unparsed = unparsed
    plan.unselected = unselected
    return plan


def plan_mapping(mapping, occupied, batch_id=None, require_sources=True) -> RenamePlan:
    """Plan renaming {old: new} in a folder holding the names `occupied`.

    Nothing is ever collapsed: two files mapping to one name are both
    skipped; a target held by a file that stays (outside the batch, or
    whose own rename was skipped) is skipped, and so is, in turn, any file
    waiting for that name. Linear in the number of names.
    """
    batch_id = batch_id or new_batch_id()
    occupied = set(occupied)
    plan = RenamePlan(batch_id)
    targets = {}
    for old, new in mapping.items():
        if require_sources and old not in occupied:
            plan.skipped.append(Skip(old, new, "file not found (renamed or removed since)"))
        else:
            targets[old] = new
    by_target = defaultdict(list)
    for old, new in targets.items():
        by_target[new].append(old)
    for new, olds in by_target.items():
        if len(olds) > 1:
            for old in olds:
                plan.skipped.append(Skip(old, new, "another file of the batch would get the same name"))
                del targets[old]
    _drop_blocked(targets, occupied, plan.skipped)
    plan.moves = [Move(old, new) for old, new in targets.items()]
    plan.steps = _order_steps(plan.moves, occupied, batch_id)
    return plan


def _drop_blocked(targets, occupied, skipped):
    """Remove (and report) moves whose target stays occupied, propagating
    along chains: a file that cannot leave blocks whoever wanted its name."""
    source_of = {new: old for old, new in targets.items()}
    staying = occupied - targets.keys()
    stuck = set()
    queue = [old for old, new in targets.items() if new in staying]
    while queue:
        old = queue.pop()
        new = targets.pop(old, None)
        if new is None:
            continue
        del source_of[new]
        reason = ("target name is held by a file whose own rename was skipped" if new in stuck
                  else "target name is held by a file outside the batch")
        skipped.append(Skip(old, new, reason))
        stuck.add(old)
        waiting = source_of.get(old)
        if waiting is not None:
            queue.append(waiting)


def _order_steps(moves, occupied, batch_id):
    """Execution order: each chain from its free end backwards; each cycle
    opened through a temporary name in the same folder."""
    index = {move.old: i for i, move in enumerate(moves)}
    target = {move.old: move.new for move in moves}
    source_of = {move.new: move.old for move in moves}
    steps, done = [], set()
    for move in moves:
        if move.new in target:
            continue
        current = move.old
        while current is not None:
            steps.append(Step(current, target[current], index[current]))
            done.add(current)
            current = source_of.get(current)
    counter = 0
    for move in moves:
        if move.old in done:
            continue
        temp = f"{TEMP_PREFIX}{batch_id}-{counter}"
        while temp in occupied:
            counter += 1
            temp = f"{TEMP_PREFIX}{batch_id}-{counter}"
        counter += 1
        steps.append(Step(move.old, temp, index[move.old]))
        done.add(move.old)
        current = source_of[move.old]
        while current != move.old:
            steps.append(Step(current, target[current], index[current]))
            done.add(current)
            current = source_of[current]
        steps.append(Step(temp, move.new, index[move.old]))
    return steps


def plan_folder(folder, shift, batch_id=None) -> RenamePlan:
    """plan_renames over the images of `folder`, checked against every name
    in it."""
    listing = naming.list_images(folder)
    return plan_renames(listing, shift, set(os.listdir(folder)), batch_id)


# --- journal -----------------------------------------------------------------

@dataclass
class Batch:
    """A batch as the journal tells it."""

    id: str
    label: str
    created: str
    moves: list                 # [Move]
    steps: list                 # [(src, dst, move index, inode or None)]
    undoes: str = None
    recovers: str = None
    update_archive: bool = True
    failed: dict = field(default_factory=dict)   # step index -> reason
    archived: bool = False
    status: str = None          # "completed" or None (unfinished)
    skipped: list = field(default_factory=list)  # [Skip] at apply time

    def done_moves(self):
        failed_moves = {self.steps[i][2] for i in self.failed}
        # A batch finished by `--recover complete` logs its failures only in
        # its end record.
        skipped = {(skip.name, skip.target) for skip in self.skipped}
        return [move for i, move in enumerate(self.moves)
                if i not in failed_moves and (move.old, move.new) not in skipped]


def journal_path(folder) -> Path:
    return Path(folder) / config.JOURNAL_FILE


def read_journal(folder) -> list:
    """The batches of `folder`'s journal, oldest first. A torn line (a crash
    while writing it) is ignored: no file moves before its line is complete
    and synced. An unreadable journal is a UsageError."""
    path = journal_path(folder)
    batches = {}
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
        raise cli.UsageError(f"cannot read the rename journal {path}: {exc.strerror or exc}") from None
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


class _Journal:
    """The folder's journal, opened for appending and locked for the time of
    one batch, so two runs never interleave their renames (POSIX flock; the
    lock dies with the process, so a crash leaves no stale lock)."""

    def __init__(self, folder):
        path = journal_path(folder)
        try:
            self.handle = open(path, "a+b")
        except OSError as exc:
            raise cli.UsageError(f"cannot write the rename journal {path}: {exc.strerror or exc}") from None
        self._lock(folder)
        size = self.handle.seek(0, os.SEEK_END)
        if size == 0:
            _sync_dir(folder)  # the journal's own name must survive a crash too
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


def pending_batch(folder):
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


# --- apply -------------------------------------------------------------------

@dataclass
class ApplyResult:
    folder: str
    batch_id: str
    done: list = field(default_factory=list)      # [Move]
    skipped: list = field(default_factory=list)   # [Skip] (plan + apply time)
    unparsed: list = field(default_factory=list)
    unselected: int = 0
    interrupted: bool = False
    dry_run: bool = False


def apply_plan(folder, plan, *, label="", undoes=None, recovers=None,
               update_archive=True, stop_after=None) -> ApplyResult:
    """Journal the batch, then rename. `stop_after` (tests) stops after that
    many steps, leaving the batch unfinished as a crash would."""
    result = ApplyResult(str(folder), plan.batch_id, skipped=list(plan.skipped),
                         unparsed=list(plan.unparsed), unselected=plan.unselected)
    if not plan.steps:
        return result
    folder = Path(folder)
    steps = _steps_with_inodes(folder, plan.steps)
    journal = _Journal(folder)
    try:
        journal.write({
            "event": "begin", "batch": plan.batch_id, "label": label,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "undoes": undoes, "recovers": recovers, "update_archive": update_archive,
            "moves": [[move.old, move.new] for move in plan.moves],
            "steps": [list(step) for step in steps],
        }, sync=True)
        failed, failed_set = {}, set()
        for i, (src, dst, move, inode) in enumerate(steps):
            if stop_after is not None and i >= stop_after:
                result.interrupted = True
                return result
            reason = _move_step(folder, src, dst, move, failed_set)
            if reason:
                failed[i] = reason
                failed_set.add(move)
            journal.write({"event": "step", "batch": plan.batch_id, "i": i, "ok": not reason,
                           **({"reason": reason} if reason else {})}, sync=(i + 1) % SYNC_EVERY == 0)
        journal.sync()
        _finish(folder, journal, plan.batch_id, plan.moves, _failed_moves(steps, failed),
                update_archive, result)
    finally:
        journal.close()
    return result


def _steps_with_inodes(folder, steps):
    """(src, dst, move, inode): the inode of the file each step moves, so
    that recovery finds every file on disk without trusting progress lines."""
    inode_at = {}
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


def _move_step(folder, src, dst, move, failed_moves):
    """Do one step; return None or the reason it was skipped. A step whose
    move already failed earlier (the first half of a cycle) is not tried."""
    if move in failed_moves:
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
        _settle_half_move(folder, src, dst)
        raise
    return None


def _settle_half_move(folder, src, dst, inode=None) -> bool:
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


def _settle_interrupted_step(folder, batch):
    """A crash can stop at most one step halfway: the first step (in order)
    whose source and target both hold the file it moves."""
    for src, dst, _move, inode in batch.steps:
        if inode is not None and _settle_half_move(folder, src, dst, inode):
            return


def _failed_moves(steps, failed):
    """{move index: (reason, name the file is left under)} from failed steps."""
    out = {}
    for i, reason in sorted(failed.items()):
        out.setdefault(steps[i][2], (reason, steps[i][0]))
    return out


def _finish(folder, journal, batch_id, moves, failed_moves, update_archive, result):
    """Report failed moves, update the download archive, close the batch."""
    new_skips = []
    for move_index, (reason, left_at) in sorted(failed_moves.items()):
        move = moves[move_index]
        if left_at.startswith(TEMP_PREFIX) and left_at != move.old:
            reason += f"; the file is kept under the temporary name {left_at}, rename it by hand"
        new_skips.append(Skip(move.old, move.new, reason))
    result.skipped += new_skips
    result.done = [move for i, move in enumerate(moves) if i not in failed_moves]
    mapping = {move.old: move.new for move in result.done}
    if update_archive and mapping:
        journal.write({"event": "archive", "batch": batch_id}, sync=True)
        try:
            download_archive.record_renames(folder, mapping)
        except sqlite3.Error as exc:  # e.g. locked by a running download: the renames stand
            print(f"warning: {folder}: the download archive still lists the old names of "
                  f"{len(mapping)} renamed file(s): {exc}", file=sys.stderr)
        _follow_renames(folder, mapping)
    journal.write({"event": "end", "batch": batch_id, "status": "completed",
                   "skipped": [[s.name, s.target, s.reason] for s in new_skips]}, sync=True)
    _sync_dir(folder)


def _follow_renames(folder, mapping):
    """messages.csv rows and a copy step's record of what it wrote follow
    the files to their new names."""
    for what, follow in (("messages.csv", messages.record_renames),
                         ("the copy record", records.record_renames)):
        try:
            follow(folder, mapping)
        except OSError as exc:
            print(f"warning: {folder}: {what} still lists the old names of {len(mapping)} renamed "
                  f"file(s): {exc.strerror or exc}", file=sys.stderr)


def _sync_dir(folder):
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


# --- undo and recovery ---------------------------------------------------------

def _last_undoable(batches, names):
    """(batch, its moves still to revert) or (None, []). An undo that could
    not revert some files (a name taken, a read-only folder) leaves them
    to the next --undo, which retries before going further back; a file
    whose new name is gone from the folder cannot be reverted and no longer
    holds the batch back."""
    reverted = defaultdict(set)
    for batch in batches:
        if batch.undoes and batch.status == "completed":
            reverted[batch.undoes].update((move.old, move.new) for move in batch.done_moves())
    for batch in reversed(batches):
        if batch.status != "completed" or batch.undoes or batch.recovers:
            continue
        moves = [move for move in batch.done_moves() if (move.new, move.old) not in reverted[batch.id]]
        if any(move.new in names for move in moves):
            return batch, moves
    return None, []


@dataclass
class UndoOutcome:
    folder: str
    batch: Batch = None          # the batch reverted or recovered
    plan: RenamePlan = None
    result: ApplyResult = None
    waiting: Batch = None        # undo: this folder's last batch, older than the one undone now


def _newest(candidates, journals):
    """Of the batches `candidates` ({id: Batch}), the most recent: one that
    no other candidate follows in any folder's journal (one run shares its
    batch id across folders, so the journals order the runs); the creation
    time decides between batches no journal relates."""
    orders = [{batch.id: i for i, batch in enumerate(batches)} for batches in journals]

    def after(x, y):
        return any(x in order and y in order and order[x] > order[y] for order in orders)

    newest = [x for x in candidates if not any(after(y, x) for y in candidates if y != x)]
    return max(newest or candidates, key=lambda i: (candidates[i].created, i))


def undo_last_batch(folders, dry_run=False) -> list:
    """Revert the last batch over `folders` (one UndoOutcome per folder).

    A run renames in several folders under one batch id, but a folder where
    it renamed nothing has no record of it: undoing "each folder's last
    batch" would then revert an older batch there. So the newest batch over
    all folders is reverted, in the folders that have it; the others wait
    (`waiting`) for a later --undo."""
    journals = [read_journal(folder) for folder in folders]
    found = [_last_undoable(batches, set(os.listdir(folder))) for folder, batches in zip(folders, journals)]
    last = [batch for batch, _moves in found]
    outcomes = [UndoOutcome(str(folder)) for folder in folders]
    candidates = {batch.id: batch for batch in last if batch is not None}
    if not candidates:
        return outcomes
    target = _newest(candidates, journals)
    for folder, outcome, (batch, moves) in zip(folders, outcomes, found):
        if batch is None:
            continue
        if batch.id != target:
            outcome.waiting = batch
            continue
        outcome.batch = batch
        mapping = {move.new: move.old for move in moves}
        outcome.plan = plan_mapping(mapping, set(os.listdir(folder)))
        if not dry_run:
            outcome.result = apply_plan(folder, outcome.plan, label=f"undo of {batch.id}", undoes=batch.id)
    return outcomes


def undo_last(folder, dry_run=False) -> UndoOutcome:
    """Revert the last completed batch of `folder` (a new journaled batch)."""
    return undo_last_batch([folder], dry_run)[0]


def recover(folder, mode, dry_run=False) -> UndoOutcome:
    """Finish (`complete`) or roll back (`revert`) the unfinished batch of
    `folder`, locating each file by the inode the journal recorded."""
    if mode not in RECOVER_MODES:
        raise ValueError(f"recover mode must be one of {', '.join(RECOVER_MODES)}")
    folder = Path(folder)
    batch = pending_batch(folder)
    outcome = UndoOutcome(str(folder), batch)
    if batch is None:
        return outcome
    if not dry_run:
        _settle_interrupted_step(folder, batch)
    positions = _locate(folder, batch)
    if mode == "revert":
        mapping = {now: batch.moves[m].old for m, now in positions.items()
                   if now is not None and now != batch.moves[m].old}
        outcome.plan = plan_mapping(mapping, set(os.listdir(folder)))
        outcome.plan.skipped += [Skip(batch.moves[m].old, batch.moves[m].new,
                                      "file not found under any name of the batch")
                                 for m, now in positions.items() if now is None]
        if not dry_run:
            outcome.result = apply_plan(folder, outcome.plan, label=f"revert of {batch.id}",
                                        recovers=batch.id, update_archive=batch.archived)
            _close(folder, batch.id, "reverted")  # also when nothing had moved yet
        return outcome
    outcome.plan = _plan_completion(batch, positions)
    if not dry_run:
        outcome.result = _complete(folder, batch, outcome.plan)
    return outcome


def _locate(folder, batch):
    """{move index: the name that now holds the move's file, or None}."""
    names = defaultdict(list)
    inode_of = {}
    for src, dst, move, inode in batch.steps:
        names[move] += [src, dst]
        inode_of[move] = inode
    positions = {}
    for move, candidates in names.items():
        positions[move] = None
        for name in dict.fromkeys(reversed(candidates)):
            try:
                if os.lstat(folder / name).st_ino == inode_of[move]:
                    positions[move] = name
                    break
            except OSError:
                continue
    return positions


def _close(folder, batch_id, status):
    journal = _Journal(folder)
    try:
        journal.write({"event": "end", "batch": batch_id, "status": status}, sync=True)
    finally:
        journal.close()


def _plan_completion(batch, positions):
    """The remaining steps of `batch`: those whose file still sits at the
    step's source. Same batch id, so the journal closes the original batch."""
    plan = RenamePlan(batch.id, moves=list(batch.moves))
    remaining = dict(positions)
    for src, dst, move, _inode in batch.steps:
        if remaining.get(move) == src:
            plan.steps.append(Step(src, dst, move))
            remaining[move] = dst
    for move, now in positions.items():
        if now is None:
            plan.skipped.append(Skip(batch.moves[move].old, batch.moves[move].new,
                                     "file not found under any name of the batch"))
    return plan


def _complete(folder, batch, plan):
    result = ApplyResult(str(folder), batch.id)
    steps = [(s.src, s.dst, s.move, None) for s in plan.steps]
    failed, failed_set = {}, set()
    for i, (src, dst, move, _inode) in enumerate(steps):
        reason = _move_step(folder, src, dst, move, failed_set)
        if reason:
            failed[i] = reason
            failed_set.add(move)
    failed_moves = _failed_moves(steps, failed)
    index = {move: i for i, move in enumerate(batch.moves)}
    for skip in plan.skipped:
        failed_moves[index[Move(skip.name, skip.target)]] = (skip.reason, skip.name)
    journal = _Journal(folder)
    try:
        _finish(folder, journal, batch.id, batch.moves, failed_moves,
                batch.update_archive and not batch.archived, result)
    finally:
        journal.close()
    return result


# --- shared command-line pieces ------------------------------------------------

def add_rename_arguments(parser, folders_help="folders to rename in"):
    """--folders, --dry-run, --undo, --recover: the same in every script."""
    parser.add_argument("--folders", nargs="+", metavar="FOLDER", help=folders_help)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--undo", action="store_true",
                       help="revert the last rename batch (the newest over the folders; "
                            "run again to go further back)")
    group.add_argument("--recover", choices=RECOVER_MODES,
                        help="finish or roll back an interrupted rename batch")


def check_folders(folders):
    """Every folder must exist; UsageError (exit 2) names the first that does not."""
    seen = {}
    for folder in folders:
        cli.check_folder(folder, hint="choose folders with --folders")
        # One folder named twice would be renamed twice and journal two
        # batches under one id, the second hiding the first from --undo.
        stat = os.stat(folder)
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            raise cli.UsageError(f"the same folder is given twice: {seen[key]} and {folder}")
        seen[key] = folder


def refuse_if_pending(folders, dry_run=False):
    """A new batch must not start on top of an unfinished one."""
    for folder in folders:
        batch = pending_batch(folder)
        if batch is None:
            continue
        if dry_run:
            print(f"warning: {pending_message(folder, batch)}", file=sys.stderr)
        else:
            raise cli.UsageError(pending_message(folder, batch))
    if not dry_run:
        check_writable(folders)


def check_writable(folders):
    """Before a run renames in several folders, make sure each one can take
    its journal and its renames, so a read-only or busy folder stops the run
    before the first folder changes rather than halfway."""
    for folder in folders:
        _Journal(folder).close()
        if not os.access(folder, os.W_OK | os.X_OK):
            raise cli.UsageError(f"cannot rename in folder {folder}: it is read-only")
        _check_archive_file(download_archive.archive_path(folder))


def _check_archive_file(path):
    """A download archive that is not SQLite would fail only after the
    renames: refuse before. (Its header is read, not the database, so a
    download running meanwhile does not make this wait.)"""
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise cli.UsageError(f"cannot read the download archive {path}: {exc.strerror or exc}") from None
    if header and header != b"SQLite format 3\x00":
        raise cli.UsageError(f"the download archive {path} is not an SQLite database; "
                             f"move it away (the downloader starts a new one) and run again")


def run_undo_or_recover(args, folders):
    """The scripts' --undo / --recover: None when neither was asked for;
    otherwise check the folders, run it on every one, print, and return an
    exit code."""
    if not (args.undo or args.recover):
        return None
    check_folders(folders)
    undo, recover_mode, dry_run = args.undo, args.recover, args.dry_run
    if undo:
        # Undoing on top of a half-done batch would mix the two: recover first.
        refuse_if_pending(folders, dry_run)
        outcomes = undo_last_batch(folders, dry_run=dry_run)
    else:
        outcomes = [recover(folder, recover_mode, dry_run=dry_run) for folder in folders]
    return report_undo(outcomes, "Undo" if undo else f"Recover ({recover_mode})", dry_run)


def report_undo(outcomes, title, dry_run):
    print("=" * 60)
    print(f"{title}{' - DRY RUN (no changes)' if dry_run else ''}")
    print("=" * 60)
    skipped_total = 0
    for outcome in outcomes:
        print(f"\nProcessing folder: {outcome.folder}")
        if outcome.waiting is not None:
            print(f"  Nothing to do now: this folder's last batch {outcome.waiting.id} "
                  f"({outcome.waiting.label or 'no label'}) is older than the batch this --undo "
                  f"reverts in the other folders; a further --undo reverts it")
            continue
        if outcome.batch is None:
            print("  Nothing to do (no batch to undo or recover).")
            continue
        print(f"  Batch: {outcome.batch.id} ({outcome.batch.label or 'no label'}, started {outcome.batch.created})")
        if outcome.result:
            done, skipped = outcome.result.done, outcome.result.skipped
            for move in done:
                print(f"  RENAMED: {move.old} -> {move.new}")
        else:  # dry run: the exact steps, temporary names included
            done, skipped = outcome.plan.steps, outcome.plan.skipped
            for step in done:
                print(f"  WOULD RENAME: {step.src} -> {step.dst}")
        for skip in skipped:
            print(f"  SKIPPED: {skip.name} -> {skip.target} ({skip.reason})")
        print(f"  {'Would rename' if dry_run else 'Renamed'}: {len(done)}")
        print(f"  Skipped: {len(skipped)}")
        skipped_total += len(skipped)
    print("=" * 60)
    return 1 if skipped_total else 0


def parse_yes_no(text) -> bool:
    answer = str(text).strip().lower()
    if answer in ("y", "yes"):
        return True
    if answer in ("n", "no"):
        return False
    raise ValueError("please answer Yes or No")

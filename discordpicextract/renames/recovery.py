"""Undo and recovery. `undo_last_batch` reverts the last completed batch
over some folders through a new, journaled batch; `recover_folders`
finishes (`complete`) or rolls back (`revert`) a batch a crash left
unfinished, in every folder of that run's batch, so that they all end in
one state. Each file is found by the inode the journal recorded (among the
batch's own names), so recovery needs no progress line, is safe to kill
and run again, and means the same whatever an earlier, killed recovery was
doing: `--recover revert` twice reverts, it never undoes a revert."""
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Optional

from discordpicextract import locking
from discordpicextract.errors import UsageError
from discordpicextract.renames.apply import ApplyResult, apply_batch, apply_plan, update_records
from discordpicextract.renames.journal import (
    Batch,
    Journal,
    journal_path,
    older_batches,
    pending_batch,
    read_journal,
    refuse_if_busy,
    root_of,
    unfinished_elsewhere,
)
from discordpicextract.renames.plan import TEMP_PREFIX, Move, RenamePlan, Skip, new_batch_id, plan_mapping

RECOVER_MODES = ("complete", "revert")


@dataclass
class UndoOutcome:
    folder: str
    batch: Optional[Batch] = None          # the batch reverted or recovered
    plan: Optional[RenamePlan] = None
    result: Optional[ApplyResult] = None
    waiting: Optional[Batch] = None        # undo: this folder's last batch, older than the one undone now
    note: str = ""                         # recovery: what it found here besides renames


def _last_undoable(batches, names) -> tuple[Optional[Batch], list[Move], list]:
    """(batch, its moves still to revert) or (None, []). An undo that could
    not revert some files (a name taken, a read-only folder) leaves them
    to the next --undo, which retries before going further back; a file
    whose new name is gone from the folder cannot be reverted and no longer
    holds the batch back, nor does one whose new name now holds another
    file (replaced since the batch: not the batch's file to move)."""
    return _Undoable(names).search(batches)


class _Undoable:
    """`_last_undoable` over a folder's batches fed newest first, a file at
    a time: it keeps only what the batches already read undid (an undo
    always comes after what it undoes), so reading back through history
    holds one file's batches at a time, not all of them."""

    def __init__(self, names):
        self.names = names   # a set of the folder's names, or a function: is this file (name, inode) there?
        self.reverted: dict[str, set] = defaultdict(set)
        self.order: list[str] = []      # batch ids, newest first
        self.found: tuple[Optional[Batch], list[Move], list] = (None, [], [])

    def search(self, batches) -> tuple[Optional[Batch], list[Move], list]:
        """Feed `batches` (one file's, oldest first, older than any fed
        before); the batch to undo once found, else (None, [], []): with its
        moves still to revert and the inode the journal recorded for each
        (None where it recorded none)."""
        for batch in reversed(batches):
            self.order.append(batch.id)
            if self.found[0] is not None:
                continue
            if batch.undoes:
                if batch.status == "completed":
                    self.reverted[batch.undoes].update(batch.done_moves())   # Moves: (old, new) pairs
                continue
            if batch.status != "completed" or batch.recovers:
                continue
            reverted = self.reverted.pop(batch.id, set())
            failed = {batch.steps[i][2] for i in batch.failed}
            skipped = {(skip.name, skip.target) for skip in batch.skipped}
            inode_of = batch.move_inodes()
            if not (failed or skipped or reverted):   # the usual batch: every move done, none undone yet
                moves, inodes = list(batch.moves), list(inode_of)
            else:
                moves, inodes = [], []
                for m, move in enumerate(batch.moves):   # done_moves, with each one's inode
                    if m not in failed and move not in skipped and (move.new, move.old) not in reverted:
                        moves.append(move)
                        inodes.append(inode_of[m])
            there = self.there
            # A name holding another file than the batch's (replaced since)
            # holds the batch back no more than a name that is gone.
            if any(there(move.new, inode) for move, inode in zip(moves, inodes)):
                self.found = (_told(batch), moves, inodes)   # its steps are not needed to undo it
        return self.found

    def there(self, name, inode) -> bool:
        if isinstance(self.names, (set, frozenset)):
            return name in self.names
        return self.names(name, inode)


def _holds(folder, name, inode) -> bool:
    """Whether `name` in `folder` is the file the journal recorded (any
    file there, when the journal recorded no inode)."""
    try:
        found = os.lstat(os.path.join(folder, name)).st_ino
    except OSError:
        return False
    return inode is None or found == inode


def _newest(candidates, journals) -> str:
    """Of the batches `candidates` ({id: Batch}), the most recent: one that
    no other candidate follows in any folder's journal (one run shares its
    batch id across folders, so the journals order the runs); the creation
    time decides between batches no journal relates. `journals`: each
    folder's batch ids, newest first."""
    orders = [{batch_id: -i for i, batch_id in enumerate(ids)} for ids in journals]

    def after(x, y):
        return any(x in order and y in order and order[x] > order[y] for order in orders)

    newest = [x for x in candidates if not any(after(y, x) for y in candidates if y != x)]
    return max(newest or candidates, key=lambda i: (candidates[i].created, i))


def _undoable_in(folder) -> tuple[list[str], tuple[Optional[Batch], list[Move], list]]:
    """(the ids of the batches read, newest first; `_last_undoable` of
    them): the journal, then the history files newest first, only as far
    back as the last undoable batch (what is newer is enough)."""
    # Whether a batch's files are there is asked of the folder name by
    # name (most often its first one answers), not from a listing of it.
    search = _Undoable(lambda name, inode: _holds(folder, name, inode))
    found = search.search(read_journal(folder))
    if found[0] is None:
        for older in older_batches(folder):
            found = search.search(older)
            if found[0] is not None:
                break
    return search.order, found


def undo_last_batch(folders, dry_run=False) -> list[UndoOutcome]:
    """Revert the last batch over `folders` (one UndoOutcome per folder).

    A run renames in several folders under one batch id, but a folder where
    it renamed nothing has no record of it: undoing "each folder's last
    batch" would then revert an older batch there. So the newest batch over
    all folders is reverted, in the folders that have it; the others wait
    (`waiting`) for a later --undo. The undo is itself one batch over those
    folders, planned under their locks."""
    cleaned: set = set()
    with _locked(folders, dry_run, "undo", cleaned):
        journals, found = [], []
        for folder in folders:
            ids, undoable = _undoable_in(folder)
            journals.append(ids)
            found.append(undoable)
        outcomes = [UndoOutcome(str(folder)) for folder in folders]
        candidates = {batch.id: batch for batch, _moves, _recorded in found if batch is not None}
        if not candidates:
            return outcomes
        target = _newest(candidates, journals)
        del candidates, journals
        undo_id = new_batch_id()
        parts = []
        for k, (folder, outcome) in enumerate(zip(folders, outcomes)):
            batch, moves, inodes = found[k]
            found[k] = (None, [], [])   # the batch read back is let go once planned: 100,000s of moves
            if batch is None:
                continue
            if batch.id != target:
                outcome.waiting = _told(batch)
                continue
            outcome.batch = _told(batch)
            mapping = dict(zip(map(_new, moves), map(_old, moves)))
            recorded = dict(zip(map(_new, moves), inodes))
            del batch, moves, inodes
            occupied, current, hidden = _listing(folder, mapping)
            if not dry_run:
                locking.remove_leftovers_among(folder, hidden)
                cleaned.add(folder)
            # The names whose file is not the one the journal recorded (the
            # items that differ, found in C; a name gone or an inode never
            # recorded is no replacement).
            replaced = [Skip(new, mapping.pop(new), "the file there was replaced since the batch: left alone")
                        for new, inode in sorted(recorded.items() - current.items(), key=_recorded_order(recorded))
                        if inode is not None and new in current]
            del recorded
            outcome.plan = plan_mapping(mapping, occupied, undo_id)
            outcome.plan.skipped[:0] = replaced
            del mapping, occupied
            # Planned under the hold apply runs under, from a listing that
            # read each move's inode: apply need not list the folder again.
            outcome.plan.hold = locking.hold_token(folder)
            outcome.plan.inodes = list(map(current.__getitem__, map(itemgetter(0), outcome.plan.moves)))
            del current
            parts.append((folder, outcome))
        if not dry_run:
            results = apply_batch([(folder, outcome.plan) for folder, outcome in parts],
                                  label=f"undo of {target}", undoes=target)
            for (_folder, outcome), result in zip(parts, results):
                outcome.result = result
    return outcomes


_old, _new = itemgetter(0), itemgetter(1)


def _recorded_order(recorded):
    """A sort key: the order of `recorded` (the batch's move order)."""
    position: dict[str, int] = {}

    def key(item):
        if not position:
            position.update(zip(recorded, range(len(recorded))))
        return position[item[0]]
    return key


def _listing(folder, mapping) -> tuple[set, dict, list]:
    """(the names in `folder`, {name: inode} of those `mapping` moves, the
    hidden names among the others),
    from one listing under the lock (the inode comes with each entry: no
    lstat per file). A name `mapping` moves is its very str (the listing's
    own copy goes at once), so a folder of 100,000 being renamed costs a
    set, not a second copy of every name."""
    own = dict(zip(mapping, mapping))
    names: set = set()
    inodes: dict = {}
    hidden: list = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = own.get(entry.name)
                if name is None:
                    names.add(entry.name)
                    if entry.name[:1] == ".":
                        hidden.append(entry.name)
                else:
                    names.add(name)
                    inodes[name] = entry.inode()
    except OSError as exc:
        raise UsageError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    return names, inodes, hidden


def _told(batch: Batch) -> Batch:
    """The batch as an undo's report tells it (id, label, dates): without
    its moves and steps, which the undo's own plan has taken over."""
    return replace(batch, moves=[], steps=[], failed={}, skipped=[])


@contextmanager
def _locked(folders, dry_run, command, cleaned=None):
    """The folders' locks for a real run; a dry run changes nothing and
    only refuses when another run is live (a read-only folder may be looked at).
    `cleaned` (a set): the body lists folders under the hold and removes
    their leftover temp files from that listing, adding each folder to it;
    the others' are removed before the hold ends (see locking.hold)."""
    if dry_run:
        for folder in folders:
            refuse_if_busy(folder)
        yield
        return
    with locking.hold_all(folders, command, leftovers=cleaned is None):
        try:
            yield
        finally:
            for folder in folders if cleaned is not None else []:
                if folder not in cleaned:
                    locking.remove_our_leftovers(folder)


def undo_last(folder, dry_run=False) -> UndoOutcome:
    """Revert the last completed batch of `folder` (a new journaled batch)."""
    return undo_last_batch([folder], dry_run)[0]


def recover(folder, mode, dry_run=False) -> UndoOutcome:
    """recover_folders for one folder; its own outcome (the batch's other
    folders, if any, are brought to the same state too)."""
    return recover_folders([folder], mode, dry_run)[0]


def recover_folders(folders, mode, dry_run=False) -> list[UndoOutcome]:
    """Finish (`complete`) or roll back (`revert`) every unfinished batch of
    `folders`, in each folder of its run (those named in its journal record,
    added after `folders` in the outcomes). Refuses (BusyError) while another
    run holds any of them: its batch is live, not crashed."""
    if mode not in RECOVER_MODES:
        raise ValueError(f"recover mode must be one of {', '.join(RECOVER_MODES)}")
    with _locked(folders, dry_run, f"recover {mode}"):
        roots: dict[str, Batch] = {}
        for folder in folders:
            batch = pending_batch(folder)
            if batch is None:
                found = unfinished_elsewhere(folder)
                batch = found[0] if found else None
            if batch is not None:
                roots.setdefault(batch.id, batch)
        every = _batch_folders(folders, roots.values())
        with _locked(every[len(folders):], dry_run, f"recover {mode}"):
            journals = {folder: read_journal(folder) for folder in every}
            modes = {batch_id: _effective_mode(mode, root, journals) for batch_id, root in roots.items()}
            outcomes = []
            for folder in every:
                mine = [batch_id for batch_id in roots if any(b.id == batch_id for b in journals[folder])]
                if not mine:
                    outcomes.append(UndoOutcome(str(folder)))
                for batch_id in mine:
                    outcomes.append(_recover_here(folder, journals[folder], batch_id, *modes[batch_id], dry_run))
    return outcomes


def _batch_folders(folders, roots) -> list:
    """`folders`, then the other existing folders the batches name that
    hold a rename journal (only those can hold a part of the batch: a stale
    or forged record naming some other folder gets it neither locked nor
    cleaned of .part files)."""
    seen = {os.path.realpath(folder) for folder in folders}
    every = list(folders)
    for root in roots:
        for other in root.folders:
            if other not in seen and os.path.isdir(other) and journal_path(other).is_file():
                seen.add(other)
                every.append(other)
    return every


def _effective_mode(mode, root, journals) -> tuple[str, str]:
    """(mode, note). A batch journals every folder before its first move:
    if one of its folders has no record of it, nothing had moved anywhere,
    and there is nothing to complete: it is closed unchanged instead."""
    by_path = {os.path.realpath(folder): batches for folder, batches in journals.items()}
    missing = [f for f in root.folders if f in by_path and not any(b.id == root.id for b in by_path[f])]
    if mode == "complete" and missing:
        return "revert", (f"the batch had not started renaming (no record in {missing[0]}): "
                          "closed unchanged; run the adjustment again")
    return mode, ""


def _recover_here(folder, batches, batch_id, mode, note, dry_run) -> UndoOutcome:
    """Bring `folder`'s part of batch `batch_id` to `mode`'s state."""
    folder = Path(folder)
    batch = next(b for b in batches if b.id == batch_id)
    status = "completed" if mode == "complete" else "reverted"
    open_recoveries = [b for b in batches if b.status is None and b.recovers and root_of(batches, b).id == batch_id]
    outcome = UndoOutcome(str(folder), batch, note=note)
    if batch.status == status and not open_recoveries:
        outcome.plan = RenamePlan(new_batch_id())
        outcome.note = note or f"already {status}: nothing to do"
        return outcome
    if not dry_run:
        _settle_half_moves(folder, batch)
    where = locate(folder, batch)
    targets = _targets(batch, mode)
    mapping = {where[m]: targets[m] for m in targets if where.get(m) and where[m] != targets[m]}
    outcome.plan = plan_mapping(mapping, set(os.listdir(folder)))
    outcome.plan.skipped += _not_found(batch, where, targets)
    if dry_run:
        return outcome
    outcome.result = apply_plan(folder, outcome.plan, label=f"recover {mode} of {batch_id}",
                                recovers=batch_id, update_archive=False)
    _close(folder, batch, mode, open_recoveries, outcome)
    return outcome


def _targets(batch, mode) -> dict[int, str]:
    """{move index: the name its file must end under}. Completing leaves a
    move that failed at apply time where it is (it was reported then)."""
    if mode == "revert":
        return {m: move.old for m, move in enumerate(batch.moves)}
    failed = {batch.steps[i][2] for i in batch.failed}
    skipped = {(skip.name, skip.target) for skip in batch.skipped}
    return {m: move.new for m, move in enumerate(batch.moves)
            if m not in failed and (move.old, move.new) not in skipped}


def _close(folder, batch, mode, open_recoveries, outcome) -> None:
    """The records that name the files follow them (once: the journal says
    so before they change), then the batch and any crashed recovery of it
    are closed."""
    where = locate(folder, batch)
    if mode == "complete" and batch.update_archive and not batch.archived:
        mapping = {m.old: m.new for i, m in enumerate(batch.moves) if where.get(i) == m.new}
        event = "archive"
    elif mode == "revert" and batch.archived:
        mapping = {m.new: m.old for i, m in enumerate(batch.moves) if where.get(i) == m.old}
        event = "unarchive"
    else:
        mapping, event = {}, ""
    reasons = {skip.name: skip.reason for skip in [*outcome.plan.skipped, *outcome.result.skipped]}
    skipped = [Skip(batch.moves[m].old, batch.moves[m].new,
                    reasons.get(where.get(m) or "", reasons.get(batch.moves[m].old, "file not found under any name "
                                                                                      "of the batch")))
               for m, target in _targets(batch, mode).items() if where.get(m) != target]
    with Journal(folder) as journal:
        if mapping:
            journal.write({"event": event, "batch": batch.id}, sync=True)
            outcome.result.warnings += update_records(folder, mapping)
        for other in open_recoveries:
            journal.write({"event": "end", "batch": other.id, "status": "completed"})
        journal.write({"event": "end", "batch": batch.id, "status": "completed" if mode == "complete" else "reverted",
                       "skipped": [[s.name, s.target, s.reason] for s in skipped]}, sync=True)


def _candidates(folder, batch) -> dict[int, list[str]]:
    """{inode: names in the folder holding it}, among the batch's own names
    and temporary names only: a file the batch never touched is never
    taken for one of its own, even if it got a recycled inode."""
    names = {name for src, dst, _m, _i in batch.steps for name in (src, dst)}
    holders: dict[int, list[str]] = defaultdict(list)
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise UsageError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name in names or entry.name.startswith(TEMP_PREFIX):
            try:
                holders[entry.inode()].append(entry.name)
            except OSError:
                continue
    return holders


def locate(folder, batch) -> dict[int, Optional[str]]:
    """{move index: the name that now holds the move's file, or None}."""
    holders = _candidates(folder, batch)
    positions: dict[int, Optional[str]] = {}
    for move, inode in enumerate(batch.move_inodes()):
        names = holders.get(inode, []) if inode is not None else []
        target = batch.moves[move].new
        positions[move] = target if target in names else (sorted(names)[0] if names else None)
    return positions


def _settle_half_moves(folder, batch) -> None:
    """A crash between a move's hard link and its unlink leaves one file
    under two names: keep one (its target's, if it is one of them)."""
    holders = _candidates(folder, batch)
    for move, inode in enumerate(batch.move_inodes()):
        names = holders.get(inode, []) if inode is not None else []
        if len(names) < 2:
            continue
        try:
            if os.lstat(folder / names[0]).st_nlink != len(names):
                continue  # another link outside the batch's names: not ours to settle
        except OSError:
            continue
        keep = batch.moves[move].new if batch.moves[move].new in names else sorted(names)[0]
        for name in names:
            if name != keep:
                os.unlink(folder / name)


def _not_found(batch, where, targets) -> list[Skip]:
    return [Skip(batch.moves[m].old, batch.moves[m].new, "file not found under any name of the batch")
            for m in targets if where.get(m) is None]

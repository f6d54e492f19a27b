"""Undo and recovery. `undo_last_batch` reverts the last completed batch
over some folders through a new, journaled batch; `recover` finishes
(`complete`) or rolls back (`revert`) a batch a crash left unfinished,
finding each file by the inode the journal recorded, even if the last
progress lines were not written."""
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from discordpicextract.renames.apply import ApplyResult, apply_plan, failed_moves, finish, move_step, settle_half_move
from discordpicextract.renames.journal import Batch, Journal, close_batch, pending_batch, read_journal
from discordpicextract.renames.plan import Move, RenamePlan, Skip, Step, plan_mapping

RECOVER_MODES = ("complete", "revert")


@dataclass
class UndoOutcome:
    folder: str
    batch: Optional[Batch] = None          # the batch reverted or recovered
    plan: Optional[RenamePlan] = None
    result: Optional[ApplyResult] = None
    waiting: Optional[Batch] = None        # undo: this folder's last batch, older than the one undone now


def _last_undoable(batches, names) -> tuple[Optional[Batch], list[Move]]:
    """(batch, its moves still to revert) or (None, []). An undo that could
    not revert some files (a name taken, a read-only folder) leaves them
    to the next --undo, which retries before going further back; a file
    whose new name is gone from the folder cannot be reverted and no longer
    holds the batch back."""
    reverted: dict[str, set] = defaultdict(set)
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


def _newest(candidates, journals) -> str:
    """Of the batches `candidates` ({id: Batch}), the most recent: one that
    no other candidate follows in any folder's journal (one run shares its
    batch id across folders, so the journals order the runs); the creation
    time decides between batches no journal relates."""
    orders = [{batch.id: i for i, batch in enumerate(batches)} for batches in journals]

    def after(x, y):
        return any(x in order and y in order and order[x] > order[y] for order in orders)

    newest = [x for x in candidates if not any(after(y, x) for y in candidates if y != x)]
    return max(newest or candidates, key=lambda i: (candidates[i].created, i))


def undo_last_batch(folders, dry_run=False) -> list[UndoOutcome]:
    """Revert the last batch over `folders` (one UndoOutcome per folder).

    A run renames in several folders under one batch id, but a folder where
    it renamed nothing has no record of it: undoing "each folder's last
    batch" would then revert an older batch there. So the newest batch over
    all folders is reverted, in the folders that have it; the others wait
    (`waiting`) for a later --undo."""
    journals = [read_journal(folder) for folder in folders]
    found = [_last_undoable(batches, set(os.listdir(folder))) for folder, batches in zip(folders, journals)]
    outcomes = [UndoOutcome(str(folder)) for folder in folders]
    candidates = {batch.id: batch for batch, _moves in found if batch is not None}
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
    positions = locate(folder, batch)
    if mode == "revert":
        outcome.plan = _plan_revert(folder, batch, positions)
        if not dry_run:
            outcome.result = apply_plan(folder, outcome.plan, label=f"revert of {batch.id}",
                                        recovers=batch.id, update_archive=batch.archived)
            close_batch(folder, batch.id, "reverted")  # also when nothing had moved yet
        return outcome
    outcome.plan = _plan_completion(batch, positions)
    if not dry_run:
        outcome.result = _complete(folder, batch, outcome.plan)
    return outcome


def _settle_interrupted_step(folder, batch) -> None:
    """A crash can stop at most one step halfway: the first step (in order)
    whose source and target both hold the file it moves."""
    for src, dst, _move, inode in batch.steps:
        if inode is not None and settle_half_move(folder, src, dst, inode):
            return


def locate(folder, batch) -> dict[int, Optional[str]]:
    """{move index: the name that now holds the move's file, or None}."""
    names: dict[int, list[str]] = defaultdict(list)
    inode_of = {}
    for src, dst, move, inode in batch.steps:
        names[move] += [src, dst]
        inode_of[move] = inode
    positions: dict[int, Optional[str]] = {}
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


def _not_found(batch, positions) -> list[Skip]:
    return [Skip(batch.moves[m].old, batch.moves[m].new, "file not found under any name of the batch")
            for m, now in positions.items() if now is None]


def _plan_revert(folder, batch, positions) -> RenamePlan:
    """Every file of `batch` back to its old name (a new batch)."""
    mapping = {now: batch.moves[m].old for m, now in positions.items()
               if now is not None and now != batch.moves[m].old}
    plan = plan_mapping(mapping, set(os.listdir(folder)))
    plan.skipped += _not_found(batch, positions)
    return plan


def _plan_completion(batch, positions) -> RenamePlan:
    """The remaining steps of `batch`: those whose file still sits at the
    step's source. Same batch id, so the journal closes the original batch."""
    plan = RenamePlan(batch.id, moves=list(batch.moves))
    remaining = dict(positions)
    for src, dst, move, _inode in batch.steps:
        if remaining.get(move) == src:
            plan.steps.append(Step(src, dst, move))
            remaining[move] = dst
    plan.skipped += _not_found(batch, positions)
    return plan


def _complete(folder, batch, plan) -> ApplyResult:
    result = ApplyResult(str(folder), batch.id)
    steps = [(s.src, s.dst, s.move, None) for s in plan.steps]
    failed: dict[int, str] = {}
    failed_set: set[int] = set()
    for i, (src, dst, move, _inode) in enumerate(steps):
        reason = move_step(folder, src, dst, move, failed_set)
        if reason:
            failed[i] = reason
            failed_set.add(move)
    failed_by_move = failed_moves(steps, failed)
    index = {move: i for i, move in enumerate(batch.moves)}
    for skip in plan.skipped:
        failed_by_move[index[Move(skip.name, skip.target)]] = (skip.reason, skip.name)
    with Journal(folder) as journal:
        finish(folder, journal, batch.id, batch.moves, failed_by_move,
               batch.update_archive and not batch.archived, result)
    return result

"""The command-line flow the three timestamp scripts share: their rename
flags, the checks before a batch, `--undo`/`--recover`, and one shift over
the pipeline folders (plan, confirm, apply). Results come back as
`report.Report` objects; the scripts print them (`cli.show`)."""
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

from discordpicextract import archive, cli, locking, logs
from discordpicextract.errors import UsageError
from discordpicextract.renames import report
from discordpicextract.renames.apply import FolderOutcome, apply_batch
from discordpicextract.renames.journal import (
    Journal,
    damaged_message,
    pending_batch,
    pending_message,
    read_journal_checked,
    refuse_if_busy,
    unfinished_elsewhere,
)
from discordpicextract.renames.plan import new_batch_id, plan_folder
from discordpicextract.renames.recovery import RECOVER_MODES, recover_folders, undo_last_batch
from discordpicextract.renames.values import parse_yes_no


def add_rename_arguments(parser, folders_help="folders to rename in") -> None:
    """--folders, --dry-run, --undo, --recover: the same in every script."""
    parser.add_argument("--folders", nargs="+", metavar="FOLDER", help=folders_help)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--undo", action="store_true",
                       help="revert the last rename batch (the newest over the folders; "
                            "run again to go further back)")
    group.add_argument("--recover", choices=RECOVER_MODES,
                       help="finish or roll back an interrupted rename batch")


def check_folders(folders) -> None:
    """Every folder must exist; UsageError (exit 2) names the first that does not."""
    seen: dict[tuple[int, int], str] = {}
    for folder in folders:
        cli.check_folder(folder, hint="choose folders with --folders")
        # One folder named twice would be renamed twice and journal two
        # batches under one id, the second hiding the first from --undo.
        stat = os.stat(folder)
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            raise UsageError(f"the same folder is given twice: {seen[key]} and {folder}")
        seen[key] = folder


def refuse_if_pending(folders, dry_run=False) -> list[str]:
    """A new batch must not start on top of an unfinished one (here, or in
    another folder of the last run's batch) nor beside a live run:
    UsageError/BusyError, or (a dry run, which changes nothing) a warning
    per such folder."""
    warnings = []
    for folder in folders:
        refuse_if_busy(folder)
        batch = pending_batch(folder)
        found = unfinished_elsewhere(folder) if batch is None else None
        if batch is None and found is None:
            continue
        if batch is not None:
            message = pending_message(folder, batch)
        else:
            assert found is not None
            message = pending_message(found[1], found[0])
        if not dry_run:
            raise UsageError(message)
        warnings.append(message)
    if not dry_run:
        check_writable(folders)
    return warnings


def journal_warnings(folders) -> list[str]:
    """One warning per journal with damaged lines (skipped, never obeyed)."""
    warnings = []
    for folder in folders:
        damaged = read_journal_checked(folder)[1]
        if damaged:
            warnings.append(damaged_message(folder, damaged))
    return warnings


def check_writable(folders) -> None:
    """Before a run renames in several folders, make sure each one can take
    its journal and its renames, so a read-only or busy folder stops the run
    before the first folder changes rather than halfway."""
    for folder in folders:
        Journal(folder).close()
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"cannot rename in folder {folder}: it is read-only")
        _check_archive_file(archive.archive_path(folder))


def _check_archive_file(path) -> None:
    """A download archive that is not SQLite would fail only after the
    renames: refuse before. (Its header is read, not the database, so a
    download running meanwhile does not make this wait.)"""
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot read the download archive {path}: {exc.strerror or exc}") from None
    if header and header != b"SQLite format 3\x00":
        raise UsageError(f"the download archive {path} is not an SQLite database; "
                         f"move it away (the downloader starts a new one) and run again")


def run_undo_or_recover(args, folders) -> Optional[report.Report]:
    """The scripts' --undo / --recover: None when neither was asked for;
    otherwise check the folders, run it on every one and return the report."""
    if not (args.undo or args.recover):
        return None
    check_folders(folders)
    damaged = journal_warnings(folders)
    if args.undo:
        # Undoing on top of a half-done batch would mix the two: recover first.
        warnings = refuse_if_pending(folders, args.dry_run)
        outcomes = undo_last_batch(folders, dry_run=args.dry_run)
        _restore_zones(outcomes, args.dry_run)
        _note_undo(outcomes, args.dry_run)
        return _flag_damaged(report.undo_report(outcomes, "Undo", args.dry_run, damaged + warnings), damaged)
    outcomes = recover_folders(folders, args.recover, dry_run=args.dry_run)
    if args.recover == "revert":
        _restore_zones(outcomes, args.dry_run)
    _note_undo(outcomes, args.dry_run)
    return _flag_damaged(report.undo_report(outcomes, f"Recover ({args.recover})", args.dry_run, damaged), damaged)


def _note_undo(outcomes, dry_run) -> None:
    """An --undo's or --recover's one-line summary (-q)."""
    done = skipped = 0
    for outcome in outcomes:
        if outcome.result:
            done, skipped = done + len(outcome.result.done), skipped + len(outcome.result.skipped)
        elif outcome.plan is not None and dry_run:
            done, skipped = done + len(outcome.plan.steps), skipped + len(outcome.plan.skipped)
    logs.note("renames", f"{done} {'would be renamed back' if dry_run else 'renamed back'}",
              f"{skipped} skipped" if skipped else "")


def _flag_damaged(done: report.Report, damaged) -> report.Report:
    """A journal with damaged lines needs a look (exit 1) even when the
    rest went fine."""
    if damaged and done.exit_code == cli.EXIT_OK:
        done.exit_code = cli.EXIT_FAILED
    return done


def _restore_zones(outcomes, dry_run) -> None:
    """A batch that changed the names' zone (its label says from which)
    and is now reverted puts the folder's zone record back too."""
    if dry_run:
        return
    from discordpicextract.timestamps import zone

    for outcome in outcomes:
        if outcome.batch is not None and outcome.plan is not None:
            zone.restore_after_revert(outcome.folder, outcome.batch.label)


@dataclass
class ShiftRun:
    """One shift planned over the folders, under one batch id for the whole
    run (each folder journals its own part)."""

    outcomes: list[FolderOutcome]
    warnings: list[str] = field(default_factory=list)


def plan_shift(folders, shift, dry_run) -> ShiftRun:
    """Refuse (or, dry, warn about) unfinished batches, then plan; nothing
    is touched."""
    warnings = refuse_if_pending(folders, dry_run)
    batch_id = new_batch_id()
    fates: dict = {}   # one shift over all folders: a name in several is decided once
    outcomes = [FolderOutcome(folder, plan_folder(folder, shift, batch_id, fates, locking.hold_token(folder)))
                for folder in folders]
    for outcome in outcomes:   # planned under the lock: its listing finds the leftovers (held_unless_asking)
        if outcome.plan.hidden:
            locking.remove_leftovers_among(outcome.folder, outcome.plan.hidden)
    return ShiftRun(outcomes, warnings)


@contextmanager
def held_unless_asking(folders, yes, dry_run) -> Iterator[None]:
    """The folders' locks from before the plan to the end of the run, for a
    run that will not stop to ask (`--yes`, or no terminal; see `confirm`):
    its plan is then made from listings no other run can change before it
    applies, so apply need not list every folder again. A run that asks
    plans first and locks once confirmed: no lock waits on a person. A
    dry run, or a folder that cannot take a lock (read-only: its own
    error comes from the usual checks), takes none here."""
    if dry_run or (not yes and cli.is_interactive()) or not all(os.access(f, os.W_OK | os.X_OK) for f in folders):
        yield
        return
    with locking.hold_all(folders, "renames", leftovers=False):   # plan_shift's listings remove them
        yield


def confirm(outcomes, yes, dry_run) -> bool:
    """On a terminal, a real run shows a preview (the count, the first and
    last renames per folder) and asks first (renaming whole folders is
    drastic); `--yes`, `--dry-run` or no terminal go ahead: unattended runs
    are driven by flags (a script checks that one was given) and every batch
    can be undone with --undo. Preview and question go to the terminal
    (stderr), so a redirected report never hides them."""
    count = sum(len(outcome.plan.moves) for outcome in outcomes)
    if yes or dry_run or count == 0 or not cli.is_interactive():
        return True
    print(f"Would rename {count} file(s):", file=sys.stderr)
    for line in report.preview_lines(outcomes):
        print(line, file=sys.stderr)
    return cli.ask(f"Rename {count} file(s) in {len(outcomes)} folder(s)? (Yes/No): ",
                   flag="--yes", parse=parse_yes_no)


def apply_shift(run: ShiftRun, *, label, yes, dry_run, show_matched=False, before_apply=None) -> report.Report:
    """Confirm (see `confirm`), apply each folder's plan unless dry, and
    return the report. `before_apply()` runs once confirmed, before the
    first rename (a zone conversion records the new zone there, so that a
    crash, --recover and --undo all find the record to put right)."""
    if not confirm(run.outcomes, yes, dry_run):
        return report.Report(["Nothing renamed."])
    if not dry_run:
        # One hold over every folder for the record and the renames: a run that
        # took a folder meanwhile stops this one before anything is written.
        with locking.hold_all([outcome.folder for outcome in run.outcomes], "renames"):
            if before_apply is not None:
                before_apply()
            results = apply_batch([(outcome.folder, outcome.plan) for outcome in run.outcomes], label=label)
        for outcome, result in zip(run.outcomes, results):
            outcome.result = result
    _note_shift(run.outcomes, dry_run)
    return report.adjustment_report(run.outcomes, dry_run, show_matched)


def _note_shift(outcomes, dry_run) -> None:
    """The run's one-line summary (-q, main.py --pipeline's table)."""
    renamed = sum(len(outcome.done) for outcome in outcomes)
    skipped = sum(len(outcome.skipped) for outcome in outcomes)
    unparsed = sum(len(outcome.plan.unparsed) for outcome in outcomes)
    logs.note("renames", f"{renamed} {'would be renamed' if dry_run else 'renamed'}",
              ", ".join(filter(None, [f"{skipped} skipped" if skipped else "",
                                      f"{unparsed} unparsed" if unparsed else ""])))

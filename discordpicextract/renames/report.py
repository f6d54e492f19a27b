"""Rename results as text: each function returns a `Report` (the lines for
stdout, the warnings for stderr, the exit code) and the script prints it
(`cli.show`). The reference layout: a rule, the title, one block per
folder, the totals."""
from dataclasses import dataclass, field

from discordpicextract import logs
from discordpicextract.errors import EXIT_FAILED, EXIT_OK
from discordpicextract.renames.apply import FolderOutcome
from discordpicextract.renames.recovery import UndoOutcome

RULE = "=" * 60
THIN = "-" * 60


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)     # for stdout
    warnings: list[str] = field(default_factory=list)  # for stderr, before the lines
    exit_code: int = EXIT_OK


def banner(title: str, subtitle: str, warnings=()) -> Report:
    return Report([RULE, title, subtitle, RULE], list(warnings))


def _file_lines(prefix, pairs, dry_run, indent="  ") -> list[str]:
    """One line per renamed file: always for a dry run (it shows the plan),
    otherwise only with -v (a whole archive is 100,000s of lines)."""
    if dry_run or logs.verbose():
        return [f"{prefix}: {old} -> {new}" for old, new in pairs]
    return [f"{indent}(one line per renamed file with -v)"] if pairs else []


def _folder_lines(outcome: FolderOutcome, dry_run, show_matched, indent="  ") -> list[str]:
    """Processing folder / Mode / one line per file / per-folder summary."""
    unparsed = outcome.plan.unparsed
    verb = "WOULD RENAME" if dry_run else "RENAMED"
    lines = [f"\nProcessing folder: {outcome.folder}",
             f"Mode: {'DRY RUN (no changes)' if dry_run else 'RENAME'}", THIN]
    lines += _file_lines(f"{indent}{verb}", outcome.done, dry_run, indent)   # Moves: (old, new) pairs
    lines += [f"{indent}SKIPPED: {skip.describe()}" for skip in outcome.skipped]
    lines += [f"{indent}UNPARSED: {name} (not a YYYY-MM-DD_HH-MM-SS_name file; left alone)" for name in unparsed]
    lines.append(f"Summary for {outcome.folder}:")
    if show_matched:
        lines.append(f"  Matched: {len(outcome.done) + len(outcome.skipped)}")
    lines.append(f"  {'Would rename' if dry_run else 'Renamed'}: {len(outcome.done)}")
    lines.append(f"  Skipped: {len(outcome.skipped)}")
    if unparsed:
        lines.append(f"  Unparsed names left alone: {len(unparsed)}")
    return lines


def adjustment_report(outcomes: list[FolderOutcome], dry_run, show_matched=False) -> Report:
    """Every folder of a shift and the overall summary; exit 1 when a file
    was skipped or left unparsed."""
    report = Report()
    for outcome in outcomes:
        report.lines += _folder_lines(outcome, dry_run, show_matched)
        report.warnings += outcome.warnings
    renamed = sum(len(outcome.done) for outcome in outcomes)
    skipped = sum(len(outcome.skipped) for outcome in outcomes)
    unparsed = sum(len(outcome.plan.unparsed) for outcome in outcomes)
    report.lines += ["", RULE, "Overall Summary:",
                     f"  Total {'that would be renamed' if dry_run else 'renamed'}: {renamed}",
                     f"  Total skipped: {skipped}"]
    if unparsed:
        report.lines.append(f"  Total unparsed names left alone: {unparsed}")
    report.lines.append(RULE)
    report.exit_code = EXIT_FAILED if skipped or unparsed else EXIT_OK
    return report


def _undo_folder_lines(outcome: UndoOutcome, dry_run) -> tuple[list[str], int]:
    """The lines of one folder of an --undo/--recover, and its skip count."""
    lines = [f"\nProcessing folder: {outcome.folder}"]
    if outcome.waiting is not None:
        lines.append(f"  Nothing to do now: this folder's last batch {outcome.waiting.id} "
                     f"({outcome.waiting.label or 'no label'}) is older than the batch this --undo "
                     f"reverts in the other folders; a further --undo reverts it")
        return lines, 0
    if outcome.batch is None or outcome.plan is None:
        lines.append("  Nothing to do (no batch to undo or recover).")
        return lines, 0
    batch = outcome.batch
    lines.append(f"  Batch: {batch.id} ({batch.label or 'no label'}, started {batch.created})")
    if outcome.note:
        lines.append(f"  {outcome.note[0].upper()}{outcome.note[1:]}")
    if outcome.result:
        done, skipped = len(outcome.result.done), outcome.result.skipped
        lines += _file_lines("  RENAMED", outcome.result.done, False)
    else:  # dry run: the exact steps, temporary names included
        done, skipped = len(outcome.plan.steps), outcome.plan.skipped
        lines += [f"  WOULD RENAME: {step.src} -> {step.dst}" for step in outcome.plan.steps]
    lines += [f"  SKIPPED: {skip.name} -> {skip.target} ({skip.reason})" for skip in skipped]
    lines.append(f"  {'Would rename' if dry_run else 'Renamed'}: {done}")
    lines.append(f"  Skipped: {len(skipped)}")
    return lines, len(skipped)


def undo_report(outcomes: list[UndoOutcome], title, dry_run, warnings=()) -> Report:
    """An --undo or --recover over the folders; exit 1 when a file was
    skipped."""
    report = Report([RULE, f"{title}{' - DRY RUN (no changes)' if dry_run else ''}", RULE], list(warnings))
    skipped_total = 0
    for outcome in outcomes:
        lines, skipped = _undo_folder_lines(outcome, dry_run)
        report.lines += lines
        skipped_total += skipped
        if outcome.result:
            report.warnings += outcome.result.warnings
    report.lines.append(RULE)
    report.exit_code = EXIT_FAILED if skipped_total else EXIT_OK
    return report


PREVIEW_FIRST_LAST = 3


def preview_lines(outcomes: list[FolderOutcome], show=PREVIEW_FIRST_LAST) -> list[str]:
    """What the plans would rename, per folder: the count, the first and
    last few renames, and what would be skipped (shown before a question)."""
    lines = []
    for outcome in outcomes:
        moves, skipped = outcome.plan.moves, outcome.plan.skipped
        lines.append(f"  {outcome.folder}: {len(moves)} file(s) to rename"
                     + (f", {len(skipped)} skipped" if skipped else ""))
        shown = moves if len(moves) <= 2 * show else [*moves[:show], None, *moves[-show:]]
        for move in shown:
            lines.append(f"    ... ({len(moves) - 2 * show} more) ..." if move is None
                         else f"    {move.old} -> {move.new}")
        lines += [f"    SKIPPED: {skip.describe()}" for skip in skipped]
    return lines

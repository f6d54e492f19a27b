"""Shift the name time of every image in the pipeline folders by a number of
hours (default config.DEFAULT_ADJUST_HOURS, -5: UTC names to US Eastern
standard time), through the safe rename engine: planned, journaled,
never overwriting, undoable (`--undo`).

    python adjust_timestamps.py [--folders A B C] [--hours -5] [--dry-run] [--yes]
    python adjust_timestamps.py --undo | --recover complete|revert
"""
import sys
from dataclasses import dataclass
from decimal import Decimal

import config
from discordpicextract import cli, logs, safe_rename
from discordpicextract.safe_rename import format_hours, parse_hours

RULE = "=" * 60
THIN = "-" * 60


@dataclass
class FolderOutcome:
    """A folder's plan and, once applied, what happened."""

    folder: str
    plan: safe_rename.RenamePlan
    result: safe_rename.ApplyResult = None

    @property
    def done(self):
        return self.result.done if self.result else self.plan.moves

    @property
    def skipped(self):
        return self.result.skipped if self.result else self.plan.skipped


def build_parser():
    parser = cli.ArgumentParser(
        prog="adjust_timestamps.py",
        description="Add (or subtract) hours to the time in every image name of the pipeline folders.")
    parser.add_argument("--hours", type=cli.argparse_type(parse_hours), default=None,
                        help=f"hours to add, negative subtracts (default {config.DEFAULT_ADJUST_HOURS})")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation on a terminal")
    safe_rename.add_rename_arguments(parser, f"folders (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def plan_adjustments(folders, shift):
    """One plan per folder, under one batch id for the whole run (each
    folder journals its own part); nothing is touched."""
    batch_id = safe_rename.new_batch_id()
    return [FolderOutcome(folder, safe_rename.plan_folder(folder, shift, batch_id)) for folder in folders]


def apply_adjustments(outcomes, label):
    for outcome in outcomes:
        outcome.result = safe_rename.apply_plan(outcome.folder, outcome.plan, label=label)
    return outcomes


def confirm(outcomes, yes, dry_run) -> bool:
    """On a terminal, a real run asks first (renaming whole folders is
    drastic); `--yes`, `--dry-run` or no terminal go ahead: unattended runs
    are driven by flags and every batch can be undone with --undo."""
    count = sum(len(outcome.plan.moves) for outcome in outcomes)
    if yes or dry_run or count == 0 or not cli.is_interactive():
        return True
    return cli.ask(f"Rename {count} file(s) in {len(outcomes)} folder(s)? (Yes/No): ",
                   flag="--yes", parse=safe_rename.parse_yes_no)


def describe_shift(hours) -> str:
    hours = Decimal(hours)
    amount = format_hours(abs(hours))
    if hours < 0:
        return f"Subtracting {amount} hours from the time in filenames"
    return f"Adding {amount} hours to the time in filenames"


def print_header(title, subtitle):
    print(RULE)
    print(title)
    print(subtitle)
    print(RULE)


def print_folder(outcome, dry_run, indent="  ", show_matched=False):
    """The reference layout: Processing folder / Mode / one line per file /
    per-folder summary. Returns (renamed, skipped, unparsed) counts."""
    print(f"\nProcessing folder: {outcome.folder}")
    print(f"Mode: {'DRY RUN (no changes)' if dry_run else 'RENAME'}")
    print(THIN)
    verb = "WOULD RENAME" if dry_run else "RENAMED"
    for move in outcome.done:
        print(f"{indent}{verb}: {move.old} -> {move.new}")
    for skip in outcome.skipped:
        print(f"{indent}SKIPPED: {skip.describe()}")
    unparsed = outcome.plan.unparsed
    for name in unparsed:
        print(f"{indent}UNPARSED: {name} (not a YYYY-MM-DD_HH-MM-SS_name file; left alone)")
    print(f"Summary for {outcome.folder}:")
    if show_matched:
        print(f"  Matched: {len(outcome.done) + len(outcome.skipped)}")
    print(f"  {'Would rename' if dry_run else 'Renamed'}: {len(outcome.done)}")
    print(f"  Skipped: {len(outcome.skipped)}")
    if unparsed:
        print(f"  Unparsed names left alone: {len(unparsed)}")
    return len(outcome.done), len(outcome.skipped), len(unparsed)


def report_adjustments(outcomes, dry_run, show_matched=False) -> int:
    """Print every folder and the overall summary; return the exit code."""
    renamed = skipped = unparsed = 0
    for outcome in outcomes:
        counts = print_folder(outcome, dry_run, show_matched=show_matched)
        renamed, skipped, unparsed = renamed + counts[0], skipped + counts[1], unparsed + counts[2]
    print()
    print(RULE)
    print("Overall Summary:")
    print(f"  Total {'that would be renamed' if dry_run else 'renamed'}: {renamed}")
    print(f"  Total skipped: {skipped}")
    if unparsed:
        print(f"  Total unparsed names left alone: {unparsed}")
    print(RULE)
    logs.note("renames", f"{renamed} {'would be renamed' if dry_run else 'renamed'}",
              ", ".join(filter(None, [f"{skipped} skipped" if skipped else "",
                                      f"{unparsed} unparsed" if unparsed else ""])))
    return cli.EXIT_ITEMS_FAILED if skipped or unparsed else cli.EXIT_OK


def run_batches(folders, shift, *, label, title, subtitle, yes, dry_run, show_matched=False) -> int:
    """Plan, confirm, apply and report one shift over `folders`: shared by
    adjust_timestamps.py and adjust_specific_timestamp.py."""
    safe_rename.refuse_if_pending(folders, dry_run)
    outcomes = plan_adjustments(folders, shift)
    print_header(title, subtitle)
    if not confirm(outcomes, yes, dry_run):
        print("Nothing renamed.")
        return cli.EXIT_OK
    if not dry_run:
        apply_adjustments(outcomes, label)
    return report_adjustments(outcomes, dry_run, show_matched)


def _main(argv):
    args = build_parser().parse_args(argv)
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    code = safe_rename.run_undo_or_recover(args, folders)
    if code is not None:
        return code
    safe_rename.check_folders(folders)
    hours = args.hours if args.hours is not None else parse_hours(config.DEFAULT_ADJUST_HOURS)
    return run_batches(folders, safe_rename.shift_by(hours),
                       label=f"adjust_timestamps --hours {format_hours(hours)}",
                       title="File Timestamp Adjustment Script", subtitle=describe_shift(hours),
                       yes=args.yes, dry_run=args.dry_run)


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

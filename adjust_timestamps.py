"""Shift the name time of every image in the pipeline folders by a number of
hours (default config.DEFAULT_ADJUST_HOURS, -5: UTC names to US Eastern
standard time), through the safe rename engine: planned, journaled,
never overwriting, undoable (`--undo`).

    python adjust_timestamps.py [--folders A B C] [--hours -5] [--dry-run] [--yes]
    python adjust_timestamps.py --undo | --recover complete|revert
"""
import sys
from decimal import Decimal

import config
from discordpicextract import cli
from discordpicextract.renames import command, report
from discordpicextract.renames.values import format_hours, parse_hours, shift_by


def build_parser():
    parser = cli.ArgumentParser(
        prog="adjust_timestamps.py",
        description="Add (or subtract) hours to the time in every image name of the pipeline folders.")
    parser.add_argument("--hours", type=cli.argparse_type(parse_hours), default=None,
                        help=f"hours to add, negative subtracts (default {config.DEFAULT_ADJUST_HOURS})")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation on a terminal")
    command.add_rename_arguments(parser, f"folders (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def describe_shift(hours) -> str:
    hours = Decimal(hours)
    amount = format_hours(abs(hours))
    if hours < 0:
        return f"Subtracting {amount} hours from the time in filenames"
    return f"Adding {amount} hours to the time in filenames"


def _main(argv):
    args = build_parser().parse_args(argv)
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    undone = command.run_undo_or_recover(args, folders)
    if undone is not None:
        return cli.show(undone)
    command.check_folders(folders)
    hours = args.hours if args.hours is not None else parse_hours(config.DEFAULT_ADJUST_HOURS)
    run = command.plan_shift(folders, shift_by(hours), args.dry_run)
    cli.show(report.banner("File Timestamp Adjustment Script", describe_shift(hours), run.warnings))
    return cli.show(command.apply_shift(run, label=f"adjust_timestamps --hours {format_hours(hours)}",
                                        yes=args.yes, dry_run=args.dry_run))


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

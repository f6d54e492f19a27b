"""Targeted, one-off timestamp corrections: shift by some hours only the
names dated in a range (the name's own date, as written in the folder's
recorded zone), optionally only those whose name time is before and/or after
a clock time. Same safe rename engine as adjust_timestamps.py: planned,
journaled, never overwriting, undoable (`--undo`); folders recorded in
different zones are refused.

    python adjust_specific_timestamp.py --date 2025-03-10 --after 16:00:00 --hours -1
    python adjust_specific_timestamp.py --from 2025-03-10 --to 2025-03-15 --before 09:30:00 --hours 5 --dry-run
"""
import sys
from dataclasses import dataclass
from datetime import date, time
from typing import Optional

import config
from discordpicextract import cli
from discordpicextract.renames import command, report
from discordpicextract.renames.values import (
    end_not_before,
    format_hours,
    parse_clock,
    parse_date,
    parse_hours,
    shift_by,
)
from discordpicextract.timestamps import zone as names_zone


@dataclass(frozen=True)
class Selection:
    """Which names to shift: dated start..end (inclusive); time strictly
    before `before` and/or strictly after `after` (both given: between)."""

    start: date
    end: date
    before: Optional[time] = None
    after: Optional[time] = None

    def __post_init__(self):
        end_not_before(self.start, self.end)
        if self.before and self.after and self.after >= self.before:
            raise ValueError(f"--after {self.after} and --before {self.before} match no time of day")

    def matches(self, parsed) -> bool:
        moment = parsed.timestamp.time()
        return (self.start <= parsed.date <= self.end
                and (self.before is None or moment < self.before)
                and (self.after is None or moment > self.after))

    def describe(self) -> str:
        dates = str(self.start) if self.start == self.end else f"{self.start} to {self.end}"
        parts = [f"names dated {dates}"]
        if self.after:
            parts.append(f"time after {self.after}")
        if self.before:
            parts.append(f"time before {self.before}")
        return ", ".join(parts)


def build_parser():
    parser = cli.ArgumentParser(
        prog="adjust_specific_timestamp.py",
        description="Shift the name time of the images matching a date range and time conditions.")
    parser.add_argument("--date", type=cli.argparse_type(parse_date), help="one date (yyyy-mm-dd)")
    parser.add_argument("--from", dest="start", type=cli.argparse_type(parse_date), metavar="DATE",
                        help="first date (yyyy-mm-dd)")
    parser.add_argument("--to", dest="end", type=cli.argparse_type(parse_date), metavar="DATE",
                        help="last date (yyyy-mm-dd)")
    parser.add_argument("--before", type=cli.argparse_type(parse_clock), metavar="HH:MM:SS",
                        help="only names whose time is before HH:MM:SS")
    parser.add_argument("--after", type=cli.argparse_type(parse_clock), metavar="HH:MM:SS",
                        help="only names whose time is after HH:MM:SS")
    parser.add_argument("--hours", type=cli.argparse_type(parse_hours),
                        help="hours to add, negative subtracts (required; asked on a terminal)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    names_zone.add_timezone_argument(parser)
    command.add_rename_arguments(parser, f"folders (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def selection_from(args) -> Selection:
    """The selection from flags, asking on a terminal for what is missing."""
    if args.date and (args.start or args.end):
        raise cli.UsageError("use either --date or --from/--to, not both")
    if args.date:
        start = end = args.date
    else:
        start = args.start or cli.ask("From date (yyyy-mm-dd): ", flag="--from", parse=parse_date)
        end = args.end or cli.ask("To date (yyyy-mm-dd): ", flag="--to",
                                  parse=lambda text: end_not_before(start, parse_date(text)))
    try:
        return Selection(start, end, args.before, args.after)
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None


def _main(argv):
    args = build_parser().parse_args(argv)
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    undone = command.run_undo_or_recover(args, folders)
    if undone is not None:
        return cli.show(undone)
    command.check_folders(folders)
    selection = selection_from(args)
    hours = args.hours if args.hours is not None else cli.ask(
        "Add how many hours? (can be negative to subtract): ", flag="--hours", parse=parse_hours)
    names_zone.common_zone(folders, args.timezone)  # one shift over names in two zones is wrong in one
    with command.held_unless_asking(folders, args.yes, args.dry_run):
        run = command.plan_shift(folders, shift_by(hours, selection.matches), args.dry_run)
        subtitle = f"Adding {format_hours(hours)} hours to {selection.describe()}"
        cli.show(report.banner("Specific Timestamp Adjustment", subtitle, run.warnings))
        label = f"adjust_specific_timestamp {selection.describe()} --hours {format_hours(hours)}"
        return cli.show(command.apply_shift(run, label=label, yes=args.yes, dry_run=args.dry_run,
                                            show_matched=True))


def main(argv=None):
    return cli.run(cli.without_gc_passes(_main), argv)


if __name__ == "__main__":
    sys.exit(main())

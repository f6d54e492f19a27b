"""Find images whose name time falls outside US market hours (a sign of a
time-zone error), show where and when it happened, and correct it period by
period across all pipeline folders through the safe rename engine.

    python quality_check_timestamps.py [--folder F] [--plot PATH]
        [--folders A B C] [--adjust START:END:HOURS ...] [--no-adjust]
        [--dry-run] [--undo] [--recover complete|revert]

Name times are read in config.TIMEZONE and converted to
config.MARKET_TIMEZONE; the hours TRADING_START..TRADING_END are inside, both
ends included. A name time that does not exist locally (the spring-forward
gap) is read with the offset in force before the change, an ambiguous one
(the fall-back hour) as its first occurrence: PEP 495 fold=0, so the result
is always the same. Dates in the report, and the dates of adjustment
periods, are market-zone dates.
"""
import errno
import itertools
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import config
from discordpicextract import cli, fileops, logs, naming
from discordpicextract.market import is_outside, reminder_windows, to_market, trading_hours
from discordpicextract.renames import command
from discordpicextract.renames.apply import FolderOutcome, apply_plan
from discordpicextract.renames.plan import new_batch_id, plan_folder
from discordpicextract.renames.values import (
    end_not_before,
    format_hours,
    parse_date,
    parse_hours,
    parse_yes_no,
    shift_by,
)

RULE = "=" * 60
THIN = "-" * 60
SHOW_FIRST_LAST = 5
WARN_MARK, OK_MARK = "\u26a0", "\u2713"


# --- the check ---------------------------------------------------------------

@dataclass(frozen=True)
class OutsideFile:
    name: str
    market_time: datetime  # naive, in config.MARKET_TIMEZONE


@dataclass
class CheckResult:
    folder: str
    total_files: int = 0
    outside: list = field(default_factory=list)        # [OutsideFile], by time
    dates_with_files: set = field(default_factory=set)  # market dates
    unparsed: list = field(default_factory=list)

    @property
    def outside_dates(self):
        return sorted({item.market_time.date() for item in self.outside})

    @property
    def missing_dates(self):
        """Dates between the first and last outside-hours date that have
        files but none outside hours."""
        dates = self.outside_dates
        if not dates:
            return []
        outside = set(dates)
        return sorted(d for d in self.dates_with_files if dates[0] <= d <= dates[-1] and d not in outside)

    @property
    def hour_counts(self):
        return Counter(item.market_time.hour for item in self.outside)


def check_folder(folder) -> CheckResult:
    """The files of `folder` whose market time is outside trading hours."""
    start, end = trading_hours()
    listing = naming.list_images(folder)
    result = CheckResult(str(folder), len(listing.images), unparsed=[p.name for p in listing.unparsed])
    for image in listing.images:
        market = to_market(image.timestamp)
        result.dates_with_files.add(market.date())
        if is_outside(market.time(), start, end):
            result.outside.append(OutsideFile(image.name, market))
    result.outside.sort(key=lambda item: (item.market_time, item.name))
    return result


# Written into the plot's PNG metadata: the only file --plot may replace is
# an earlier plot of ours, never a chart, a log or anything else at PATH.
PLOT_SOFTWARE = "DiscordPicExtract quality_check_timestamps"


def save_plot(hour_counts, path, folder) -> Path:
    """Bar chart of outside-hours files per hour of day, written through a
    temp file so a half-written PNG never replaces a good one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.exists() and not _is_our_plot(path):
        raise FileExistsError(errno.EEXIST, "exists and is not a plot written by this tool; not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    hours = list(range(24))
    figure, axes = plt.subplots(figsize=(10, 5))
    try:
        axes.bar(hours, [hour_counts.get(h, 0) for h in hours], color="tab:red")
        axes.set_xticks(hours)
        axes.set_xlabel(f"Hour of day ({config.MARKET_TIMEZONE})")
        axes.set_ylabel("Files outside trading hours")
        axes.set_title(f"Timestamps outside trading hours: {folder}")
        temp = fileops.temp_path_beside(path)
        try:
            figure.savefig(temp, format="png", dpi=100, metadata={"Software": PLOT_SOFTWARE})
            os.chmod(temp, fileops.new_file_mode())  # the temp file is private; the plot is not
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    finally:
        plt.close(figure)
    return path


def _is_our_plot(path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == PLOT_SOFTWARE
    except (OSError, UnidentifiedImageError, ValueError):
        return False


# --- the report ----------------------------------------------------------------

def print_check(result: CheckResult, plot_path, plot_error=None):
    start, end = trading_hours()
    print(RULE)
    print("Quality Check: Timestamps Outside Trading Hours")
    print(f"Checking folder: {result.folder}")
    print(f"Trading hours: {start} to {end} ({config.MARKET_TIMEZONE}; names read in {config.TIMEZONE})")
    print(RULE)
    for name in result.unparsed:
        print(f"  UNPARSED: {name} (not a YYYY-MM-DD_HH-MM-SS_name file; not checked)")
    if not result.outside:
        print(f"\nAll {result.total_files} file(s) are within trading hours. No plot written.")
        print(RULE)
        return
    _print_files(result.outside)
    _print_dates(result)
    _print_reminder(result.outside_dates)
    _print_distribution(result.hour_counts)
    if plot_path:
        print(f"\nSaved time-of-day distribution plot to: {plot_path}")
    elif plot_error:
        print(f"\nCould not save the plot: {plot_error}")
    print()
    print(f"Total: {len(result.outside)} file(s) outside trading hours")
    print(f"Total: {len(result.outside_dates)} unique date(s) with files outside trading hours")
    print(f"Total: {len(result.hour_counts)} hour bucket(s) with files outside trading hours")
    print(f"Total: {len(result.missing_dates)} missing date(s) in the period range")
    print(RULE)


def _line(item):
    return f"  {item.name} (time: {item.market_time:%H:%M:%S})"


def _print_files(outside):
    count = len(outside)
    print()
    if count <= 2 * SHOW_FIRST_LAST:
        print(f"Displaying all {count} file(s) outside trading hours:")
        print(THIN)
        for item in outside:
            print(_line(item))
    else:
        print(f"Displaying first {SHOW_FIRST_LAST} and last {SHOW_FIRST_LAST} of {count} "
              f"file(s) outside trading hours:")
        print(THIN)
        print("First 5 files:")
        for item in outside[:SHOW_FIRST_LAST]:
            print(_line(item))
        print(f"\n... ({count - 2 * SHOW_FIRST_LAST} files omitted) ...\n")
        print("Last 5 files:")
        for item in outside[-SHOW_FIRST_LAST:]:
            print(_line(item))
    print(THIN)


def _print_dates(result):
    dates = result.outside_dates
    print(f"\nDates when outside trading hours occurred ({len(dates)} unique date(s)):")
    print(THIN)
    for day in dates:
        print(f"  {day}")
    print(THIN)
    missing = result.missing_dates
    print(f"\nMissing dates between first ({dates[0]}) and last ({dates[-1]}) outside trading hour timestamps:")
    if missing:
        print(f"Found {len(missing)} date(s) with files but no outside trading hour timestamps:")
        print(THIN)
        for day in missing:
            print(f"  {day}")
        print(THIN)
        print("\nThis indicates the outside trading hours occurred in MULTIPLE periods (not continuous).")
    else:
        print("None: every date with files in this range has outside trading hour timestamps.")
        print("\nThis indicates the outside trading hours occurred in ONE continuous period.")


def _print_reminder(dates):
    first, last = dates[0], dates[-1]
    print()
    print(RULE)
    print("QUALITY CHECK REMINDER")
    print(RULE)
    print("IMPORTANT: Please manually check timestamps on dates around the first and last")
    print("outside trading hour occurrences for quality assurance purposes.")
    print()
    print(f"First date with outside trading hours: {first}")
    print(f"Last date with outside trading hours: {last}")
    print()
    print("Please manually verify timestamps on:")
    before, after = reminder_windows(first, last)
    print(f"  - A few days BEFORE the first date (around {before[0]} to {before[1]})")
    print(f"  - A few days AFTER the last date (around {after[0]} to {after[1]})")
    print()
    print("REASON: The timestamps represent when signals occurred. If signals don't occur")
    print("until later in the day, timezone issues might not be visible in the data.")
    print("Manual verification of dates around the boundaries helps ensure no timezone")
    print("adjustment issues were missed due to signal timing.")
    print(RULE)


def _print_distribution(hour_counts):
    print(f"\nDistribution of timestamps outside trading hours by hour of day ({config.MARKET_TIMEZONE}):")
    print(THIN)
    for hour in sorted(hour_counts):
        print(f"  {hour:02d}:00 - {hour_counts[hour]} file(s)")
    print(THIN)


# --- adjustment ------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    start: date
    end: date
    hours: object  # Decimal

    def label(self):
        return f"{self.start} to {self.end}, {format_hours(self.hours)} hours"


def parse_period(text) -> Period:
    """START:END:HOURS, e.g. 2025-03-10:2025-03-15:-5."""
    parts = str(text).split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"expected START:END:HOURS, e.g. 2025-03-10:2025-03-15:-5 (got {text!r})")
    start, end = parse_date(parts[0]), parse_date(parts[1])
    end_not_before(start, end)
    return Period(start, end, parse_hours(parts[2]))


def parse_period_count(text) -> int:
    try:
        count = int(str(text).strip())
    except ValueError:
        raise ValueError(f"enter a whole number of periods (got {text!r})") from None
    if not 1 <= count <= 100:
        raise ValueError("enter a number of periods from 1 to 100")
    return count


def ask_adjust() -> bool:
    return cli.ask("\nDo you want to adjust timestamps? (Yes/No): ", flag="--adjust",
                   parse=parse_yes_no)


def ask_period(number) -> Period:
    print(f"\n--- Period {number} ---")
    start = cli.ask(f"Period {number} start date (yyyy-mm-dd): ", flag="--adjust", parse=parse_date)
    end = cli.ask(f"Period {number} end date (yyyy-mm-dd): ", flag="--adjust",
                  parse=lambda text: end_not_before(start, parse_date(text)))
    hours = cli.ask("Add how many hours? (can be negative to subtract): ", flag="--adjust",
                    parse=parse_hours)
    return Period(start, end, hours)


@dataclass
class PeriodOutcome:
    number: int
    period: Period
    folders: list  # [FolderOutcome]

    @property
    def renamed(self):
        return sum(len(outcome.done) for outcome in self.folders)

    @property
    def skipped(self):
        return sum(len(outcome.skipped) for outcome in self.folders)


def plan_period(number, period, folders, adjusted) -> PeriodOutcome:
    """Plan one period over every folder. Files already renamed by an
    earlier period of this run (`adjusted`: folder -> names) are left out,
    so no file is shifted twice."""
    batch_id = new_batch_id()
    outcomes = []
    for folder in folders:
        done = adjusted.setdefault(folder, set())

        def select(parsed, done=done):
            return (parsed.name not in done
                    and period.start <= to_market(parsed.timestamp).date() <= period.end)

        shift = shift_by(period.hours, select)
        outcomes.append(FolderOutcome(folder, plan_folder(folder, shift, batch_id)))
    return PeriodOutcome(number, period, outcomes)


def apply_period(outcome: PeriodOutcome, adjusted, dry_run):
    label = f"quality_check_timestamps period {outcome.number}: {outcome.period.label()}"
    for folder_outcome in outcome.folders:
        if not dry_run:
            folder_outcome.result = apply_plan(folder_outcome.folder, folder_outcome.plan, label=label)
        # A dry run leaves files under their old names: exclude those too,
        # so the later periods' plans match what a real run would do.
        adjusted[folder_outcome.folder].update(
            name for move in folder_outcome.done for name in (move.new, move.old if dry_run else move.new))
    return outcome


def print_period(outcome: PeriodOutcome, dry_run):
    for folder_outcome in outcome.folders:
        for warning in folder_outcome.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    period = outcome.period
    print(f"\nAdjusting timestamps for period {outcome.number}{' (DRY RUN, no changes)' if dry_run else ''}:")
    print(f"  Date range: {period.start} to {period.end}")
    print(f"  Hours to add: {format_hours(period.hours)}")
    print(f"  Folders: {', '.join(f.folder for f in outcome.folders)}")
    verb = "would be renamed" if dry_run else "renamed"
    for folder in outcome.folders:
        plan = folder.plan
        extra = f" ({plan.unselected} not in the period" + (
            f", {len(plan.unparsed)} unparsed names left alone)" if plan.unparsed else ")")
        print(f"  {folder.folder}: {len(folder.done)} {verb}, {len(folder.skipped)} skipped{extra}")
        if dry_run:
            for move in folder.done:
                print(f"    WOULD RENAME: {move.old} -> {move.new}")
        for skip in folder.skipped:
            print(f"    SKIPPED: {skip.describe()}")
    print(f"\nPeriod {outcome.number} summary: {outcome.renamed} files {verb} across all folders")


def run_adjustment(periods, folders, dry_run):
    """Flags given: apply each period; none (a terminal): the dialogue.
    Returns the PeriodOutcomes, and the UsageError that stopped the
    dialogue after some periods were applied (or None)."""
    print()
    print(RULE)
    print("Timestamp Adjustment")
    print(RULE)
    adjusted, outcomes = {}, []
    if periods is None:
        if not ask_adjust():
            print("No adjustment made.")
            return outcomes, None
        count = cli.ask("\nHow many periods need to change? ", flag="--adjust", parse=parse_period_count)
        periods = (ask_period(number) for number in range(1, count + 1))
    else:
        periods = _announce(periods)
    periods = iter(periods)
    for number in itertools.count(1):
        try:
            period = next(periods, None)
        except cli.UsageError as exc:  # end of input in the middle of the dialogue
            if not outcomes or dry_run:
                raise
            print(f"\nStopped before period {number}: {exc}.")
            print("Period 1 was applied; --undo reverts it." if number == 2 else
                  f"Periods 1 to {number - 1} were applied; --undo reverts them one period at a time.")
            return outcomes, exc
        if period is None:
            break
        outcome = apply_period(plan_period(number, period, folders, adjusted), adjusted, dry_run)
        print_period(outcome, dry_run)
        outcomes.append(outcome)
    print()
    print(RULE)
    print("Timestamp adjustment completed!" if not dry_run else "Dry run completed: nothing was renamed.")
    print(RULE)
    return outcomes, None


def _announce(periods):
    for number, period in enumerate(periods, 1):
        print(f"\n--- Period {number} ---")
        print(f"Period {number}: {period.start} to {period.end}, add {format_hours(period.hours)} hours (--adjust)")
        yield period


def _symbol(char, fallback):
    """The reference's check marks, or ASCII where stdout cannot encode them
    (a redirected Windows console)."""
    try:
        char.encode(sys.stdout.encoding or "ascii")
        return char
    except (UnicodeEncodeError, LookupError):
        return fallback


def post_adjustment_check(folders):
    results = [check_folder(folder) for folder in folders]
    print_post_check(results)
    print_post_summary(results)
    return results


def print_post_check(results):
    print()
    print(RULE)
    print("Post-Adjustment Quality Check")
    print(RULE)
    print(f"Running quality check on all {len(results)} folders to verify adjustments...")
    for result in results:
        folder = result.folder
        print(f"\nChecking folder: {folder}")
        print(THIN)
        if result.outside:
            print(f"  {_symbol(WARN_MARK, '!')} {folder}: {len(result.outside)} file(s) outside trading hours")
            print(f"     {len(result.outside_dates)} unique date(s) with files outside trading hours")
        else:
            print(f"  {_symbol(OK_MARK, 'OK')} {folder}: All files are within trading hours")


def print_post_summary(results):
    print()
    print(RULE)
    print("Post-Adjustment Summary")
    print(RULE)
    all_dates = set()
    for result in results:
        dates = result.outside_dates
        all_dates.update(dates)
        print(f"{result.folder}:")
        print(f"  Files outside trading hours: {len(result.outside)}")
        print(f"  Unique dates: {len(dates)}")
        if dates:
            print(f"  Dates: {', '.join(map(str, dates))}")
        print()
    print("Overall Summary:")
    print(f"  Total files outside trading hours across all folders: {sum(len(r.outside) for r in results)}")
    print(f"  Total unique dates with files outside trading hours: {len(all_dates)}")
    if all_dates:
        print(f"  All dates: {', '.join(map(str, sorted(all_dates)))}")
    print(RULE)


# --- command line ------------------------------------------------------------------

def build_parser():
    parser = cli.ArgumentParser(
        prog="quality_check_timestamps.py",
        description="Check image name times against market hours; optionally shift periods of them.")
    parser.add_argument("--folder", default=config.CLEAN_OUTPUT_DIR,
                        help=f"folder to check (default {config.CLEAN_OUTPUT_DIR})")
    parser.add_argument("--plot", default=config.PLOT_FILE, metavar="PATH",
                        help=f"where to save the distribution plot (default {config.PLOT_FILE})")
    parser.add_argument("--adjust", action="append", type=cli.argparse_type(parse_period),
                        metavar="START:END:HOURS",
                        help="shift names dated START..END (market dates) by HOURS; repeatable")
    parser.add_argument("--no-adjust", action="store_true", help="only check, never ask")
    command.add_rename_arguments(
        parser, f"folders to adjust (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.adjust and args.no_adjust:
        raise cli.UsageError("--adjust and --no-adjust cannot be used together")
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    undone = command.run_undo_or_recover(args, folders)
    if undone is not None:
        return cli.show(undone)
    cli.check_folder(args.folder, hint="choose it with --folder")
    try:
        result = check_folder(args.folder)
    except OSError as exc:
        raise cli.UsageError(f"cannot read folder {args.folder}: {exc.strerror or exc}") from None
    plot_path, plot_error = None, None
    if result.outside:
        try:
            plot_path = save_plot(result.hour_counts, args.plot, args.folder)
        except OSError as exc:
            plot_error = f"{args.plot}: {exc.strerror or exc}"
    print_check(result, plot_path, plot_error)
    failed = bool(result.unparsed or plot_error)
    logs.note("quality_check_timestamps.py",
              f"{result.total_files} files, {len(result.outside)} outside trading hours "
              f"on {len(result.outside_dates)} dates",
              ", ".join(filter(None, [f"{len(result.unparsed)} skipped names" if result.unparsed else "",
                                      f"plot not written: {plot_error}" if plot_error else ""])))
    dialogue = (not args.adjust and not args.no_adjust and result.outside and cli.is_interactive())
    if args.adjust or dialogue:
        command.check_folders(folders)
        for warning in command.refuse_if_pending(folders, args.dry_run):
            print(f"warning: {warning}", file=sys.stderr)
        outcomes, stopped = run_adjustment(args.adjust, folders, args.dry_run)
        failed = failed or any(outcome.skipped for outcome in outcomes)
        if outcomes and not args.dry_run:
            post_adjustment_check(folders)
        if stopped:
            print(f"error: {stopped}", file=sys.stderr)
            return cli.EXIT_USAGE
    return cli.EXIT_ITEMS_FAILED if failed else cli.EXIT_OK


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

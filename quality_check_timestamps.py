"""Find images whose name time falls outside US market hours (a sign of a
time-zone error), find the periods of names off by the same amount, check
names against the post times Discord recorded, show when it happened, and
correct it period by period across all pipeline folders through the safe
rename engine.

    python quality_check_timestamps.py [--folder F] [--plot PATH]
        [--verify [--archive PATH]] [--verbose] [--timezone ZONE]
        [--folders A B C] [--adjust START:END:HOURS ...] [--no-adjust]
        [--dry-run] [--undo] [--recover complete|revert]

Name times are read in the folder's recorded zone (config.TIMEZONE when
none is recorded; --timezone overrides) and converted to
config.MARKET_TIMEZONE; the hours TRADING_START..TRADING_END are inside, both
ends included. A name time that does not exist locally (the spring-forward
gap) is read with the offset in force before the change, an ambiguous one
(the fall-back hour) as its first occurrence: PEP 495 fold=0, so the result
is always the same. Dates in the report, and the dates of adjustment
periods, are market-zone dates.

Each date's offset is estimated from how its times sit against the session;
dates one shift fits are grouped into periods, each printed with the
`--adjust` line that brings it inside hours. `--verify` compares every name
whose message is known (the folder's archive, or by content the archive at
--archive) with the post time its Discord snowflake encodes: exit 0 when
every known file agrees, 1 when any differs; where it knows, the truth wins
over the estimate.
"""
import itertools
import logging
import os
import shlex
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import config
from discordpicextract import cli, logs, naming
from discordpicextract.market import market_reader, reminder_windows, trading_hours
from discordpicextract.renames import command
from discordpicextract.renames.apply import FolderOutcome, apply_batch
from discordpicextract.renames.plan import new_batch_id, plan_folder
from discordpicextract.renames.report import preview_lines
from discordpicextract.renames.values import (
    end_not_before,
    format_hours,
    parse_date,
    parse_hours,
    parse_yes_no,
    shift_by,
)
from discordpicextract.timestamps import periods, plot, truth, zone
from discordpicextract.timestamps.truth import format_offset

RULE = "=" * 60
THIN = "-" * 60
SHOW_FIRST_LAST = 5
log = logging.getLogger("discordpicextract.quality")  # -v: each file outside hours, each period's evidence
WARN_MARK, OK_MARK = "\u26a0", "\u2713"


# --- the check ---------------------------------------------------------------

@dataclass(frozen=True)
class OutsideFile:
    name: str
    market_time: datetime  # naive, in config.MARKET_TIMEZONE


@dataclass
class CheckResult:
    """What the check found, held compactly: every file's market time as
    seconds of its date (an array per date), and of the files outside hours
    only the count, their dates and hours, and the first and last few."""

    folder: str
    total_files: int = 0
    outside_count: int = 0
    shown: list = field(default_factory=list)          # [OutsideFile] by time: all, or the first and last few
    outside_day_set: set = field(default_factory=set)  # market dates with a file outside hours
    hour_counts: Counter = field(default_factory=Counter)
    unparsed: list = field(default_factory=list)
    zone: str = config.TIMEZONE                         # the zone the names were read in
    day_times: dict = field(default_factory=dict)       # {market date: array of seconds of day}

    @property
    def dates_with_files(self):
        return self.day_times.keys()

    @property
    def outside_dates(self):
        return sorted(self.outside_day_set)

    @property
    def missing_dates(self):
        """Dates between the first and last outside-hours date that have
        files but none outside hours."""
        dates = self.outside_dates
        if not dates:
            return []
        outside = self.outside_day_set
        return sorted(d for d in self.dates_with_files if dates[0] <= d <= dates[-1] and d not in outside)

    def day_seconds(self) -> dict:
        """{market date: [market time of day in seconds]}, for the estimate."""
        return self.day_times


class _Ends:
    """The `count` smallest and largest of many items, holding at most a
    few hundred at a time (exact: a trimmed item is beyond both ends)."""

    def __init__(self, count):
        self.count, self.items = count, []

    def add(self, item):
        self.items.append(item)
        if len(self.items) >= 256 + 2 * self.count:
            self.items.sort()
            del self.items[self.count:-self.count]

    def result(self) -> list:
        self.items.sort()
        if len(self.items) > 2 * self.count:
            del self.items[self.count:-self.count]
        return self.items


def check_folder(folder, names_zone=None, listing=None) -> CheckResult:
    """The files of `folder` whose market time is outside trading hours;
    names read in `names_zone` (default: the folder's recorded zone).
    `listing`: naming.list_images of it, when the caller has it."""
    names_zone = names_zone or zone.folder_zone(folder)
    start, end = periods.seconds_of(trading_hours()[0]), periods.seconds_of(trading_hours()[1])
    listing = listing if listing is not None else naming.list_images(folder)
    result = CheckResult(str(folder), len(listing.images), unparsed=[p.name for p in listing.unparsed],
                         zone=names_zone)
    ends = _Ends(SHOW_FIRST_LAST)
    market_of = market_reader(names_zone)
    days = result.day_times
    each = logs.verbose()   # the report shows the first and last few; -v names every one
    for image in listing.images:
        market = market_of(image.timestamp)
        seconds = market.hour * 3600 + market.minute * 60 + market.second
        day = market.date()
        times = days.get(day)
        if times is None:
            times = days[day] = array("l")
        times.append(seconds)
        if not start <= seconds <= end:
            result.outside_count += 1
            result.outside_day_set.add(day)
            result.hour_counts[market.hour] += 1
            ends.add((market, image.name))
            if each:
                log.debug("%s: outside trading hours: %s (market time %s)", folder, image.name,
                          f"{market:%Y-%m-%d %H:%M:%S}")
    result.shown = [OutsideFile(name, market) for market, name in ends.result()]
    return result


def estimate_periods(result: CheckResult, verification=None) -> periods.Estimate:
    """Periods from each date's times against the session; dates whose
    files `verification` knows carry the truth's offset instead."""
    start, end = trading_hours()
    verified = None
    if verification is not None:
        verified = periods.day_offsets_from_truth(
            verification.checked, lambda stamp, market_of=market_reader(result.zone): market_of(stamp).date())
    return periods.estimate_periods(result.day_seconds(), periods.seconds_of(start), periods.seconds_of(end),
                                    result.zone, verified)


def build_timeline(result, estimate, verification=None, title="") -> plot.Timeline:
    start, end = trading_hours()
    wrong = []
    if verification is not None:
        market_of = market_reader(result.zone)
        wrong = [(market.date(), periods.seconds_of(market.time()))
                 for market in (market_of(item.named) for item in verification.differ)]
    bands = [plot.Band(run.start, run.end, f"period {number}: {format_offset(run.offset)}")
             for number, run in enumerate(estimate.periods, 1)]
    return plot.Timeline(title or f"Name times against the session: {result.folder}", config.MARKET_TIMEZONE,
                         (periods.seconds_of(start), periods.seconds_of(end)), result.day_times, wrong, bands)


def write_plot(timeline, path):
    """(path written, None) or (None, the reason it was not)."""
    try:
        return plot.save_timeline(timeline, path), None
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"


def after_path(path) -> Path:
    """Where the plot drawn after adjustments goes: beside the first."""
    path = Path(path)
    return path.with_name(f"{path.stem}-after{path.suffix or '.png'}")


# --- the report ----------------------------------------------------------------

@dataclass
class Report:
    """What print_check needs beyond the check itself."""

    estimate: periods.Estimate
    folders: list                 # the folders an --adjust run would rename in
    plot_path: object = None
    plot_error: object = None


def print_check(result: CheckResult, report: Report):
    start, end = trading_hours()
    print(RULE)
    print("Quality Check: Timestamps Outside Trading Hours")
    print(f"Checking folder: {result.folder}")
    print(f"Trading hours: {start} to {end} ({config.MARKET_TIMEZONE}; names read in {result.zone})")
    print(RULE)
    for name in result.unparsed:
        print(f"  UNPARSED: {name} (not a YYYY-MM-DD_HH-MM-SS_name file; not checked)")
    estimate = report.estimate
    if not result.outside_count:
        written = "" if report.plot_path or report.plot_error else " No plot written."
        print(f"\nAll {result.total_files} file(s) are within trading hours.{written}")
    else:
        _print_files(result.shown, result.outside_count)
        _print_dates(result, estimate)
    _print_periods(result, estimate, report.folders)
    if result.outside_count or estimate.periods:
        _print_reminder(result.outside_dates, estimate.periods)
    if result.outside_count:
        _print_distribution(result.hour_counts)
    if report.plot_path:
        print(f"\nSaved time-of-day distribution plot to: {report.plot_path}")
    elif report.plot_error:
        print(f"\nCould not save the plot: {report.plot_error}")
    if result.outside_count:
        print()
        print(f"Total: {result.outside_count} file(s) outside trading hours")
        print(f"Total: {len(result.outside_dates)} unique date(s) with files outside trading hours")
        print(f"Total: {len(result.hour_counts)} hour bucket(s) with files outside trading hours")
        print(f"Total: {len(result.missing_dates)} missing date(s) in the period range")
    print(RULE)


def _line(item):
    return f"  {item.name} (time: {item.market_time:%H:%M:%S})"


def _print_files(outside, count):
    """`outside`: every file outside hours when `count` is small, else the
    first and last SHOW_FIRST_LAST."""
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


def _print_dates(result, estimate):
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
        print("(A date without an outside-hours file may still be off: no post in the hour that moved.)")
    else:
        print("None: every date with files in this range has outside trading hour timestamps.")
    count = len(estimate.periods)
    if count == 1:
        print("\nThis indicates the outside trading hours occurred in ONE continuous period.")
    elif count > 1:
        print(f"\nThis indicates the outside trading hours occurred in MULTIPLE periods ({count}, "
              f"see 'Periods found' below).")


def _dates_text(days, limit=6):
    if len(days) <= limit:
        return ", ".join(map(str, days))
    return f"{', '.join(map(str, days[:limit]))} and {len(days) - limit} more"


def _rests_on(run):
    verified, estimated = run.verified_dates, run.estimated_dates
    if not verified:
        return "estimated from the times"
    if not estimated:
        return f"verified against post times: all {len(verified)} date(s)"
    return f"verified: {len(verified)} date(s); estimated from the times: {_dates_text(estimated)}"


def _print_periods(result, estimate, folders):
    if not estimate.periods and not estimate.irregular:
        return
    start, end = trading_hours()
    print(f"\nPeriods found (names off by the same amount; each date's times against {start}-{end}):")
    print(THIN)
    for run in estimate.periods:
        fits = ""
        if not run.verified_dates and run.lo != run.hi:
            fits = f"; fits {format_offset(run.lo)}..{format_offset(run.hi)}"
        print(f"  {run.start}..{run.end}: {len(run.days)} date(s), {run.files} file(s), "
              f"names off by {format_offset(run.offset)} ({_rests_on(run)}{fits})")
        line = run.adjust_line()
        print(f"    suggested: {line}" if line else
              "    suggested: adjust_timestamps.py --to-post-time (no --adjust HOURS says this offset)")
        if run.edge_dates:
            print(f"    dates beside it that fit it too (check by hand): {_dates_text(run.edge_dates)}")
        if run.follows_dst:
            print(f"    coincides with a daylight-saving change in {estimate.zone}: the names may be in "
                  f"another zone (see below)")
    if estimate.irregular:
        print(f"  No single shift fits these dates (check by hand): "
              f"{_dates_text([fit.day for fit in estimate.irregular])}")
    print(THIN)
    lines = [run.adjust_line() for run in estimate.periods]
    if lines and all(lines):
        words = ["python", "quality_check_timestamps.py", "--folder", result.folder, "--folders", *folders]
        print("To apply every suggestion:")
        print(f"  {shlex.join(words)} {' '.join(lines)}")
    if estimate.from_zone:
        words = ["python", "adjust_timestamps.py", "--folders", *folders, "--from-zone", estimate.from_zone]
        if estimate.zone != config.TIMEZONE:
            words += ["--to-zone", estimate.zone]
        print(f"The periods follow the daylight-saving changes of {estimate.zone}: the names look written "
              f"in {estimate.from_zone}.")
        print("One command fixes every date across the changes (instead of the --adjust lines):")
        print(f"  {shlex.join(words)}")


def _print_reminder(dates, shifted):
    print()
    print(RULE)
    print("QUALITY CHECK REMINDER")
    print(RULE)
    print("IMPORTANT: Please manually check timestamps on dates around the first and last")
    print("outside trading hour occurrences, and around the edges of each period,")
    print("for quality assurance purposes.")
    print()
    if dates:
        first, last = dates[0], dates[-1]
        print(f"First date with outside trading hours: {first}")
        print(f"Last date with outside trading hours: {last}")
        print()
        print("Please manually verify timestamps on:")
        before, after = reminder_windows(first, last)
        print(f"  - A few days BEFORE the first date (around {before[0]} to {before[1]})")
        print(f"  - A few days AFTER the last date (around {after[0]} to {after[1]})")
    for number, run in enumerate(shifted, 1):
        before, after = reminder_windows(run.start, run.end)
        print(f"  - Period {number} ({run.start}..{run.end}, {format_offset(run.offset)}): starts "
              f"{run.start} (check {before[0]} to {before[1]}), ends {run.end} (check {after[0]} to {after[1]})")
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


# --- verify ----------------------------------------------------------------------

def print_verification(result: truth.Verification, folders, archive=None, verbose=False):
    print()
    print(RULE)
    print("Verify: Names Against Discord Post Times")
    print(f"Folder: {result.folder} (names read in {result.zone})")
    print(f"Archives: the folder's own{f', and by content {result.other_archive}' if result.other_archive else ''}")
    print(RULE)
    checked, differ = result.checked, result.differ
    by_content = sum(1 for item in checked if item.via == truth.BY_CONTENT)
    print(f"Verified: {len(checked)} file(s) ({len(checked) - by_content} by name in the folder's archive or "
          f"messages.csv, {by_content} by content)")
    print(f"  Agree:   {len(checked) - len(differ)}")
    print(f"  Differ:  {len(differ)}")
    print(f"  Unknown: {len(result.unknown)} (no message known: not checked, never guessed)")
    if result.ambiguous:
        print(f"    of which {len(result.ambiguous)} hold content several messages posted, none of them "
              f"certain: {_dates_text(result.ambiguous, 3)}")
    for name, reason in result.unreadable:
        print(f"  UNREADABLE: {name} ({reason})")
    if differ:
        found = periods.group_offsets((item.date, int(item.offset.total_seconds())) for item in checked)
        print("\nPeriods off (consecutive dates with the same offset):")
        print(THIN)
        for period in found:
            print(f"  {period.start}..{period.end}: {period.count} file(s) off by {format_offset(period.offset)}")
        print(THIN)
        if verbose:
            for item in differ:
                print(f"  {item.name}: posted {item.posted:%Y-%m-%d %H:%M:%S}, off by "
                      f"{format_offset(item.offset)} (via {item.via})")
        words = ["python", "adjust_timestamps.py", "--folders", *folders, "--to-post-time"]
        archive = archive or _download_archive_of([result.folder, *folders])
        if archive and (len(folders) > 1 or str(archive) != str(result.folder)):
            words += ["--archive", str(archive)]  # the other folders find their messages by content
        print("Fix every known file to its post time (planned, journaled, undoable):")
        print(f"  {shlex.join(words)}")
    print(RULE)


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
    print(f"\n--- Period {number} ---", file=sys.stderr)
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


def plan_period(number, period, folders, adjusted, names_zone=None) -> PeriodOutcome:
    """Plan one period over every folder (names read in `names_zone`).
    Files already renamed by an earlier period of this run (`adjusted`:
    folder -> names) are left out, so no file is shifted twice."""
    batch_id = new_batch_id()
    outcomes = []
    market_of = market_reader(names_zone)
    for folder in folders:
        done = adjusted.setdefault(folder, set())

        def select(parsed, done=done):
            return (parsed.name not in done
                    and period.start <= market_of(parsed.timestamp).date() <= period.end)

        shift = shift_by(period.hours, select)
        outcomes.append(FolderOutcome(folder, plan_folder(folder, shift, batch_id)))
    return PeriodOutcome(number, period, outcomes)


def apply_period(outcome: PeriodOutcome, adjusted, dry_run):
    label = f"quality_check_timestamps period {outcome.number}: {outcome.period.label()}"
    if not dry_run:  # one batch over the folders: recovery brings them all to one state
        results = apply_batch([(f.folder, f.plan) for f in outcome.folders], label=label)
        for folder_outcome, result in zip(outcome.folders, results):
            folder_outcome.result = result
    for folder_outcome in outcome.folders:
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


def undo_command(script, folders) -> str:
    return shlex.join(["python", script, "--folders", *map(str, folders), "--undo"])


def confirm_period(outcome, dry_run) -> bool:
    """The dialogue's preview of one period and its question, on the
    terminal (stderr): a redirected report never hides them."""
    count = sum(len(folder.plan.moves) for folder in outcome.folders)
    if count == 0:
        return True
    print(f"\nPeriod {outcome.number} would rename {count} file(s):", file=sys.stderr)
    for line in preview_lines(outcome.folders):
        print(line, file=sys.stderr)
    verb = "Show" if dry_run else "Apply"
    return cli.ask(f"{verb} period {outcome.number}? (Yes/No): ", flag="--adjust", parse=parse_yes_no)


def run_adjustment(given, folders, dry_run, names_zone=None):
    """Flags given: apply each period; none (a terminal): the dialogue,
    which previews each period and asks before renaming. Returns the
    PeriodOutcomes applied, and the UsageError that stopped the dialogue
    after some periods were applied (or None)."""
    print()
    print(RULE)
    print("Timestamp Adjustment")
    print(RULE)
    adjusted: dict = {}
    outcomes: list = []
    dialogue = given is None
    if dialogue:
        if not ask_adjust():
            print("No adjustment made.")
            return outcomes, None
        count = cli.ask("\nHow many periods need to change? ", flag="--adjust", parse=parse_period_count)
        source = (ask_period(number) for number in range(1, count + 1))
    else:
        source = iter(_announce(given))
    for number in itertools.count(1):
        try:
            period = next(source, None)
            if period is None:
                break
            outcome = plan_period(number, period, folders, adjusted, names_zone)
            if dialogue and not confirm_period(outcome, dry_run):
                print(f"\nPeriod {number} skipped: nothing renamed.")
                continue
        except cli.UsageError as exc:  # end of input in the middle of the dialogue
            if not outcomes or dry_run:
                raise
            print(f"\nStopped before period {number}: {exc}.")
            _print_applied(outcomes, folders)
            return outcomes, exc
        outcome = apply_period(outcome, adjusted, dry_run)
        print_period(outcome, dry_run)
        outcomes.append(outcome)
    print()
    print(RULE)
    print("Timestamp adjustment completed!" if not dry_run else "Dry run completed: nothing was renamed.")
    if outcomes and not dry_run:
        _print_applied(outcomes, folders)
    print(RULE)
    return outcomes, None


def _print_applied(outcomes, folders):
    numbers = [outcome.number for outcome in outcomes]
    if len(numbers) == 1:
        print(f"Period {numbers[0]} was applied; --undo reverts it:")
    else:
        print(f"Periods {', '.join(map(str, numbers))} were applied; --undo reverts them one period at a "
              f"time, newest first (run it {len(numbers)} times):")
    print(f"  {undo_command('quality_check_timestamps.py', folders)}")


def _announce(given):
    for number, period in enumerate(given, 1):
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


def post_adjustment_check(folders, names_zone=None):
    results = [check_folder(folder, names_zone) for folder in folders]
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
        if result.outside_count:
            print(f"  {_symbol(WARN_MARK, '!')} {folder}: {result.outside_count} file(s) outside trading hours")
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
        print(f"  Files outside trading hours: {result.outside_count}")
        print(f"  Unique dates: {len(dates)}")
        if dates:
            print(f"  Dates: {', '.join(map(str, dates))}")
        print()
    print("Overall Summary:")
    print(f"  Total files outside trading hours across all folders: {sum(r.outside_count for r in results)}")
    print(f"  Total unique dates with files outside trading hours: {len(all_dates)}")
    if all_dates:
        print(f"  All dates: {', '.join(map(str, sorted(all_dates)))}")
    print(RULE)


# --- command line ------------------------------------------------------------------

def build_parser():
    parser = cli.ArgumentParser(
        prog="quality_check_timestamps.py",
        description="Check image name times against market hours and the post times Discord recorded; "
                    "optionally shift periods of them.")
    parser.add_argument("--folder", default=config.CLEAN_OUTPUT_DIR,
                        help=f"folder to check (default {config.CLEAN_OUTPUT_DIR})")
    parser.add_argument("--plot", default=config.PLOT_FILE, metavar="PATH",
                        help=f"where to save the timeline plot (default {config.PLOT_FILE}); after "
                             f"adjustments a second one goes beside it (NAME-after.png)")
    parser.add_argument("--verify", action="store_true",
                        help="compare every name whose message is known with its Discord post time")
    parser.add_argument("--archive", metavar="PATH",
                        help="with --verify: also match files by content (sha256) against this download "
                             "archive (a downloaded folder or its archive file)")
    parser.add_argument("--timezone", type=cli.argparse_type(zone.check_zone_name), metavar="ZONE",
                        help="read the names in ZONE (default: each folder's recorded zone, else "
                             f"{config.TIMEZONE})")
    parser.add_argument("--adjust", action="append", type=cli.argparse_type(parse_period),
                        metavar="START:END:HOURS",
                        help="shift names dated START..END (market dates) by HOURS; repeatable")
    parser.add_argument("--no-adjust", action="store_true", help="only check, never ask")
    command.add_rename_arguments(
        parser, f"folders to adjust (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def _check_flags(args):
    if args.adjust and args.no_adjust:
        raise cli.UsageError("--adjust and --no-adjust cannot be used together")
    if args.verify and args.adjust:
        raise cli.UsageError("--verify only checks: run it, then fix with the command it prints "
                             "(or --adjust without --verify)")
    if args.archive and not args.verify:
        raise cli.UsageError("--archive goes with --verify")


def _check(args, folders):
    """The check, the estimate, --verify and the plot; returns
    (result, estimate, verification or None, failed)."""
    cli.check_folder(args.folder, hint="choose it with --folder")
    names_zone = zone.folder_zone(args.folder, args.timezone)
    try:
        listing = naming.list_images(args.folder)  # once, for the check and --verify
        result = check_folder(args.folder, names_zone, listing)
        verification = (truth.fetch_verification(args.folder, names_zone, args.archive, listing)
                        if args.verify else None)
        del listing
    except OSError as exc:
        raise cli.UsageError(f"cannot read folder {args.folder}: {exc.strerror or exc}") from None
    estimate = estimate_periods(result, verification)
    _log_evidence(estimate)
    report = Report(estimate, folders)
    if result.outside_count or estimate.periods or (verification and verification.differ):
        report.plot_path, report.plot_error = write_plot(build_timeline(result, estimate, verification), args.plot)
    print_check(result, report)
    failed = bool(result.unparsed or report.plot_error)
    if verification is not None:
        # The fix renames the whole folder set the checked folder belongs to (a
        # fix of the clean folder alone would leave its source and its picks
        # misnamed); a folder outside that set is fixed alone.
        fix_folders = folders if _same_folder_in(args.folder, folders) else [args.folder]
        print_verification(verification, fix_folders, args.archive, args.verbose)
        failed = failed or bool(verification.differ or verification.unreadable)
    _note(result, estimate, verification, report.plot_error)
    return result, failed


def _download_archive_of(folders):
    """The first of `folders` holding a download archive (the download
    folder of a pipeline set), or None."""
    return next((folder for folder in folders if (Path(folder) / config.ARCHIVE_FILE).is_file()), None)


def _same_folder_in(folder, folders) -> bool:
    target = os.path.realpath(folder)
    return any(os.path.realpath(other) == target for other in folders)


def _log_evidence(estimate):
    """-v: what each period rests on, date by date: its files, the offsets
    their times fit, and the post times' offset where verify knows it."""
    if not logs.verbose():
        return
    for run in estimate.periods:
        log.debug("period %s..%s, names off by %s: %d date(s)", run.start, run.end, format_offset(run.offset),
                  len(run.days))
        for fit in run.days:
            log.debug("  %s", _fit_text(fit))
    for fit in estimate.irregular:
        log.debug("no single shift fits %s", _fit_text(fit))


def _fit_text(fit):
    minutes = int(fit.mean) // 60
    known = "" if fit.verified is None else f"; post times say {format_offset(fit.verified)}"
    return (f"{fit.day}: {fit.count} file(s), mean time {minutes // 60:02d}:{minutes % 60:02d}, fits "
            f"{format_offset(fit.lo)}..{format_offset(fit.hi)}{known}{' (its files disagree)' if fit.mixed else ''}")


def _note(result, estimate, verification, plot_error):
    """The step's one-line summary (-q, the pipeline table)."""
    did = (f"{result.total_files} files, {result.outside_count} outside trading hours "
           f"on {len(result.outside_dates)} dates, {len(estimate.periods)} period(s)")
    look = [f"{len(result.unparsed)} skipped names" if result.unparsed else "",
            f"plot not written: {plot_error}" if plot_error else ""]
    if verification is not None:
        did += f", {len(verification.checked)} verified"
        look.append(f"{len(verification.differ)} not at their post time" if verification.differ else "")
    logs.note("quality_check_timestamps.py", did, ", ".join(filter(None, look)))


def _adjust(args, folders, result):
    """--adjust or the dialogue, the check after it and the after plot;
    returns (failed, stopped)."""
    command.check_folders(folders)
    names_zone = zone.common_zone(folders, args.timezone)
    for warning in command.refuse_if_pending(folders, args.dry_run):
        print(f"warning: {warning}", file=sys.stderr)
    outcomes, stopped = run_adjustment(args.adjust, folders, args.dry_run, names_zone)
    failed = any(outcome.skipped for outcome in outcomes)
    if outcomes and not args.dry_run:
        post_adjustment_check(folders, names_zone)
        after = check_folder(args.folder, zone.folder_zone(args.folder, args.timezone))
        estimate = estimate_periods(after)
        title = f"After the adjustment: {after.folder}"
        written, error = write_plot(build_timeline(after, estimate, title=title), after_path(args.plot))
        print(f"\nSaved the after-adjustment plot to: {written}" if written else
              f"\nCould not save the after-adjustment plot: {error}")
        failed = failed or bool(error)
    return failed, stopped


def _main(argv):
    args = build_parser().parse_args(argv)
    _check_flags(args)
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    undone = command.run_undo_or_recover(args, folders)
    if undone is not None:
        return cli.show(undone)
    result, failed = _check(args, folders)
    dialogue = (not args.adjust and not args.no_adjust and not args.verify and result.outside_count
                and cli.is_interactive())
    if args.adjust or dialogue:
        adjust_failed, stopped = _adjust(args, folders, result)
        if stopped:
            print(f"error: {stopped}", file=sys.stderr)
            return cli.EXIT_USAGE
        failed = failed or adjust_failed
    return cli.EXIT_ITEMS_FAILED if failed else cli.EXIT_OK


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

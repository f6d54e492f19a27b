"""Step 5 of the pipeline: compare the dates covered by the image folders.

    python check_unique_dates.py [--folders A B C] [--trading-days]

For each folder: its unique dates and date range; a summary table; then the
dates each folder lacks that another folder has. With --trading-days, also
the NYSE sessions (weekdays that are not NYSE holidays, from the `holidays`
package) between the first and last date that no folder has an image for.

Exit 0 when every folder covers the same dates (and, with --trading-days,
no session is missing), 1 when coverage differs or a name does not parse
(or names a folder or a broken link), 2 for a missing folder.
"""
import logging
import sys
from dataclasses import dataclass, field
from typing import Optional

import config
from discordpicextract import cli, logs, naming
from discordpicextract.market import nyse_sessions
from discordpicextract.timestamps import zone as names_zone

log = logging.getLogger("discordpicextract.coverage")  # -v: what each folder listed, skipped and misses


@dataclass
class FolderDates:
    folder: str
    dates: set
    unparsed: list
    not_files: list = field(default_factory=list)   # image-named folders, broken links

    @property
    def first(self):
        return min(self.dates) if self.dates else None

    @property
    def last(self):
        return max(self.dates) if self.dates else None


@dataclass
class Coverage:
    folders: list               # FolderDates, in the order given
    missing: dict               # folder -> {date: [folders that have it]}
    sessions: Optional[list] = None   # NYSE sessions in range (with --trading-days)
    uncovered: Optional[list] = None  # of those, the ones no folder has
    span: Optional[tuple] = None      # (first, last) date over all folders
    off_days: Optional[list] = None   # dates with images that are no NYSE session

    @property
    def matches(self):
        return not any(self.missing.values()) and not self.uncovered


def fetch_folder_dates(folder, timezone=None) -> FolderDates:
    """The market dates of `folder`'s names, read in its recorded zone (or
    `timezone`): a Friday evening post named in Shanghai is a Saturday
    there, but a Friday session."""
    listing = naming.list_images(folder)
    read_in = names_zone.folder_zone(folder, timezone)
    date_of = names_zone.market_date_reader(read_in)
    found = FolderDates(str(folder), {date_of(image.timestamp) for image in listing.images}, listing.unparsed,
                        listing.not_files)
    log.debug("%s: listed %d image(s) on %d date(s)%s, names read in %s; skipped %d unparsed name(s), "
              "%d not readable file(s)", folder, len(listing.images), len(found.dates),
              f" ({found.first}..{found.last})" if found.dates else "", read_in, len(listing.unparsed),
              len(listing.not_files))
    return found


def plan_coverage(folders, trading_days=False) -> Coverage:
    """Pure: compare the FolderDates."""
    every = set().union(*(f.dates for f in folders)) if folders else set()
    missing = {}
    for entry in folders:
        missing[entry.folder] = {day: [o.folder for o in folders if day in o.dates]
                                 for day in sorted(every - entry.dates)}
    coverage = Coverage(folders, missing, span=(min(every), max(every)) if every else None)
    if trading_days and every:
        coverage.sessions = nyse_sessions(min(every), max(every))
        coverage.uncovered = [day for day in coverage.sessions if day not in every]
        coverage.off_days = sorted(every - set(coverage.sessions))
    return coverage


def print_report(coverage: Coverage, trading_days, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    rule = "=" * 70
    print(rule, "Unique Dates Analysis", rule, sep="\n", file=out)
    for entry in coverage.folders:
        for line in naming.skipped_warnings(entry.unparsed, entry.not_files, entry.folder):
            print(line, file=err)
        print(f"\nAnalyzing: {entry.folder}", file=out)
        print(f"  Found {len(entry.dates)} unique dates", file=out)
        if entry.dates:
            print(f"  Date range: {entry.first} to {entry.last}", file=out)
        else:
            print("  Date range: (no dated images)", file=out)
        if entry.unparsed:
            print(f"  Skipped {len(entry.unparsed)} file(s) whose name does not parse", file=out)
        if entry.not_files:
            print(f"  Skipped {len(entry.not_files)} image name(s) that are not readable files",
                  file=out)
    width = max([30] + [len(entry.folder) for entry in coverage.folders])
    print(f"\n{rule}\nSummary:\n{rule}", file=out)
    for entry in coverage.folders:
        print(f"  {entry.folder:<{width}}: {len(entry.dates):>4} unique dates", file=out)
    print(rule, file=out)
    _print_missing(coverage, out)
    if trading_days:
        _print_sessions(coverage, out)


def _print_missing(coverage, out):
    if not any(coverage.missing.values()):
        count = len(coverage.folders[0].dates) if coverage.folders else 0
        print(f"\nDate coverage matches: all {len(coverage.folders)} folders have the same "
              f"{count} dates.", file=out)
        return
    print("\nDate coverage differs:", file=out)
    for folder, days in coverage.missing.items():
        if not days:
            continue
        print(f"  {folder} lacks {len(days)} date(s) that another folder has:", file=out)
        for day, holders in days.items():
            print(f"    {day} (in {', '.join(holders)})", file=out)


def _print_sessions(coverage, out):
    if coverage.sessions is None:
        print("\nNYSE trading sessions: no dated images, nothing to compare.", file=out)
        return
    first, last = coverage.span
    print(f"\nNYSE trading sessions from {first} to {last}: {len(coverage.sessions)}", file=out)
    if not coverage.uncovered:
        print("  Every session has an image in at least one folder.", file=out)
    else:
        print(f"  Sessions with no image in any folder: {len(coverage.uncovered)}", file=out)
        for day in coverage.uncovered:
            print(f"    {day} ({day:%a})", file=out)
    if coverage.off_days:
        # Not an error (screenshots on a holiday happen), but worth a look:
        # a timestamp shifted across midnight lands on the wrong day.
        print(f"  Dates with images that are not NYSE sessions: {len(coverage.off_days)}", file=out)
        for day in coverage.off_days:
            print(f"    {day} ({day:%a})", file=out)


def build_parser():
    parser = cli.ArgumentParser(prog="check_unique_dates.py",
                                description="Compare the dates covered by image folders.",
                                epilog="Exit 0 when coverage matches, 1 when it differs (or, "
                                       "with --trading-days, a session has no image, or a name "
                                       "does not parse or is no readable file), 2 for a missing "
                                       "or unreadable folder.")
    parser.add_argument("--folders", nargs="+", default=list(config.PIPELINE_FOLDERS),
                        metavar="FOLDER",
                        help="folders to compare (default: " + " ".join(config.PIPELINE_FOLDERS) + ")")
    parser.add_argument("--trading-days", action="store_true",
                        help="also list NYSE sessions between the first and last date "
                             "that no folder has an image for")
    names_zone.add_timezone_argument(parser)
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    for folder in args.folders:
        cli.check_folder(folder)
    coverage = plan_coverage([fetch_folder_dates(f, args.timezone) for f in args.folders], args.trading_days)
    _log_misses(coverage)
    print_report(coverage, args.trading_days)
    unparsed = any(entry.unparsed or entry.not_files for entry in coverage.folders)
    logs.note("check_unique_dates.py", *_note(coverage, unparsed))
    return cli.EXIT_OK if coverage.matches and not unparsed else cli.EXIT_ITEMS_FAILED


def _log_misses(coverage):
    """-v: each folder's missing dates in full (the report lists them with
    their holders) and, with --trading-days, the sessions it has no image for."""
    if not logs.verbose():
        return
    for entry in coverage.folders:
        days = list(coverage.missing.get(entry.folder, ()))
        log.debug("%s misses %d date(s) another folder has%s", entry.folder, len(days),
                  f": {', '.join(map(str, days))}" if days else "")
        if coverage.sessions is not None:
            sessions = [day for day in coverage.sessions if day not in entry.dates]
            log.debug("%s has no image for %d of %d NYSE session(s)%s", entry.folder, len(sessions),
                      len(coverage.sessions), f": {', '.join(map(str, sessions))}" if sessions else "")


def _note(coverage, unparsed):
    counts = "/".join(str(len(entry.dates)) for entry in coverage.folders)
    did = f"{len(coverage.folders)} folders, {counts} dates"
    look = []
    lacking = sum(len(days) for days in coverage.missing.values())
    if lacking:
        look.append(f"coverage differs ({lacking} missing folder dates)")
    if coverage.uncovered:
        look.append(f"{len(coverage.uncovered)} NYSE sessions without an image")
    if unparsed:
        look.append("skipped names")
    return did, ", ".join(look)


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

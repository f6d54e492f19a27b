"""Step 3 of the pipeline: copy the last image of each date.

    python extract_one_per_day.py --source spx-realtime-aws-clean --output spx-clean-1perDay

For each date in the names, the image with the latest timestamp is copied
(ties: the last name in sort order). Sources are never modified; an output
file that already exists with the same bytes is skipped (a re-run), one with
other bytes is an error for that file and is never overwritten. A pick
that fails the integrity check is still copied, with a warning (exit 1).

A re-run keeps the output exact: an earlier pick of ours that is no longer
its day's latest (or whose source is gone) is removed, once checked to be
byte-identical to what was copied; a file the user put there is left alone
and reported (see discordpicextract/records.py).
"""
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import config
from discordpicextract import cli, locking, logs, messages, naming
from discordpicextract import records as derived
from discordpicextract.images.integrity import check_file
from discordpicextract.timestamps import zone as names_zone


@dataclass
class DayPick:
    date: object            # datetime.date
    count: int              # images of that date in the source
    selected: naming.ImageFile


@dataclass
class OnePerDayPlan:
    picks: list             # DayPicks in date order
    scanned: int
    unparsed: list          # Paths whose names did not parse
    not_files: list = field(default_factory=list)  # image-named folders, broken links


def plan_one_per_day(listing: naming.FolderListing, date_of=None) -> OnePerDayPlan:
    """Pure: the listing is in (timestamp, name) order, so the last image
    seen for a date is its latest (and, on equal timestamps, last-named).
    `date_of(name time)` gives a file's date (default: the name's own).
    Only a count and the latest image are kept per date, not its files."""
    by_date: dict = {}  # date -> [count, latest image], in first-seen order
    for image in listing.images:
        day = date_of(image.timestamp) if date_of else image.date
        entry = by_date.get(day)
        if entry is None:
            by_date[day] = [1, image]
        else:
            entry[0] += 1
            entry[1] = image
    picks = [DayPick(day, count, latest) for day, (count, latest) in by_date.items()]
    return OnePerDayPlan(picks, len(listing.images), list(listing.unparsed),
                         list(listing.not_files))


@dataclass
class ExtractResult(derived.SyncResult):
    others: dict = field(default_factory=dict)   # date -> the user's images of a picked date
    corrupt: list = field(default_factory=list)  # (name, message): copied, but damaged


def apply_one_per_day(plan: OnePerDayPlan, listing: naming.FolderListing, source, output) -> ExtractResult:
    output = Path(cli.make_output_folder(output))
    result = ExtractResult()
    digests = {}
    # The day's pick is what users look at: say so when it is damaged.
    for pick in plan.picks:
        check = check_file(pick.selected.path)
        if check.digest:
            digests[pick.selected.name] = check.digest
        if not check.ok:
            result.corrupt.append((pick.selected.name, check.error))
    wanted = {pick.selected.name for pick in plan.picks}
    state = derived.fetch_state(output, _sources_to_look_at(listing, wanted, output), wanted, digests)
    derived.apply_sync(output, state, derived.plan_sync(state, wanted), result)
    if result.stopped is None:   # a full disk: the next run writes the rows
        messages.sync_rows(source, output, result.current)
    result.others = _other_images_per_date(plan, output)
    return result


def _sources_to_look_at(listing, wanted, output) -> dict:
    """{name: path} of the source images the sync looks at: the picks and
    the names already in the output (an earlier pick to keep or remove).
    Not a Path per source file: 100,000 of them cost ~20 MiB."""
    present = set(os.listdir(output))
    return {image.name: image.path for image in listing.images
            if image.name in wanted or image.name in present}


def _other_images_per_date(plan, output):
    # The user's own image of a picked date is never deleted, but the
    # folder is then not one per day.
    selected = {pick.date: pick.selected.name for pick in plan.picks}
    others: dict = {}
    for image in naming.list_images(output).images:
        if image.date in selected and image.name != selected[image.date]:
            others.setdefault(image.date, []).append(image.name)
    return others


def print_report(source, output, plan, result, dry_run, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    for line in naming.skipped_warnings(plan.unparsed, plan.not_files):
        print(line, file=err)
    print(f"Scanning images in: {source}", file=out)
    print(f"Found {plan.scanned} image files", file=out)
    if plan.unparsed:
        print(f"Skipped {len(plan.unparsed)} file(s) whose name does not parse", file=out)
    if plan.not_files:
        print(f"Skipped {len(plan.not_files)} image name(s) that are not readable files", file=out)
    print(f"Grouped images into {len(plan.picks)} dates", file=out)
    print("Extracting last image per day..." + (" (dry run: nothing is copied)" if dry_run else ""),
          file=out)
    for pick in plan.picks:
        print(f"  Processing {pick.date}: {pick.count} images, selected {pick.selected.name}", file=out)
    if dry_run:
        print(f"Would extract {len(plan.picks)} images (one per day) into: {output}", file=out)
        return
    done = len(result.copied) + len(result.identical)
    note = f" ({len(result.identical)} already in output, identical)" if result.identical else ""
    print(f"Extracted {done} images (one per day){note}", file=out)
    for line in result.error_lines(output):
        print(line, file=err)
    for name in result.removed:
        print(f"Removed {name}: an earlier pick of ours, no longer its day's latest "
              "(or gone from the source)", file=out)
    for name in result.user_files:
        print(f"Left alone: {name} (not written by this step)", file=out)
    for name in result.changed:
        print(f"warning: {output}: {name} was copied here earlier but has changed since; "
              "left alone (now counted as your file)", file=err)
    for name, message in result.corrupt:
        print(f"warning: {name}: {message} (copied as the day's image all the same)", file=err)
    for day, names in sorted(result.others.items()):
        print(f"warning: {output} also holds {', '.join(names)} for {day} "
              "(not written by this step; not removed)", file=err)
    print(f"Results saved to: {output}", file=out)


def build_parser():
    parser = cli.ArgumentParser(
        prog="extract_one_per_day.py",
        description="Copy the last image of each date (ties: the last name).",
        epilog="Exit 0 when done; 1 when a name did not parse, an entry could not be read, a "
               "day's pick is damaged (still copied), an output file conflicted or the output "
               "holds another image of a picked date; 2 for bad usage.")
    parser.add_argument("--source", type=cli.existing_folder, default=config.CLEAN_OUTPUT_DIR,
                        help=f"folder of images (default: {config.CLEAN_OUTPUT_DIR})")
    parser.add_argument("--output", default=config.ONE_PER_DAY_DIR,
                        help=f"folder for one image per day (default: {config.ONE_PER_DAY_DIR})")
    parser.add_argument("--dry-run", action="store_true", help="show the picks, copy nothing")
    names_zone.add_timezone_argument(parser, "the source's names")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    cli.check_output_folder(args.source, args.output)
    listing = naming.list_images(args.source)
    zone = names_zone.folder_zone(args.source, args.timezone)
    # Days are trading days: the market's dates of the names, read in their zone.
    plan = plan_one_per_day(listing, names_zone.market_date_reader(zone))
    result = None
    if not args.dry_run:
        cli.make_output_folder(args.output)
        with locking.hold(args.output, "one per day"):  # BusyError (exit 2) while another run writes there
            names_zone.claim_zone(args.output, zone, source=f"the names of {args.source}")
            result = apply_one_per_day(plan, listing, args.source, args.output)
    print_report(args.source, args.output, plan, result, args.dry_run)
    if result is not None:
        result.raise_if_stopped()   # the disk filled up: the report so far, then one line
    failed = plan.unparsed or plan.not_files or (result and (result.conflicts or result.failed or result.others
                                          or result.corrupt or result.changed))
    logs.note("extract_one_per_day.py", *_note(plan, result))
    return cli.EXIT_ITEMS_FAILED if failed else cli.EXIT_OK


def _note(plan, result):
    did = f"{len(plan.picks)} dates"
    if result is not None:
        did += f", {len(result.copied)} new picks, {len(result.removed)} earlier picks removed"
    look = []
    if plan.unparsed or plan.not_files:
        look.append(f"{len(plan.unparsed) + len(plan.not_files)} skipped names")
    if result is not None:
        if result.conflicts or result.failed:
            look.append(f"{len(result.conflicts) + len(result.failed)} not copied")
        if result.others:
            look.append(f"{len(result.others)} dates with another image")
        if result.corrupt:
            look.append(f"{len(result.corrupt)} damaged picks")
        if result.changed:
            look.append(f"{len(result.changed)} changed copies left")
    return did, ", ".join(look)


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

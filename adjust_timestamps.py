"""Rewrite the time in the image names of the pipeline folders, through the
safe rename engine: planned, journaled, never overwriting, undoable
(`--undo`), the download archive and messages.csv kept in step.

    python adjust_timestamps.py --folders A B C --to-post-time [--archive PATH]
    python adjust_timestamps.py --folders A B C --from-zone UTC [--to-zone America/New_York]
    python adjust_timestamps.py --folders A B C --hours -5
    python adjust_timestamps.py --undo | --recover complete|revert   (with the same --folders)

--to-post-time names every file whose message is known (the folder's
archive or messages.csv by name, or by content the download archive at
--archive) at the second Discord says it was posted, in the folder's zone;
unknown files are left alone and counted. --from-zone reads every name as
wall time in that zone and rewrites it in --to-zone (default
config.TIMEZONE), daylight saving on both sides, and records the new zone;
a wall time that is ambiguous in the from-zone (the fall-back hour) is read
as its first occurrence, one that does not exist (the spring-forward gap)
with the offset before the change, and each is reported. Two files that
would get one name are numbered as the downloader numbers them. --hours
shifts every name by a fixed amount (default config.DEFAULT_ADJUST_HOURS).

Without a terminal, one of --hours, --from-zone, --to-post-time or --yes
(or --dry-run) is required: a bare run that would rename every file of
three folders is refused (exit 2). On a terminal it shows a preview and asks.
"""
import os
import sys
from decimal import Decimal

import config
from discordpicextract import cli
from discordpicextract.errors import UsageError
from discordpicextract.renames import command, report
from discordpicextract.renames.apply import FolderOutcome
from discordpicextract.renames.plan import Skip, new_batch_id, plan_mapping
from discordpicextract.renames.values import format_hours, parse_hours, shift_by
from discordpicextract.timestamps import convert, truth, zone
from discordpicextract.timestamps.convert import HOW_READ


def build_parser():
    parser = cli.ArgumentParser(
        prog="adjust_timestamps.py",
        description="Rewrite the time in every image name of the pipeline folders: to the post time Discord "
                    "recorded, from one zone to another, or by a number of hours.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--to-post-time", action="store_true",
                      help="name every file whose message is known at its post time (in the folder's zone)")
    mode.add_argument("--from-zone", type=cli.argparse_type(zone.check_zone_name), metavar="ZONE",
                      help="read every name as wall time in ZONE and rewrite it in --to-zone")
    mode.add_argument("--hours", type=cli.argparse_type(parse_hours), default=None,
                      help=f"hours to add, negative subtracts (default {config.DEFAULT_ADJUST_HOURS})")
    parser.add_argument("--to-zone", type=cli.argparse_type(zone.check_zone_name), metavar="ZONE",
                        help=f"with --from-zone: the zone to write the names in (default {config.TIMEZONE})")
    parser.add_argument("--archive", metavar="PATH",
                        help="with --to-post-time: also find files' messages by content (sha256) in this "
                             "download archive (a downloaded folder or its archive file)")
    zone.add_timezone_argument(parser)
    parser.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation on a terminal; without one, allow the default shift")
    command.add_rename_arguments(parser, f"folders (default: {' '.join(config.PIPELINE_FOLDERS)})")
    return parser


def describe_shift(hours) -> str:
    hours = Decimal(hours)
    amount = format_hours(abs(hours))
    if hours < 0:
        return f"Subtracting {amount} hours from the time in filenames"
    return f"Adding {amount} hours to the time in filenames"


def _check_flags(args):
    if args.to_zone and not args.from_zone:
        raise UsageError("--to-zone goes with --from-zone")
    if args.archive and not args.to_post_time:
        raise UsageError("--archive goes with --to-post-time")
    if args.timezone and args.from_zone:
        raise UsageError("--from-zone already says the zone of the names; --timezone is not needed")


def _check_unattended(args):
    """No silent mass rename: unattended, the run must say what it does."""
    chosen = args.hours is not None or args.from_zone or args.to_post_time or args.yes or args.dry_run
    if not chosen and not cli.is_interactive():
        raise UsageError("no terminal to confirm on: say what to do with --to-post-time, --from-zone ZONE "
                         f"or --hours HOURS (or --yes for the default {config.DEFAULT_ADJUST_HOURS} hours); "
                         "nothing was renamed")


# --- plans from a mapping ---------------------------------------------------------

def _folder_outcome(folder, targets, batch_id, unparsed, left_alone) -> FolderOutcome:
    """The engine's plan for {old: new} names (planned elsewhere, so never
    two files to one name), checked against every name in the folder."""
    plan = plan_mapping(targets.mapping, set(os.listdir(folder)), batch_id, require_sources=False)
    plan.skipped[:0] = [Skip(name, "", "the new time is out of range") for name in targets.out_of_range]
    plan.unparsed = list(unparsed)
    plan.unselected = len(targets.unchanged) + left_alone
    return FolderOutcome(str(folder), plan)


def plan_conversion(folders, from_zone, to_zone):
    """(ShiftRun, notes lines): every folder's names from one zone to another."""
    from discordpicextract import naming

    batch_id, outcomes, notes = new_batch_id(), [], []
    for folder in folders:
        listing = naming.list_images(folder)
        names = {image.name for image in listing.images}
        staying = [name for name in os.listdir(folder) if name not in names]
        conversion = convert.plan_conversion(listing.images, staying, from_zone, to_zone)
        outcomes.append(_folder_outcome(folder, conversion.targets, batch_id,
                                        [p.name for p in listing.unparsed], 0))
        notes += [f"  NOTE: {folder}: {name}: the time {HOW_READ[note].format(zone=from_zone)}"
                  for name, note in conversion.notes]
    return command.ShiftRun(outcomes), notes


def plan_post_times(folders, names_zone, archive):
    """(ShiftRun, unknown per folder): known files to their post times."""
    batch_id, outcomes, unknown = new_batch_id(), [], {}
    for folder in folders:
        verification = truth.fetch_verification(folder, names_zone, archive)
        checked = {item.name for item in verification.checked}
        staying = [name for name in os.listdir(folder) if name not in checked]
        targets = truth.post_time_targets(verification, staying)
        outcomes.append(_folder_outcome(folder, targets, batch_id, verification.unparsed,
                                        len(verification.unknown)))
        unknown[str(folder)] = verification
    return command.ShiftRun(outcomes), unknown


# --- the modes --------------------------------------------------------------------

def run_conversion(args, folders):
    to_zone = args.to_zone or config.TIMEZONE
    if args.from_zone == to_zone:
        raise UsageError(f"--from-zone and --to-zone are both {to_zone}: nothing would change")
    before = zone.common_zone(folders)  # names recorded in two zones: one --from-zone would be wrong for some
    for folder in folders:
        zone.refuse_second_conversion(folder, args.from_zone)
    run, notes = plan_conversion(folders, args.from_zone, to_zone)
    run.warnings = command.refuse_if_pending(folders, args.dry_run)

    def record():  # before the first rename: --recover and --undo find it to put right
        for folder in folders:
            zone.record_zone(folder, to_zone)

    cli.show(report.banner("File Timestamp Adjustment Script",
                           f"Names read as {args.from_zone} wall time, written in {to_zone} (daylight saving on "
                           f"both sides)", run.warnings))
    for line in notes:
        print(line)
    # Reverting this batch puts the names and the zone they were read in back: the label says so.
    label = f"adjust_timestamps --from-zone {args.from_zone} {zone.change_label(args.from_zone, to_zone, before)}"
    code = cli.show(command.apply_shift(run, label=label, yes=args.yes, dry_run=args.dry_run, before_apply=record))
    if _applied(run):
        print(f"Recorded zone of the names: {to_zone} (in {config.FOLDER_INFO_FILE} of each folder)")
    return code, run


def run_post_times(args, folders):
    names_zone = zone.common_zone(folders, args.timezone)
    for folder in folders:
        recorded = zone.read_zone(folder)
        if args.timezone and recorded and recorded != args.timezone:
            raise UsageError(f"{folder}'s names are recorded in {recorded}: --to-post-time writes names in "
                             f"the recorded zone (to change it: --from-zone {recorded} --to-zone "
                             f"{args.timezone})")
    run, checked = plan_post_times(folders, names_zone, args.archive)
    run.warnings = command.refuse_if_pending(folders, args.dry_run)
    cli.show(report.banner("File Timestamp Adjustment Script",
                           f"Every file whose message is known named at its post time ({names_zone})",
                           run.warnings))

    def record():
        for folder in folders:
            zone.record_zone(folder, names_zone)

    code = cli.show(command.apply_shift(run, label=f"adjust_timestamps --to-post-time ({names_zone})",
                                        yes=args.yes, dry_run=args.dry_run, before_apply=record))
    print("Files whose message is known / unknown (left alone, never guessed):")
    for folder, verification in checked.items():
        ambiguous = f" ({len(verification.ambiguous)} with content several messages posted)" \
            if verification.ambiguous else ""
        print(f"  {folder}: {len(verification.checked)} known, {len(verification.unknown)} unknown{ambiguous}")
        for name, reason in verification.unreadable:
            print(f"  UNREADABLE: {folder}: {name} ({reason})")
    unreadable = any(v.unreadable for v in checked.values())
    return max(code, cli.EXIT_ITEMS_FAILED if unreadable else cli.EXIT_OK), run


def run_hours(args, folders):
    zone.common_zone(folders, args.timezone)
    hours = args.hours if args.hours is not None else parse_hours(config.DEFAULT_ADJUST_HOURS)
    with command.held_unless_asking(folders, args.yes, args.dry_run):
        run = command.plan_shift(folders, shift_by(hours), args.dry_run)
        cli.show(report.banner("File Timestamp Adjustment Script", describe_shift(hours), run.warnings))
        return cli.show(command.apply_shift(run, label=f"adjust_timestamps --hours {format_hours(hours)}",
                                            yes=args.yes, dry_run=args.dry_run)), run


def _applied(run) -> bool:
    return any(outcome.result and outcome.result.done for outcome in run.outcomes)


def _main(argv):
    args = build_parser().parse_args(argv)
    _check_flags(args)
    folders = args.folders or list(config.PIPELINE_FOLDERS)
    undone = command.run_undo_or_recover(args, folders)
    if undone is not None:
        return cli.show(undone)
    command.check_folders(folders)
    _check_unattended(args)
    if args.from_zone:
        code, run = run_conversion(args, folders)
    elif args.to_post_time:
        code, run = run_post_times(args, folders)
    else:
        code, run = run_hours(args, folders)
    if _applied(run):
        print(f"To undo: {undo_command('adjust_timestamps.py', folders)}")
    return code


def undo_command(script, folders) -> str:
    import shlex

    return shlex.join(["python", script, "--folders", *map(str, folders), "--undo"])


def main(argv=None):
    return cli.run(cli.without_gc_passes(_main), argv)


if __name__ == "__main__":
    sys.exit(main())

"""See the archive: one offline HTML page over the pipeline's folders.

    python review_archive.py [--folders DOWNLOAD CLEAN DAILY] [--output DIR] [--open]
        [--dedupe-report FILE] [--workers N]

DIR/index.html shows a summary (counts per folder, dates, duplicates,
outside-hours files, NYSE sessions without an image), a timeline (every
image a dot by date and time of day, trading hours shaded, outside-hours
images red), and a contact sheet per day: thumbnails in time order with
the name's time, outside-hours images flagged, the one-per-day pick
highlighted, each duplicate that dedupe left out beside the image it
duplicates (time between them, pHash distance). The days the quality
check's reminder names come first.

Thumbnails are made in parallel and cached in DIR by content: a re-run
makes only new ones. Only DIR is written, and only when it is new, empty or
an earlier review. The page loads nothing from the network.

Exit 0 when done; 1 when the page was written but something needs a look
(an image that cannot be opened, a name that does not parse, a removed
image that duplicates no kept one); 2 for bad input.
"""
import os
import sys
import webbrowser
from pathlib import Path

import config
from discordpicextract import cli, logs
from discordpicextract.review import build, model


def build_parser():
    parser = cli.ArgumentParser(
        prog="review_archive.py",
        description="Write an offline review page (timeline, a contact sheet per day, duplicates "
                    "beside what they duplicate) for the pipeline's folders.")
    parser.add_argument("--folders", nargs="+", metavar="FOLDER",
                        help=f"the download, clean and one-per-day folders, in that order; one or two "
                             f"are fine (default: {' '.join(config.PIPELINE_FOLDERS)}, those that exist)")
    parser.add_argument("--output", default=config.REVIEW_DIR, metavar="DIR",
                        help=f"folder for index.html and its thumbnails (default: {config.REVIEW_DIR})")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--dedupe-report", metavar="FILE",
                        help="deduplicate_images.py --report file (.csv/.json): pair duplicates by it "
                             "instead of by pHash")
    parser.add_argument("--workers", type=cli.argparse_type(_workers), default=min(os.cpu_count() or 1, 8),
                        help="processes for thumbnails and hashes (default: CPUs, at most 8)")
    return parser


def _workers(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise ValueError(f"expected a whole number from 1 to 256, got {text!r}")
    return value


def folder_roles(folders):
    """role -> folder. Given folders must exist; the defaults are taken
    where they exist (a review before dedupe is a fine thing)."""
    if folders:
        if len(folders) > len(model.ROLES):
            raise cli.UsageError("--folders takes at most three folders: DOWNLOAD CLEAN DAILY")
        for folder in folders:
            cli.check_folder(folder, hint="--folders")
        return dict(zip(model.ROLES, map(Path, folders)))
    found = {role: Path(folder) for role, folder in zip(model.ROLES, config.PIPELINE_FOLDERS)
             if os.path.isdir(folder)}
    if not found:
        raise cli.UsageError(f"none of the pipeline folders exists here ({', '.join(config.PIPELINE_FOLDERS)}); "
                             f"name them with --folders")
    return found


def print_run(run: build.ReviewRun, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    for message in run.warnings:
        print(f"warning: {message}", file=err)
    page = run.model
    for folder in page.folders:
        for name in folder.skipped:
            print(f"warning: {folder.path}: skipped {name}: name is not YYYY-MM-DD_HH-MM-SS_name.ext "
                  f"or not a readable file", file=err)
    for name, error in sorted(run.errors.items()):
        print(f"warning: {name}: {error}; shown without a thumbnail", file=err)
    for entry in page.unmatched:
        print(f"warning: {entry.name} is not in the clean folder and duplicates no kept image: look at it",
              file=err)
    for folder in page.folders:
        print(f"{model.ROLE_LABELS[folder.role]:>13}: {folder.path}: {folder.images} images on "
              f"{len(folder.dates)} dates, {folder.outside} outside trading hours", file=out)
    print(f"Duplicates left out by dedupe: {len(page.removed)} ({len(page.unmatched)} unmatched); "
          f"days: {len(page.days)}; NYSE sessions without an image: {len(page.missing_sessions)}", file=out)
    if page.verified:
        print(f"Post times: {len(page.known_time)} known, {len(page.wrong_time)} named at another time",
              file=out)
    stats, seconds = run.thumbs, run.seconds
    print(f"Thumbnails: {stats.made} made, {stats.reused} reused, {stats.cached} cached, {stats.failed} failed "
          f"({seconds.get('thumbnails', 0):.1f} s); contact sheets: {stats.sheets} made "
          f"({seconds.get('sheets', 0):.1f} s); pHashes: {run.hashes.decoded} decoded, "
          f"{run.hashes.cached} cached; days: {stats.days_made} made, {stats.days_reused} reused; "
          f"page: {seconds.get('page', 0):.1f} s", file=out)
    print(f"Review page: {run.page}", file=out)


def _note(run: build.ReviewRun):
    """The one-line summary (what -q prints, main.py --pipeline's table)."""
    page = run.model
    did = f"{len(page.entries)} images on {len(page.days)} days, {run.thumbs.made} new thumbnails: {run.page}"
    look = [f"{len(run.errors)} cannot be shown"] if run.errors else []
    if page.unmatched:
        look.append(f"{len(page.unmatched)} removed images match no kept one")
    skipped = sum(len(f.skipped) for f in page.folders)
    if skipped:
        look.append(f"{skipped} skipped names")
    return did, ", ".join(look)


def _main(argv):
    args = build_parser().parse_args(argv)
    paths = folder_roles(args.folders)
    if args.dedupe_report and not os.path.isfile(args.dedupe_report):
        raise cli.UsageError(f"--dedupe-report file not found: {args.dedupe_report}")
    run = build.build_review(paths, args.output, workers=args.workers, dedupe_report=args.dedupe_report)
    print_run(run)
    logs.note("review_archive.py", *_note(run))
    if args.open:
        webbrowser.open(run.page.resolve().as_uri())
    return cli.EXIT_ITEMS_FAILED if run.failed else cli.EXIT_OK


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

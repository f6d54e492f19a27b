"""`main.py --pipeline` as data: which channels, which folder sets, which
steps with which flags (`plan_pipeline`, pure), and the summary table of a
run (`render_summary`, pure). main.py runs the steps' `main(argv)`.
"""
from dataclasses import dataclass, field
from typing import Optional

from discordpicextract.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

STEP_TITLES = {"download": "download", "dedupe": "dedupe", "one_per_day": "one per day",
               "coverage": "date coverage", "market_hours": "market hours", "review": "review page"}


@dataclass(frozen=True)
class Target:
    """One channel to sync and its folder set (download, clean, one per day)."""

    label: str
    channel: str             # an ID or a name
    guild: str               # "" for an ID
    folders: tuple
    days: float
    plot: str
    review: str = "review"   # the review page's folder


@dataclass(frozen=True)
class StepRun:
    target: Target
    step: str                # a STEP_TITLES key
    script: str              # the module whose main(argv) runs it
    argv: tuple


@dataclass(frozen=True)
class Options:
    """What main.py's flags say about the steps."""

    days: Optional[float] = None
    config: Optional[str] = None
    quiet: bool = False
    verbose: bool = False
    no_messages: bool = False
    bot: bool = False
    threads: bool = False
    workers: Optional[int] = None
    timezone: Optional[str] = None


def plan_targets(channel, guild, output, configured, folder_set, default_folders, default_days, plot_file,
                 review_dir="review"):
    """The channels to sync: `--channel` (with `--guild`), into `--output`'s
    folder set or the default folders; else every configured channel
    (settings.Channel) into its own set. `folder_set(folder)` applies the
    template. Each channel's plot and review page are named after its
    download folder (the defaults' keep their plain names)."""
    if channel:
        folders = tuple(folder_set(output)) if output else tuple(default_folders)
        plot = f"{folders[0]}-{plot_file}" if output else plot_file
        review = f"{folders[0]}-{review_dir}" if output else review_dir
        return [Target(channel, channel, guild or "", folders, default_days, plot, review)]
    if not configured:
        raise UsageError("--pipeline needs a channel: pass --channel (and --guild for a name), "
                         "or list [[channel]] tables in the settings file")
    targets = []
    for entry in configured:
        folders = tuple(folder_set(entry.folder))
        targets.append(Target(entry.folder, entry.target, entry.guild, folders,
                              entry.days or default_days, f"{folders[0]}-{plot_file}", f"{folders[0]}-{review_dir}"))
    return targets


def plan_steps(target: Target, options: Options) -> list:
    """The six steps of one channel, in order, each with its full argv."""
    download, clean, daily = target.folders
    common = [*(["--config", options.config] if options.config else []),
              *(["-q"] if options.quiet else []), *(["-v"] if options.verbose else [])]
    fetch = ["--channel", target.channel, *(["--guild", target.guild] if target.guild else []),
             "--days", str(options.days or target.days), "--output", download, "--no-progress",
             *(["--bot"] if options.bot else []), *(["--threads"] if options.threads else []),
             *(["--workers", str(options.workers)] if options.workers else []),
             *(["--timezone", options.timezone] if options.timezone else []),
             *(["--no-messages"] if options.no_messages else [])]
    steps = [
        ("download", "discord_downloader", fetch),
        ("dedupe", "deduplicate_images", ["--source", download, "--output", clean]),
        ("one_per_day", "extract_one_per_day", ["--source", clean, "--output", daily]),
        ("coverage", "check_unique_dates", ["--folders", download, clean, daily, "--trading-days"]),
        # --verify: names against the post times the download's archive and messages.csv know
        ("market_hours", "quality_check_timestamps",
         ["--folder", clean, "--folders", download, clean, daily, "--no-adjust", "--plot", target.plot,
          "--verify", "--archive", download]),
        ("review", "review_archive", ["--folders", download, clean, daily, "--output", target.review,
                                      *(["--workers", str(options.workers)] if options.workers else [])]),
    ]
    return [StepRun(target, step, script, tuple(argv + common)) for step, script, argv in steps]


# --- the summary ------------------------------------------------------------------

@dataclass
class Row:
    channel: str
    step: str
    code: Optional[int]      # None: not run
    did: str = ""
    look: str = ""
    seconds: Optional[float] = None
    crashed: bool = False    # the step raised (a bug): its channel's later steps are not run


@dataclass
class Summary:
    rows: list = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return overall_code(row.code for row in self.rows if row.code is not None)


def overall_code(codes) -> int:
    """0 all fine, 1 something needs a look, 2 bad input (130: interrupted)."""
    codes = list(codes)
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if EXIT_USAGE in codes:
        return EXIT_USAGE
    return EXIT_FAILED if any(codes) else EXIT_OK


def status_of(code) -> str:
    return {None: "not run", EXIT_OK: "ok", EXIT_FAILED: "look", EXIT_USAGE: "error",
            EXIT_INTERRUPTED: "stopped"}.get(code, f"exit {code}")


def render_summary(summary: Summary) -> str:
    """The table: a row per channel and step, then the overall verdict."""
    header = ("Channel", "Step", "Status", "Time", "Done", "Needs a look")
    cells = [(r.channel, STEP_TITLES.get(r.step, r.step), "failed" if r.crashed else status_of(r.code),
              "-" if r.seconds is None else f"{r.seconds:.1f}s", r.did or "-", r.look or "-")
             for r in summary.rows]
    widths = [max(len(str(line[i])) for line in [header, *cells]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(value).ljust(width) for value, width in zip(line, widths)) + "  " + line[-1]
             for line in [header, *cells]]
    rule = "=" * max(70, *(len(line) for line in lines))
    verdict = {EXIT_OK: "all fine", EXIT_FAILED: "something needs a look",
               EXIT_USAGE: "bad input", EXIT_INTERRUPTED: "interrupted"}[summary.exit_code]
    return "\n".join([rule, "Pipeline Summary", rule, *lines, rule,
                      f"Exit {summary.exit_code}: {verdict}", rule])

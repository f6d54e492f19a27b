"""Download every image a Discord channel posted over the last N days.

    python main.py                      # asks for what it needs
    python main.py --channel spx-realtime-aws --guild 数学家炒美股 --days 14
    python main.py --demo               # no account: a local emulated Discord
    python main.py --pipeline -q        # download, then every later step, per channel

The pipeline's entry: without --demo it runs the download step
(discord_downloader.py, same flags and prompts); with --demo it downloads a
generated channel from a local emulator, then runs the later steps on it;
with --pipeline it syncs each channel (--channel, or every [[channel]] of
the settings file) into its folder set and runs every later step, ending
with one summary table and one exit code (0 fine, 1 needs a look, 2 bad input).
Files are saved as `YYYY-MM-DD_HH-MM-SS_originalname.ext` (time in
config.TIMEZONE). A re-run into the same folder fetches only what is missing.
Exit codes: 0 every image saved or skipped, 1 some failed, 2 bad input.
"""
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import config
from discordpicextract import cli, demo, listings, logs, pipeline, settings
from discordpicextract.demo import DEMO_DAYS, DEMO_ROOT
from discordpicextract.discord.job import (
    PROMPT_CHANNEL,
    PROMPT_DAYS,
    PROMPT_GUILD,
    PROMPT_OUTPUT,
    PROMPT_TOKEN,
    Job,
    build_parser,
    parse_args,
)

# --- the demo -------------------------------------------------------------------

def run_demo(root=DEMO_ROOT, *, tz=None, workers=None, progress=None):
    """Download a generated channel from a local emulator into `root`, then
    run DEMO_STEPS there. No account, no network beyond 127.0.0.1; nothing
    is written outside `root`."""
    import discord_downloader

    folders = demo.demo_folders(root)
    for folder in demo.prepare_demo_folders(folders):
        print(f"Demo: replacing the earlier demo run in {folder}")
    print("Demo: starting a local Discord emulator on 127.0.0.1 with a generated channel...")
    with demo.demo_discord(days=DEMO_DAYS) as emulated:
        job = Job(token=emulated.token, kind="bot", channel=emulated.channel, guild=emulated.guild,
                  days=DEMO_DAYS + 1, output=str(folders[0]), tz=tz or config.TIMEZONE,
                  workers=workers or config.DEFAULT_WORKERS,
                  progress=sys.stderr.isatty() if progress is None else progress)
        print_demo_prompts(job)
        code = discord_downloader.run_job(job, api_base=emulated.api_base)
    write_old_tool_stretch(folders[0], job.tz)
    for step in DEMO_STEPS:
        code = max(code, step(str(root)))
    demo.record_demo_files(folders)
    return code


def write_old_tool_stretch(folder, names_zone):
    """Give a few dates of the demo's download the names the old tool wrote
    (in UTC), through the rename engine, so that verify has them to find."""
    from discordpicextract.renames.apply import apply_plan

    plan, dates = demo.plan_old_tool_stretch(folder, names_zone=names_zone)
    apply_plan(folder, plan, label="demo: names written in UTC, as the old tool wrote them")
    print(f"\n{'#' * 70}\n# Demo: the names of {dates[0]}..{dates[-1]} ({len(plan.moves)} files) rewritten in UTC,"
          f"\n#   as the old tool wrote them (the download archive knows their messages)\n{'#' * 70}")


@dataclass(frozen=True)
class DemoStep:
    """A pipeline script the demo runs on its folders: called with the demo's
    root, it prints a heading and returns the script's main(argv). The script
    is imported only then, not when main.py is."""

    title: str
    script: str  # the step script's module name
    argv_for: Callable[[str, str, str, str], list[str]]  # (download, clean, daily, plot) -> argv
    finding: bool = False  # exit 1 is what this step is there to show (verify finding the old names)

    def __call__(self, root):
        download, clean, daily = (str(f) for f in demo.demo_folders(root))
        argv = self.argv_for(download, clean, daily, str(Path(root) / config.PLOT_FILE))
        print(f"\n{'#' * 70}\n# Demo step: {self.title}\n#   python {self.script}.py {' '.join(argv)}\n{'#' * 70}")
        # the step sets its own verbosity: without the flag it would print its full report under -q
        level = ["-q"] if logs.quiet() else ["-v"] if logs.verbose() else []
        code = importlib.import_module(self.script).main([*argv, *level])
        return cli.EXIT_OK if self.finding and code == cli.EXIT_FAILED else code


# Pipeline steps the demo runs after its download, in order: callables
# taking the demo's root folder and returning an exit code.
DEMO_STEPS = [
    DemoStep("remove duplicates", "deduplicate_images",
             lambda download, clean, daily, plot: ["--source", download, "--output", clean]),
    DemoStep("keep one image per day", "extract_one_per_day",
             lambda download, clean, daily, plot: ["--source", clean, "--output", daily]),
    DemoStep("compare date coverage", "check_unique_dates",
             lambda download, clean, daily, plot: ["--folders", download, clean, daily, "--trading-days"]),
    DemoStep("check timestamps against market hours", "quality_check_timestamps",
             lambda download, clean, daily, plot: ["--folder", clean, "--folders", download, clean, daily,
                                                   "--no-adjust", "--plot", plot]),
    DemoStep("verify the names against Discord's post times", "quality_check_timestamps",
             lambda download, clean, daily, plot: ["--folder", clean, "--folders", download, clean, daily,
                                                   "--verify", "--archive", download, "--no-adjust",
                                                   "--plot", plot], finding=True),
    DemoStep("fix every known name to its post time (the command verify printed)", "adjust_timestamps",
             lambda download, clean, daily, plot: ["--folders", download, clean, daily, "--to-post-time",
                                                   "--archive", download]),
    # Last, so that the demo ends with the page's path.
    DemoStep("see it all on one page", "review_archive",
             lambda download, clean, daily, plot: ["--folders", download, clean, daily, "--output",
                                                   str(Path(download).parent / config.REVIEW_DIR)]),
]


def print_demo_prompts(job):
    """The prompts a user would see, with the demo's automatic answers."""
    print(f"{PROMPT_TOKEN}[generated demo token, hidden]")
    print(f"{PROMPT_CHANNEL}{job.channel}")
    print(f"{PROMPT_GUILD}{job.guild}")
    print(f"{PROMPT_DAYS}{job.days}")
    print(f"{PROMPT_OUTPUT}{job.output}")


# --- entry point ------------------------------------------------------------------

# --- the pipeline ---------------------------------------------------------------

def run_pipeline(args):
    """Download each channel, then dedupe, one per day, the date-coverage and
    the market-hours checks on its folders, and its review page; one summary
    table at the end."""
    found = settings.find(args.config)
    loaded = settings.load(found) if found else settings.Settings()
    targets = pipeline.plan_targets(
        args.channel, args.guild, args.output, loaded.channels,
        lambda folder: loaded.folder_set(settings.Channel(folder)), config.PIPELINE_FOLDERS,
        config.DEFAULT_DAYS, config.PLOT_FILE, config.REVIEW_DIR)
    options = pipeline.Options(days=args.days, config=args.config, quiet=args.quiet, verbose=args.verbose,
                               no_messages=args.no_messages, bot=args.bot, threads=args.threads,
                               workers=args.workers, timezone=args.timezone)
    summary = pipeline.Summary()
    for target in targets:
        steps = pipeline.plan_steps(target, options)
        with listings.shared():  # the steps list the channel's folders once while they stay the same
            for number, step in enumerate(steps):
                summary.rows.append(_run_step(step))
                row = summary.rows[-1]
                if row.crashed or (step.step == "download" and row.code not in (cli.EXIT_OK, cli.EXIT_FAILED)):
                    # no download (bad token, unknown channel) or a step that crashed: the later
                    # steps would check stale or half-made folders
                    summary.rows += [pipeline.Row(target.label, later.step, None) for later in steps[number + 1:]]
                    break
    logs.summary(pipeline.render_summary(summary))
    logs.clear_notes()  # the table is the pipeline's summary, not its last step's line
    return summary.exit_code


def _run_step(step):
    print(f"\n{'#' * 70}\n# {step.target.label}: {pipeline.STEP_TITLES[step.step]}\n"
          f"#   python {step.script}.py {' '.join(step.argv)}\n{'#' * 70}")
    started = time.monotonic()
    try:
        code = importlib.import_module(step.script).main(list(step.argv))
    except Exception as exc:  # a bug in one step must not cost the other channels their sync, nor the table
        return _crashed_row(step, exc, time.monotonic() - started)
    seconds = time.monotonic() - started
    note, error = logs.last_note(), logs.last_error()
    look = note.look if note else ""
    if code and not look:
        look = error or "see the step's report"
    return pipeline.Row(step.target.label, step.step, code, note.did if note else "", look, seconds)


def _crashed_row(step, exc, seconds):
    """The row of a step that raised: one line on stderr naming the exception
    (its traceback with -v), status failed, exit 1."""
    text = f"crashed: {type(exc).__name__}: {exc}"
    print(f"error: {step.script}.py {text}", file=sys.stderr)
    logs.log.debug("%s.py traceback:\n%s", step.script,
                   "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
    return pipeline.Row(step.target.label, step.step, cli.EXIT_FAILED, "", text, seconds, crashed=True)


# --- entry point ------------------------------------------------------------------

def build_main_parser():
    """discord_downloader.py's flags, plus --demo and --pipeline."""
    parser = build_parser("main.py", output_note=f"; with --demo: the demo's own folder, default {DEMO_ROOT}; "
                                                 "with --pipeline: the folder set's name")
    parser.add_argument("--demo", action="store_true",
                        help="run against a local emulated Discord with a generated channel (no account)")
    parser.add_argument("--pipeline", action="store_true",
                        help="download, then dedupe, one per day, date coverage and market hours, for "
                             "--channel or every [[channel]] of the settings file; one summary, one exit code")
    return parser


def _main(argv):
    args = parse_args(build_main_parser(), argv)
    if args.demo and args.pipeline:
        raise cli.UsageError("--demo and --pipeline cannot be used together")
    if args.pipeline:
        return run_pipeline(args)
    if args.demo:
        progress = False if args.no_progress else None
        return run_demo(args.output or DEMO_ROOT, tz=args.timezone, workers=args.workers,
                        progress=progress)
    import discord_downloader

    return discord_downloader.main(argv)


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

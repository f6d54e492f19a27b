"""Download every image a Discord channel posted over the last N days.

    python main.py                      # asks for what it needs
    python main.py --channel spx-realtime-aws --guild 数学家炒美股 --days 14
    python main.py --demo               # no account: a local emulated Discord

Files are saved as `YYYY-MM-DD_HH-MM-SS_originalname.ext` (time in
config.TIMEZONE). A re-run into the same folder fetches only what is missing.
Exit codes: 0 every image saved or skipped, 1 some failed, 2 bad input.
"""
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import config
from discordpicextract import cli, download_archive
from discordpicextract import downloader as dd
from discordpicextract.errors import RunError

DEMO_ROOT = "demo-output"
DEMO_DAYS = 30
# Written into every folder the demo fills, so that a later demo may replace
# them; a folder without it is never deleted.
DEMO_MARKER = ".discordpicextract-demo"

PROMPT_TOKEN = "Enter your Discord token: "
PROMPT_CHANNEL = "Enter channel ID or name: "
PROMPT_GUILD = "Enter guild/server name: "
PROMPT_DAYS = f"Enter number of days to look back (default: {config.DEFAULT_DAYS}): "
PROMPT_OUTPUT = f"Enter output directory (press Enter for default: {config.DEFAULT_OUTPUT_DIR}): "
TOKEN_VARIABLES = "DISCORD_USER_TOKEN or DISCORD_BOT_TOKEN"
RULE = "=" * 60


@dataclass
class Job:
    """Everything one download needs, gathered from flags, env and prompts."""

    token: str = field(repr=False)  # a repr of the job (a debugger, a log) must not show it
    kind: str            # "user", "bot" or None (detect)
    channel: str         # an ID or a name
    guild: str           # "" when the channel is an ID
    days: float
    output: str
    tz: str = config.TIMEZONE
    workers: int = config.DEFAULT_WORKERS
    threads: bool = False
    max_wait: float = config.MAX_RATE_LIMIT_WAIT
    progress: bool = False


# --- flags and prompts ---------------------------------------------------------

def positive_number(text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a number greater than 0: {text!r}")
    return int(value) if value.is_integer() else value


# Discord opened in 2015: a century back reaches every message, and a
# date that far back still fits in a datetime.
MAX_DAYS = 36500


def days_back(text):
    value = positive_number(text)
    if value > MAX_DAYS:
        raise ValueError(f"must be at most {MAX_DAYS} (100 years: every message): {text!r}")
    return value


def token_value(text):
    """(token, is_bot) from what the user gave: a leading `Bot ` marks a bot
    token. A token is visible ASCII only; anything else (a line break, a
    typographic quote from a copy-paste) would not fit in an HTTP header.
    The message never shows the value."""
    token = text.strip()
    is_bot = token[:4].lower() == "bot "
    if is_bot:
        token = token[4:].strip()
    if not token or any(not "!" <= ch <= "~" for ch in token):
        raise ValueError("the token holds spaces, line breaks or non-ASCII characters, "
                         "which no Discord token has (value not shown)")
    return token, is_bot


def worker_count(text):
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 64:
        raise ValueError(f"must be between 1 and 64: {text!r}")
    return value


def time_zone(text):
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {text!r} (use an IANA name like America/New_York)") from None
    return text


def build_parser():
    parser = cli.ArgumentParser(
        prog="main.py", description="Download every image a Discord channel posted in the last N days.",
        epilog=f"The token comes from {TOKEN_VARIABLES} (environment or .env) or a hidden prompt; "
               "it is never taken on the command line.")
    parser.add_argument("--channel", help="channel ID, or channel name (then --guild is needed)")
    parser.add_argument("--guild", help="server name, when --channel is a name")
    parser.add_argument("--days", type=cli.argparse_type(days_back),
                        help=f"days to look back (default {config.DEFAULT_DAYS})")
    parser.add_argument("--output", help=f"download folder (default {config.DEFAULT_OUTPUT_DIR}; "
                                         f"with --demo: the demo's own folder, default {DEMO_ROOT})")
    parser.add_argument("--bot", action="store_true", help="send the token as a bot token (Bot <token>)")
    parser.add_argument("--timezone", type=cli.argparse_type(time_zone),
                        help=f"zone for the times in file names (default {config.TIMEZONE})")
    parser.add_argument("--workers", type=cli.argparse_type(worker_count),
                        help=f"parallel image downloads (default {config.DEFAULT_WORKERS})")
    parser.add_argument("--threads", action="store_true", help="also download from the channel's threads")
    parser.add_argument("--max-wait", type=cli.argparse_type(positive_number),
                        help=f"cap in seconds on a rate-limit wait (default {config.MAX_RATE_LIMIT_WAIT})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--demo", action="store_true",
                        help="run against a local emulated Discord with a generated channel (no account)")
    return parser


def _ask_or_default(prompt, flag, default, parse=None):
    """Prompt on a terminal; unattended, a value with a default needs no answer."""
    if cli.is_interactive():
        return cli.ask(prompt, flag=flag, default=default, parse=parse)
    return default


def _token_and_kind(args):
    """The token from the environment, .env or a hidden prompt, and its kind
    ("bot", or None to detect: a DISCORD_USER_TOKEN may be a bot token)."""
    token, kind = config.load_token()
    if token:
        try:
            token, is_bot = token_value(token)
        except ValueError as exc:
            raise cli.UsageError(f"{exc}: check {TOKEN_VARIABLES}") from None
    elif cli.is_interactive():
        token, is_bot = cli.ask(PROMPT_TOKEN, flag=TOKEN_VARIABLES, secret=True, parse=token_value)
    else:
        raise cli.UsageError(f"no Discord token: set {TOKEN_VARIABLES} in the environment or in .env "
                             "(no terminal to ask on)")
    return token, "bot" if args.bot or kind == "bot" or is_bot else None


def gather_job(args):
    """The job from flags, the environment and prompts, asked in order:
    token, channel, guild (only for a channel name), days, output folder."""
    token, kind = _token_and_kind(args)
    channel = args.channel or cli.ask(PROMPT_CHANNEL, flag="--channel")
    guild = ""
    if not dd.is_channel_id(channel):
        guild = args.guild or cli.ask(PROMPT_GUILD, flag="--guild")
    days = args.days if args.days is not None else _ask_or_default(
        PROMPT_DAYS, "--days", config.DEFAULT_DAYS, days_back)
    output = args.output or _ask_or_default(PROMPT_OUTPUT, "--output", config.DEFAULT_OUTPUT_DIR)
    return Job(token=token, kind=kind, channel=channel.strip(), guild=(guild or "").strip(),
               days=days, output=output, **_common_options(args))


def _common_options(args):
    return dict(
        tz=args.timezone or config.TIMEZONE,
        workers=args.workers or config.DEFAULT_WORKERS,
        threads=args.threads,
        max_wait=args.max_wait or config.MAX_RATE_LIMIT_WAIT,
        progress=not args.no_progress and sys.stderr.isatty(),
    )


# --- the run --------------------------------------------------------------------

def run_job(job, api_base=None):
    """Sign in, find the channel, download; returns the exit code."""
    folder = Path(job.output)
    if folder.exists() and not folder.is_dir():
        raise cli.UsageError(f"output folder is a file: {job.output}")
    client = dd.DiscordClient(job.token, job.kind, api_base=api_base, max_wait=job.max_wait)
    cutoff = dd.cutoff_for(job.days)
    try:
        user = client.identify()
        channel, guild_name = dd.resolve_channel(client, job.channel, job.guild)
        print_target(user, client.kind, channel, guild_name, job, cutoff)
        channels, thread_errors = _with_threads(client, channel, cutoff, job.threads)
        _make_folder(folder)  # only now: a bad token or channel leaves no empty folder behind
        result = dd.run_download(client, channels, folder, cutoff, tz=job.tz,
                                 workers=job.workers, progress=job.progress)
    except dd.AuthError as exc:
        raise cli.UsageError(f"invalid token ({_status_text(exc)}): check {TOKEN_VARIABLES}"
                             f"{'' if job.kind == 'bot' else ' (or pass --bot for a bot token)'}") from None
    except (dd.AccessError, dd.NotFoundError, dd.AmbiguousError) as exc:
        raise cli.UsageError(client.scrub(exc)) from None
    except dd.DiscordError as exc:
        raise RunError(client.scrub(exc)) from None
    except download_archive.ArchiveError as exc:
        raise cli.UsageError(str(exc)) from None
    result.errors[:0] = thread_errors
    print_summary(result, folder)
    return cli.EXIT_ITEMS_FAILED if result.failed else cli.EXIT_OK


def _status_text(exc):
    return f"HTTP {exc.status}" if exc.status else "rejected"


def _make_folder(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cli.UsageError(f"cannot create output folder {folder}: {exc.strerror}") from None


def _with_threads(client, channel, cutoff, include):
    """[channel] plus its threads when asked; a thread listing that fails is an error item."""
    if not include:
        return [channel], []
    try:
        return [channel, *dd.list_threads(client, channel, cutoff)], []
    except dd.AuthError:
        raise
    except dd.DiscordError as exc:  # 403, 404, a server error: the channel itself is still read
        return [channel], [("listing threads", client.scrub(exc))]


# --- printing -------------------------------------------------------------------

def print_answers(job):
    """The answers given (never the token)."""
    print(f"Channel: {job.channel}")
    if job.guild:
        print(f"Server: {job.guild}")
    print(f"Days back: {job.days}")
    print(f"Output folder: {job.output}")


def print_target(user, kind, channel, guild_name, job, cutoff):
    name = user.get("global_name") or user.get("username", "?")
    print(f"Signed in as {name} ({kind} token)")
    where = f" in {guild_name}" if guild_name else ""
    print(f"Channel: #{channel.get('name', '?')} (ID {channel['id']}){where}")
    local = cutoff.astimezone(ZoneInfo(job.tz)).strftime("%Y-%m-%d %H:%M:%S")
    unit = "day" if job.days == 1 else "days"
    print(f"Looking back {job.days} {unit}: messages since {local} {job.tz}")


def print_summary(result, folder):
    print(RULE)
    print("Download Summary:")
    print(f"  Messages read: {result.messages}")
    if len(result.channels) > 1:
        print(f"  Channels and threads: {len(result.channels)}")
    print(f"  Images found: {result.images}")
    print(f"  Downloaded: {len(result.downloaded)}")
    skipped = result.skipped + result.present
    detail = f" (already on disk: {result.present})" if result.present else ""
    print(f"  Skipped (already downloaded): {skipped}{detail}")
    print(f"  Errors: {len(result.errors)}")
    print(f"  Folder: {folder}")
    print(RULE)
    for what, reason in result.errors:
        print(f"  ERROR {what}: {reason}")
    for warning in result.warnings:
        print(f"  WARNING {warning}")


# --- the demo -------------------------------------------------------------------

def run_demo(root=DEMO_ROOT, *, tz=None, workers=None, progress=None):
    """Download a generated channel from a local emulator into `root`, then
    run DEMO_STEPS there. No account, no network beyond 127.0.0.1; nothing
    is written outside `root`."""
    from discordpicextract.emulator import DiscordEmulator, build_demo_channel

    folders = demo_folders(root)
    prepare_demo_folders(folders)
    token = "demo-" + secrets.token_hex(16)  # made up at run time, valid only for this emulator
    print("Demo: starting a local Discord emulator on 127.0.0.1 with a generated channel...")
    with DiscordEmulator(token=token, token_kind="user") as emu:
        generated = build_demo_channel(emu, days=DEMO_DAYS)
        job = Job(token=token, kind=None, channel=generated.channel["name"], guild=generated.guild["name"],
                  days=DEMO_DAYS + 1, output=str(folders[0]), tz=tz or config.TIMEZONE,
                  workers=workers or config.DEFAULT_WORKERS,
                  progress=sys.stderr.isatty() if progress is None else progress)
        print_demo_prompts(job)
        code = run_job(job, api_base=emu.api_base)
    for step in DEMO_STEPS:
        code = max(code, step(str(root)))
    record_demo_files(folders)
    return code


def demo_folders(root):
    """The demo's download, clean and one-per-day folders, inside `root`."""
    return [Path(root) / name for name in config.PIPELINE_FOLDERS]


def prepare_demo_folders(folders):
    """Each demo generates a new channel (new IDs, times up to now): mixed
    with an earlier demo's files it would look like a channel posting every
    image twice. So an earlier demo's folder is replaced, but only when it
    holds nothing but what that demo wrote (its DEMO_MARKER lists it); any
    other non-empty folder is refused, never deleted."""
    for folder in folders:
        if folder.is_file() or (folder.is_dir() and not _only_demo_files(folder)):
            raise cli.UsageError(f"{folder} holds files the demo did not make: "
                                 f"pass --output NEW_FOLDER for the demo's files (or delete it yourself)")
    for folder in folders:
        if folder.is_dir():
            print(f"Demo: replacing the earlier demo run in {folder}")
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / DEMO_MARKER).write_text("[]\n")


def record_demo_files(folders):
    """After a demo: list in each folder's marker what the demo wrote there."""
    for folder in folders:
        names = sorted(name for name in os.listdir(folder) if name != DEMO_MARKER)
        (folder / DEMO_MARKER).write_text(json.dumps(names, ensure_ascii=False, indent=0) + "\n")


def _only_demo_files(folder):
    present = set(os.listdir(folder)) - {DEMO_MARKER}
    if not present:
        return True
    try:
        recorded = set(json.loads((folder / DEMO_MARKER).read_text()))
    except (OSError, ValueError, TypeError):
        return False  # no marker, or an unfinished or foreign one
    return present <= recorded


def _demo_step(title, script, argv_for):
    """A DEMO_STEPS entry: print a heading, run a pipeline script's main()
    on the demo's folders (download, clean, one per day) and plot path."""
    def step(root):
        argv = argv_for(*[str(f) for f in demo_folders(root)], str(Path(root) / config.PLOT_FILE))
        print(f"\n{'#' * 70}\n# Demo step: {title}\n#   python {script.__name__}.py {' '.join(argv)}\n{'#' * 70}")
        return script.main(argv)
    return step


def _demo_steps():
    import check_unique_dates
    import deduplicate_images
    import extract_one_per_day
    import quality_check_timestamps

    return [
        _demo_step("remove duplicates", deduplicate_images,
                   lambda download, clean, daily, plot: ["--source", download, "--output", clean]),
        _demo_step("keep one image per day", extract_one_per_day,
                   lambda download, clean, daily, plot: ["--source", clean, "--output", daily]),
        _demo_step("compare date coverage", check_unique_dates,
                   lambda download, clean, daily, plot: ["--folders", download, clean, daily, "--trading-days"]),
        _demo_step("check timestamps against market hours", quality_check_timestamps,
                   lambda download, clean, daily, plot: ["--folder", clean, "--folders", download, clean, daily,
                                                         "--no-adjust", "--plot", plot]),
    ]


# Pipeline steps the demo runs after its download, in order: callables
# taking the demo's root folder and returning an exit code.
DEMO_STEPS = _demo_steps()


def print_demo_prompts(job):
    """The prompts a user would see, with the demo's automatic answers."""
    print(f"{PROMPT_TOKEN}[generated demo token, hidden]")
    print(f"{PROMPT_CHANNEL}{job.channel}")
    print(f"{PROMPT_GUILD}{job.guild}")
    print(f"{PROMPT_DAYS}{job.days}")
    print(f"{PROMPT_OUTPUT}{job.output}")


# --- entry point ------------------------------------------------------------------

def parse_args(argv):
    """Flags; unknown arguments are named without their values, which might
    be a token typed on the command line."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        flags = " ".join(a.split("=", 1)[0] for a in unknown if a.startswith("-")) or "(values)"
        raise cli.UsageError(f"main.py: unrecognized arguments: {flags} (values not shown; "
                             f"the token is read from {TOKEN_VARIABLES} or a hidden prompt only)")
    return args


def _main(argv):
    args = parse_args(argv)
    if args.demo:
        progress = False if args.no_progress else None
        return run_demo(args.output or DEMO_ROOT, tz=args.timezone, workers=args.workers,
                        progress=progress)
    job = gather_job(args)
    print_answers(job)
    return run_job(job, api_base=config.api_base())


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

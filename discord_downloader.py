"""Download every image a Discord channel posted over the last N days.

    python discord_downloader.py                   # asks for what it needs
    python discord_downloader.py --channel spx-realtime-aws --guild 数学家炒美股 --days 14
    python discord_downloader.py --channel 123456789012345678 --output spx-realtime-aws

The pipeline's first step: `python main.py` runs it (and `python main.py
--demo` runs it against a local emulated Discord). Files are saved as
`YYYY-MM-DD_HH-MM-SS_originalname.ext` (time in config.TIMEZONE, or
--timezone), and the zone is recorded in the folder (config.FOLDER_INFO_FILE)
so that every later step reads the names in it. A re-run into the same
folder fetches only what is missing; one with another --timezone is refused.
Exit codes: 0 every image saved or skipped, 1 some failed, 2 bad input.
"""
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import config
from discordpicextract import cli, logs
from discordpicextract.archive import ArchiveError, archive_path
from discordpicextract.discord import (
    AuthError,
    DiscordClient,
    DiscordError,
    channels_with_threads,
    cutoff_for,
    is_channel_id,
    resolve_channel,
    run_download,
)
from discordpicextract.discord.job import (
    PROMPT_CHANNEL,
    PROMPT_DAYS,
    PROMPT_GUILD,
    PROMPT_OUTPUT,
    PROMPT_TOKEN,
    TOKEN_VARIABLES,
    Job,
    build_parser,
    days_back,
    parse_args,
    token_value,
)
from discordpicextract.errors import UsageError
from discordpicextract.timestamps import zone as names_zone

RULE = "=" * 60


# --- flags and prompts ---------------------------------------------------------

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
            raise UsageError(f"{exc}: check {TOKEN_VARIABLES}") from None
    elif cli.is_interactive():
        token, is_bot = cli.ask(PROMPT_TOKEN, flag=TOKEN_VARIABLES, secret=True, parse=token_value)
    else:
        raise UsageError(f"no Discord token: set {TOKEN_VARIABLES} in the environment or in .env "
                         "(no terminal to ask on)")
    return token, "bot" if args.bot or kind == "bot" or is_bot else None


def gather_job(args):
    """The job from flags, the environment and prompts, asked in order:
    token, channel, guild (only for a channel name), days, output folder."""
    token, kind = _token_and_kind(args)
    channel = args.channel or cli.ask(PROMPT_CHANNEL, flag="--channel")
    guild = ""
    if not is_channel_id(channel):
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
        messages=not args.no_messages,
        max_image_mb=args.max_image_mb or config.MAX_IMAGE_MB,
    )


# --- the run --------------------------------------------------------------------

def run_job(job, api_base=None):
    """Sign in, find the channel, download; returns the exit code."""
    folder = Path(job.output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output folder is a file: {job.output}")
    client = DiscordClient(job.token, job.kind, api_base=api_base, max_wait=job.max_wait)
    cutoff = cutoff_for(job.days)
    try:
        user = client.identify()
        channel, guild_name = resolve_channel(client, job.channel, job.guild)
        print_target(user, client.kind, channel, guild_name, job, cutoff)
        channels, thread_errors = channels_with_threads(client, channel, cutoff, job.threads)
        _make_folder(folder)  # only now: a bad token or channel leaves no empty folder behind
        # Every later step reads the names in this zone; a folder named in
        # another one is refused before any file is added to it.
        names_zone.claim_zone(folder, job.tz, source="--timezone")
        with _progress_bar(job.progress) as progress:
            result = run_download(client, channels, folder, cutoff, tz=job.tz,
                                  workers=job.workers, progress=progress, keep_messages=job.messages,
                                  max_bytes=int(job.max_image_mb * 1024 * 1024))
    except AuthError as exc:
        raise UsageError(f"invalid token ({_status_text(exc)}): check {TOKEN_VARIABLES}"
                         f"{'' if job.kind == 'bot' else ' (or pass --bot for a bot token)'}") from None
    except DiscordError as exc:  # its class carries the exit code: 2 for no access or no such channel
        raise type(exc)(client.scrub(exc), status=exc.status, code=exc.code) from None
    except ArchiveError as exc:
        raise UsageError(str(exc)) from None
    except sqlite3.DatabaseError as exc:  # damaged after it opened fine (a flipped bit in a page)
        raise UsageError(f"the download archive {archive_path(folder)} is damaged ({exc}); "
                         "move that file away to start a new one (files already on disk are found "
                         "again by their content)") from None
    result.errors[:0] = thread_errors
    print_summary(result, folder)
    if result.stopped:
        print(f"error: download stopped: {result.stopped}; {_what_was_kept(result)}", file=sys.stderr)
    logs.note("discord_downloader.py",
              f"{len(result.downloaded)} new images, {result.skipped + result.present} already there",
              f"stopped: {result.stopped}" if result.stopped
              else f"{len(result.errors)} errors" if result.errors else "")
    return cli.EXIT_ITEMS_FAILED if result.failed else cli.EXIT_OK


def _what_was_kept(result):
    saved = f"the {len(result.downloaded)} images saved before are kept"
    if result.unrecorded:
        return (f"{saved}, {result.unrecorded} of them not yet in the archive (the next run finds them "
                "by their content); free some space and run again for the rest")
    return f"{saved} and recorded in the archive; free some space and run again for the rest"


def _status_text(exc):
    return f"HTTP {exc.status}" if exc.status else "rejected"


def _make_folder(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {folder}: {exc.strerror}") from None


@contextmanager
def _progress_bar(enabled):
    """A `progress(found, done)` callback drawing a bar on stderr (none when not `enabled`)."""
    from tqdm import tqdm

    with tqdm(total=0, unit="img", desc="Downloading", file=sys.stderr, disable=not enabled,
              dynamic_ncols=True, leave=True) as bar:
        def progress(found, done):
            bar.total += found
            bar.update(done)
        yield progress


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
    if result.cleaned:
        print(f"  Leftovers of an interrupted run removed: {len(result.cleaned)} .part files")
    print(f"  Folder: {folder}")
    print(RULE)
    for what, reason in result.errors:
        print(f"  ERROR {what}: {reason}")
    for warning in result.warnings:
        print(f"  WARNING {warning}")


# --- entry point ------------------------------------------------------------------

def _main(argv):
    job = gather_job(parse_args(build_parser("discord_downloader.py"), argv))
    print_answers(job)
    return run_job(job, api_base=config.api_base())


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

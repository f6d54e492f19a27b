"""Download every image a Discord channel posted over the last N days.

    python discord_downloader.py                   # asks for what it needs
    python discord_downloader.py --channel spx-realtime-aws --guild 数学家炒美股 --days 14
    python discord_downloader.py --channel 123456789012345678 --output spx-realtime-aws
    python discord_downloader.py --channel https://discord.com/channels/1/2 --after 2026-01-05

The pipeline's first step: `python main.py` runs it (and `python main.py
--demo` runs it against a local emulated Discord). Files are saved as
`YYYY-MM-DD_HH-MM-SS_originalname.ext` (time in config.TIMEZONE, or
--timezone), and the zone is recorded in the folder (config.FOLDER_INFO_FILE)
so that every later step reads the names in it. A re-run into the same
folder fetches only what is missing; one with another --timezone is refused.
Exit codes: 0 every image saved or skipped, 1 some failed, 2 bad input.
"""
import shutil
import sqlite3
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import config
from discordpicextract import cli, logs
from discordpicextract.archive import ArchiveError, ArchiveFull, archive_path
from discordpicextract.discord import (
    AccessError,
    AuthError,
    DiscordClient,
    DiscordError,
    channels_with_threads,
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
from discordpicextract.discord.run import starter_message
from discordpicextract.discord.window import channel_from_link, looks_like_link, parse_bound, plan_window
from discordpicextract.errors import DPEError, RunError, UsageError
from discordpicextract.timestamps import zone as names_zone

RULE = "=" * 60


# --- flags and prompts ---------------------------------------------------------

def _ask_or_default(prompt, flag, default, parse=None):
    """Prompt on a terminal; unattended, a value with a default needs no answer."""
    if cli.is_interactive():
        return cli.ask(prompt, flag=flag, default=default, parse=parse)
    return default


USER_TOKEN_WARNING = ("warning: this is a user token. Discord disables accounts used for bulk reads "
                      "with user tokens (2026 reports); a bot token is the safe way (README: Bot token)")


def _token_and_kind(args):
    """The token from the environment, .env or a hidden prompt, its kind
    ("bot", or None to detect: a DISCORD_USER_TOKEN may be a bot token) and
    whether it was typed."""
    token, kind = config.load_token()
    typed = False
    if token:
        try:
            token, is_bot = token_value(token)
        except ValueError as exc:
            raise UsageError(f"{exc}: check {TOKEN_VARIABLES}") from None
    elif cli.is_interactive():
        token, is_bot = cli.ask(PROMPT_TOKEN, flag=TOKEN_VARIABLES, secret=True, parse=token_value)
        typed = True
    else:
        raise UsageError(f"no Discord token: set {TOKEN_VARIABLES} in the environment or in .env "
                         "(no terminal to ask on)")
    return token, "bot" if args.bot or kind == "bot" or is_bot else None, typed


def check_token(token, kind, typed, api_base=None, max_wait=config.MAX_RATE_LIMIT_WAIT):
    """(user, settled kind) of the token, asked of Discord right away: a
    wrong token is said before any other question."""
    client = DiscordClient(token, kind, api_base=api_base, max_wait=max_wait)
    try:
        return client.identify(), client.kind
    except AuthError as exc:
        if typed:
            raise UsageError(f"the token you typed was refused ({_status_text(exc)}): copy it again"
                             f"{'' if kind == 'bot' else ' (a bot token: type it as Bot <token>)'}") from None
        raise UsageError(f"invalid token ({_status_text(exc)}): check {TOKEN_VARIABLES}"
                         f"{'' if kind == 'bot' else ' (or pass --bot for a bot token)'}") from None
    except DiscordError as exc:
        raise type(exc)(client.scrub(exc), status=exc.status, code=exc.code) from None


def gather_job(args, api_base=None):
    """The job from flags, the environment and prompts, asked in order:
    token (checked at once), channel, guild (only for a channel name), days
    (unless --after), output folder."""
    token, kind, typed = _token_and_kind(args)
    user = None
    if cli.is_interactive():  # questions follow: a wrong token is said first
        user, kind = check_token(token, kind, typed, api_base, args.max_wait or config.MAX_RATE_LIMIT_WAIT)
    channel = args.channel or cli.ask(PROMPT_CHANNEL, flag="--channel")
    guild = ""
    if looks_like_link(channel) and channel_from_link(channel) is None:
        raise UsageError(f"not a Discord channel link: {channel.strip()!r} (Copy Link gives "
                         "https://discord.com/channels/SERVER_ID/CHANNEL_ID)")
    if not is_channel_id(channel):
        guild = args.guild or cli.ask(PROMPT_GUILD, flag="--guild")
    if args.after is not None and args.days is not None:
        raise UsageError("--after and --days both set the window's start: pass one of them")
    days = args.days
    if days is None and args.after is None:
        days = _ask_or_default(PROMPT_DAYS, "--days", config.DEFAULT_DAYS, days_back)
    output = args.output or _ask_or_default(PROMPT_OUTPUT, "--output", config.DEFAULT_OUTPUT_DIR)
    options = _common_options(args)
    job = Job(token=token, kind=kind, channel=channel.strip(), guild=(guild or "").strip(),
              days=days if days is not None else 0, output=output, user=user,
              after=parse_bound(args.after, options["tz"]) if args.after else None,
              before=parse_bound(args.before, options["tz"]) if args.before else None,
              since_last=args.since_last, **options)
    _window_of(job)  # a window that cannot hold a message is said before anything is shown
    return job


def _window_of(job):
    try:
        return plan_window(datetime.now(timezone.utc), job.days, job.after, job.before)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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
    window = _window_of(job)
    new_folder = not folder.exists()
    try:
        return _run_job(job, client, folder, window)
    except DPEError:
        _remove_if_unused(folder, new_folder)  # a failed start leaves no empty folder behind
        raise


def _run_job(job, client, folder, window):
    try:
        user = _signed_in(client, job)
        channel, guild_name = resolve_channel(client, job.channel, job.guild)
        print_target(user, client.kind, channel, guild_name, job, window)
        if client.kind != "bot":  # the bulk read starts now
            print(USER_TOKEN_WARNING, file=sys.stderr)
        channels, thread_errors = channels_with_threads(client, channel, window, job.threads)
        starters = _starters(client, channel, window)
        _make_folder(folder)  # only now: a bad token or channel leaves no empty folder behind
        # Every later step reads the names in this zone; a folder named in
        # another one is refused before any file is added to it.
        names_zone.claim_zone(folder, job.tz, source="--timezone")
        with _progress_bar(job.progress) as (progress, on_paged):
            result = run_download(client, channels, folder, window, tz=job.tz, workers=job.workers,
                                  progress=progress, keep_messages=job.messages,
                                  max_bytes=int(job.max_image_mb * 1024 * 1024), since_last=job.since_last,
                                  starters=starters, on_paged=on_paged)
    except AuthError as exc:
        raise UsageError(f"invalid token ({_status_text(exc)}): check {TOKEN_VARIABLES}"
                         f"{'' if job.kind == 'bot' else ' (or pass --bot for a bot token)'}") from None
    except AccessError as exc:
        raise AccessError(_no_access_text(client, exc, job), status=exc.status, code=exc.code) from None
    except DiscordError as exc:  # its class carries the exit code: 2 for no access or no such channel
        raise type(exc)(client.scrub(exc), status=exc.status, code=exc.code) from None
    except ArchiveFull as exc:
        raise RunError(str(exc)) from None
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


def _signed_in(client, job):
    """The token's user: checked already when the job was gathered."""
    if job.user is not None and job.kind is not None:
        client.signed_in = True
        return job.user
    return client.identify()


def _starters(client, channel, window):
    """A thread read on its own: its starter message in the parent channel
    (a thread started from a message), so that its images are saved too."""
    if channel.get("type") not in (10, 11, 12) or not channel.get("parent_id"):
        return []
    try:
        parent = client.fetch_channel(channel["parent_id"])
        starter = starter_message(client, channel, parent, window)
    except AccessError:
        return []
    return [starter] if starter else []


def _no_access_text(client, exc, job):
    text = client.scrub(exc)
    if text.startswith("no access"):
        return text
    return f"no access to channel {job.channel} (Missing Access)"


def _remove_if_unused(folder, new_folder):
    """A folder this run made and saved nothing in goes again."""
    if not new_folder or not folder.is_dir():
        return
    if all(p.name.startswith(".") for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)


def _status_text(exc):
    return f"HTTP {exc.status}" if exc.status else "rejected"


def _make_folder(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {folder}: {exc.strerror}") from None


@contextmanager
def _progress_bar(enabled):
    """(progress(found, done), on_paged(messages, ended)) drawing a bar on
    stderr (none when not `enabled`). While pages are read the bar shows the
    messages read, images found and images saved, with no percentage (the
    total is not known yet, and a growing total would make it go
    backwards); once paging has ended the total is set."""
    from tqdm import tqdm

    with tqdm(total=None, unit="img", desc="Downloading", file=sys.stderr, disable=not enabled,
              dynamic_ncols=True, leave=True) as bar:
        found = [0]

        def progress(new, done):
            found[0] += new
            bar.update(done)

        def on_paged(messages, ended):
            if ended:
                bar.total = found[0]
                bar.set_postfix_str(f"{messages} messages read", refresh=False)
                bar.refresh()
            else:  # once per page
                bar.set_postfix_str(f"{messages} messages read, {found[0]} images found")
        yield progress, on_paged


# --- printing -------------------------------------------------------------------

def print_answers(job):
    """The answers given (never the token)."""
    print(f"Channel: {job.channel}")
    if job.guild:
        print(f"Server: {job.guild}")
    if job.after is None:
        print(f"Days back: {job.days}")
    else:
        print(f"After: {job.after}")
    if job.before is not None:
        print(f"Before: {job.before}")
    print(f"Output folder: {job.output}")


def print_target(user, kind, channel, guild_name, job, window):
    name = user.get("global_name") or user.get("username", "?")
    print(f"Signed in as {name} ({kind} token)")
    where = f" in {guild_name}" if guild_name else ""
    what = {15: " (forum: its posts are read)", 16: " (media channel: its posts are read)"}.get(channel.get("type"), "")
    print(f"Channel: #{channel.get('name', '?')} (ID {channel['id']}){where}{what}")
    local = window.start.astimezone(ZoneInfo(job.tz)).strftime("%Y-%m-%d %H:%M:%S")
    if job.after is None:
        unit = "day" if job.days == 1 else "days"
        print(f"Looking back {job.days} {unit}: messages since {local} {job.tz}")
    else:
        print(f"Messages since {local} {job.tz}")
    if window.before_id is not None:
        print(f"  up to message ID {window.before_id}")
    if job.since_last:
        print("  only messages newer than the newest one already archived (--since-last)")


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
    if result.thumbnails:
        print(f"  Skipped (media-channel grid thumbnails): {result.thumbnails}")
    print(f"  Errors: {len(result.errors)}")
    if result.cleaned:
        print(f"  Leftovers of an interrupted run removed: {len(result.cleaned)} .part files")
    print(f"  Folder: {folder}")
    print(RULE)
    if logs.quiet():  # the report is dropped: each error and warning still shows, on stderr
        for what, reason in result.errors:
            logs.log.error("%s: %s", what, reason)
        for warning in result.warnings:
            logs.log.warning("%s", warning)
        return
    for what, reason in result.errors:
        print(f"  ERROR {what}: {reason}")
    for warning in result.warnings:
        print(f"  WARNING {warning}")


# --- entry point ------------------------------------------------------------------

def _main(argv):
    job = gather_job(parse_args(build_parser("discord_downloader.py"), argv), config.api_base())
    print_answers(job)
    return run_job(job, api_base=config.api_base())


def main(argv=None):
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

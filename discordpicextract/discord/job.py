"""What one download needs from the user: the Job, the prompts' texts, the
flag values' parsers (pure: they raise ValueError with a message to show)
and the command line that main.py and discord_downloader.py share."""
from dataclasses import dataclass, field
from typing import Optional

import config
from discordpicextract import cli
from discordpicextract.timestamps.zone import check_zone_name

PROMPT_TOKEN = "Enter your Discord token: "
PROMPT_CHANNEL = "Enter channel ID or name: "
PROMPT_GUILD = "Enter guild/server name: "
PROMPT_DAYS = f"Enter number of days to look back (default: {config.DEFAULT_DAYS}): "
PROMPT_OUTPUT = f"Enter output directory (press Enter for default: {config.DEFAULT_OUTPUT_DIR}): "
TOKEN_VARIABLES = "DISCORD_USER_TOKEN or DISCORD_BOT_TOKEN"
# Discord opened in 2015: a century back reaches every message, and a
# date that far back still fits in a datetime.
MAX_DAYS = 36500


@dataclass
class Job:
    """Everything one download needs, gathered from flags, env and prompts."""

    token: str = field(repr=False)  # a repr of the job (a debugger, a log) must not show it
    kind: Optional[str]  # "user", "bot" or None (detect)
    channel: str         # an ID or a name
    guild: str           # "" when the channel is an ID
    days: float
    output: str
    tz: str = config.TIMEZONE
    workers: int = config.DEFAULT_WORKERS
    threads: bool = False
    max_wait: float = config.MAX_RATE_LIMIT_WAIT
    progress: bool = False
    messages: bool = True   # write messages.csv
    max_image_mb: float = config.MAX_IMAGE_MB
    after: object = None    # --after: a message ID (int) or an aware datetime
    before: object = None   # --before: the same
    since_last: bool = False
    user: Optional[dict] = None   # the token's user, once checked (GET /users/@me)


# --- flag values ------------------------------------------------------------------

def positive_number(text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):  # also refuses nan
        raise ValueError(f"must be a number greater than 0: {text!r}")
    return int(value) if value.is_integer() else value


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


def bound(text):
    """--after / --before: a message ID or a date, parsed later in the
    chosen time zone (kept as text until then)."""
    from discordpicextract.discord.window import parse_bound

    parse_bound(text, "UTC")  # refuses what is neither
    return text.strip()


def worker_count(text):
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 64:
        raise ValueError(f"must be between 1 and 64: {text!r}")
    return value


# --- the command line ---------------------------------------------------------------

def build_parser(prog, output_note=""):
    """The download's flags; `output_note` extends --output's help (main.py
    tells there where --demo writes)."""
    parser = cli.ArgumentParser(
        prog=prog, description="Download every image a Discord channel posted in the last N days.",
        epilog=f"The token comes from {TOKEN_VARIABLES} (environment or .env) or a hidden prompt; "
               "it is never taken on the command line.")
    parser.add_argument("--channel", help="channel ID, a link as Discord's Copy Link gives it (a channel, "
                                          "a thread, a forum post), or channel name (then --guild is needed)")
    parser.add_argument("--guild", help="server name, when --channel is a name")
    parser.add_argument("--days", type=cli.argparse_type(days_back),
                        help=f"days to look back (default {config.DEFAULT_DAYS})")
    parser.add_argument("--after", type=cli.argparse_type(bound),
                        help="only messages after this date (yyyy-mm-dd, from its start in --timezone) "
                             "or message ID; instead of --days")
    parser.add_argument("--before", type=cli.argparse_type(bound),
                        help="only messages before this date (yyyy-mm-dd, its start) or message ID")
    parser.add_argument("--since-last", action="store_true",
                        help="only messages newer than the newest one the folder's archive holds for the channel")
    parser.add_argument("--output", help=f"download folder (default {config.DEFAULT_OUTPUT_DIR}{output_note})")
    parser.add_argument("--bot", action="store_true", help="send the token as a bot token (Bot <token>)")
    parser.add_argument("--timezone", type=cli.argparse_type(check_zone_name),
                        help=f"zone for the times in file names (default {config.TIMEZONE})")
    parser.add_argument("--workers", type=cli.argparse_type(worker_count),
                        help=f"parallel image downloads (default {config.DEFAULT_WORKERS})")
    parser.add_argument("--threads", action="store_true", help="also download from the channel's threads")
    parser.add_argument("--max-wait", type=cli.argparse_type(positive_number),
                        help=f"cap in seconds on a rate-limit wait (default {config.MAX_RATE_LIMIT_WAIT})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--max-image-mb", type=cli.argparse_type(positive_number),
                        help=f"refuse an image bigger than this many MiB (default {config.MAX_IMAGE_MB}; "
                             "Discord's largest upload is 500 MiB)")
    parser.add_argument("--no-messages", action="store_true",
                        help="do not write messages.csv (each image's message: text, author, link)")
    return parser


def parse_args(parser, argv):
    """Flags; unknown arguments are named without their values, which might
    be a token typed on the command line."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = " ".join(a.split("=", 1)[0] for a in unknown if a.startswith("-")) or "(values)"
        raise cli.UsageError(f"{parser.prog}: unrecognized arguments: {flags} (values not shown; "
                             f"the token is read from {TOKEN_VARIABLES} or a hidden prompt only)")
    return args

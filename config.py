"""Defaults shared by every script of the suite.

Edit the constants below to change defaults; every script's flags override
the value of the same name. The Discord token is never stored here: it comes
from the environment or a `.env` file (see `.env.example`).
"""
import os

from discordpicextract import __version__

# --- Download (main.py / discord_downloader.py) ---------------------------
DEFAULT_DAYS = 14
DEFAULT_OUTPUT_DIR = "spx-realtime-aws"
MAX_RETRIES = 3
# Minimum spacing in seconds between API requests when Discord's rate-limit
# headers do not allow going faster (no headers, or the bucket is empty).
RATE_LIMIT_DELAY = 1
# A rate-limit header asking for a longer wait than this is capped and
# reported instead of hanging the run.
MAX_RATE_LIMIT_WAIT = 60
DEFAULT_WORKERS = 8
REQUEST_TIMEOUT = 30
# One Discord API request (connect, headers and the whole JSON body) may take
# at most this long in all; then it is retried like a dropped connection.
# REQUEST_TIMEOUT alone would let an answer trickling a byte every few
# seconds hang the run (discord.py allows 300 s in all, DiscordChatExporter 100 s).
API_REQUEST_SECONDS = 60
# ...and its body at most this big: a page of 100 messages is a few MiB at
# most; a proxy answering without end would otherwise fill the memory.
MAX_API_ANSWER_MB = 64
# One image transfer may take at most this long in all (a body trickling a
# byte at a time never hits REQUEST_TIMEOUT, which counts between bytes)...
MAX_TRANSFER_SECONDS = 600
# ...and be at most this big: Discord's largest upload (Nitro) is 500 MiB,
# so anything bigger is a CDN or proxy answering with an endless body.
MAX_IMAGE_MB = 600
# File names are written in this zone (daylight saving handled by zoneinfo).
TIMEZONE = "America/New_York"
DEFAULT_API_BASE = "https://discord.com/api/v10"
# Discord asks bot clients for "DiscordBot ($url, $versionNumber)"; it is sent
# with a bot token only (a user token sends no User-Agent: see
# discordpicextract/discord/client.py, user_agent_for).
PROJECT_URL = "https://github.com/DiscordPicExtract/DiscordPicExtract"
USER_AGENT = f"DiscordBot ({PROJECT_URL}, {__version__})"
# Discord's media proxy serves resized or re-encoded copies of attachments;
# the CDN host beside it serves the file whole.
MEDIA_PROXY_HOSTS = {"media.discordapp.net": "cdn.discordapp.com"}
# Discord bans an IP for 10,000 invalid answers (401, 403, 429) in 10
# minutes; a run stops long before that many.
MAX_INVALID_REQUESTS = 500
INVALID_REQUEST_WINDOW = 600
# A 429 of the shared scope (another user's load on the same resource)
# asking for a longer wait than this skips that channel or thread.
MAX_SHARED_LIMIT_WAIT = 30

# --- Cleaning (deduplicate_images.py / extract_one_per_day.py) ------------
CLEAN_OUTPUT_DIR = "spx-realtime-aws-clean"
ONE_PER_DAY_DIR = "spx-clean-1perDay"
PIPELINE_FOLDERS = (DEFAULT_OUTPUT_DIR, CLEAN_OUTPUT_DIR, ONE_PER_DAY_DIR)
# review_archive.py writes its page and thumbnails here.
REVIEW_DIR = "review"

# --- Timestamp checks (quality_check_timestamps.py) -----------------------
# Regular US session, both ends inside, in MARKET_TIMEZONE.
TRADING_START = "09:30:00"
TRADING_END = "16:00:00"
MARKET_TIMEZONE = "America/New_York"
PLOT_FILE = "outside_trading_hours_distribution.png"
# adjust_timestamps.py default shift (UTC names -> US Eastern standard time)
DEFAULT_ADJUST_HOURS = -5

# Hidden bookkeeping files kept inside image folders.
ARCHIVE_FILE = ".discordpicextract-archive.sqlite3"
JOURNAL_FILE = ".discordpicextract-renames.jsonl"
# One lock per folder, held by whichever run writes into it (locking.py).
LOCK_FILE = ".discordpicextract.lock"
# The zone the folder's names are written in (JSON, {"names_zone": ...}).
FOLDER_INFO_FILE = ".discordpicextract-folder.json"


def api_base():
    """The Discord API base; DISCORD_API_BASE overrides it (tests, the demo)."""
    return os.environ.get("DISCORD_API_BASE", DEFAULT_API_BASE).rstrip("/")


TOKEN_VARIABLES = (("DISCORD_USER_TOKEN", "user"), ("DISCORD_BOT_TOKEN", "bot"))


def load_token():
    """Return (token, kind) from the environment or `.env`; kind is
    "user", "bot" or None when no token is configured.

    The environment is looked at first, both variables, and only then
    `.env` in the current folder: a token exported for this run (say a bot
    token) must win over an old one left in `.env`. `.env` is read without
    copying it into os.environ.
    """
    from dotenv import dotenv_values

    dotenv_path = os.path.join(os.getcwd(), ".env")
    dotenv = dotenv_values(dotenv_path) if os.path.isfile(dotenv_path) else {}
    for source in (os.environ, dotenv):
        for variable, kind in TOKEN_VARIABLES:
            token = _clean(source.get(variable))
            if token:
                return token, kind
    return None, None


def _clean(value):
    return (value or "").strip().strip('"').strip("'")

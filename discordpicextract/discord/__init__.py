"""The downloader: the only code that talks to the network.

- `client`: `DiscordClient` (the token, its kind, retries, one `paginate`
  helper behind the `fetch_...` generators over API pages), `scrub`.
- `ratelimit`: Discord's per-bucket rate limits (`route_key`, `RateLimiter`).
- `resolve`: a channel by ID, or by server and channel name.
- `extract`: message -> image items (pure), their archive keys.
- `plan`: items -> collision-free file names (pure).
- `transfer`: one image from the CDN into the folder, verified, no overwrite.
- `run`: `run_download`, the whole run, returning a `DownloadResult`.
- `job`: the `Job`, the prompts' texts, the flag values' parsers.
- `errors`: `DiscordError` and its kinds, each with its exit code.

Nothing here prints: the script (discord_downloader.py) does.
"""
from discordpicextract.discord.client import DiscordClient, scrub
from discordpicextract.discord.errors import AccessError, AmbiguousError, AuthError, DiscordError, NotFoundError
from discordpicextract.discord.extract import ImageItem, extract_images, item_key, message_time, parse_time
from discordpicextract.discord.job import Job
from discordpicextract.discord.plan import PlannedDownload, plan_names
from discordpicextract.discord.ratelimit import RateLimiter, route_key
from discordpicextract.discord.resolve import is_channel_id, resolve_channel
from discordpicextract.discord.run import (
    DownloadResult,
    channels_with_threads,
    cutoff_for,
    list_threads,
    run_download,
)

__all__ = [
    "AccessError", "AmbiguousError", "AuthError", "DiscordClient", "DiscordError", "DownloadResult", "ImageItem",
    "Job", "NotFoundError", "PlannedDownload", "RateLimiter", "channels_with_threads", "cutoff_for",
    "extract_images", "is_channel_id", "item_key", "list_threads", "message_time", "parse_time", "plan_names",
    "resolve_channel", "route_key", "run_download", "scrub",
]

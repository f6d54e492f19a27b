"""The errors of a Discord API call or of finding a channel; each carries the
exit code of the suite's errors (`discordpicextract.errors`) it derives from."""
from typing import Optional

from discordpicextract.errors import EXIT_USAGE, RunError, UsageError


class DiscordError(RunError):
    """An API call that failed (exit 1: the server would not go on); the text
    never contains the token."""

    def __init__(self, message, status: Optional[int] = None, code: Optional[int] = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(DiscordError, UsageError):
    """401: the token is invalid (exit 2: bad input)."""

    exit_code = EXIT_USAGE


class AccessError(DiscordError, UsageError):
    """403: the token may not read this (exit 2)."""

    exit_code = EXIT_USAGE


class NotFoundError(DiscordError, UsageError):
    """404 from the API, or no guild/channel by that name (exit 2)."""

    exit_code = EXIT_USAGE


class AmbiguousError(DiscordError, UsageError):
    """Several channels or guilds match a name (exit 2)."""

    exit_code = EXIT_USAGE

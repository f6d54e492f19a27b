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


class StopError(DiscordError):
    """An answer after which the run must make no further API request (a
    ban, a Cloudflare block, a token revoked mid-run, an account to verify,
    too many invalid answers): exit 1, one line."""


class BanError(StopError):
    """Cloudflare or Discord refuses this IP for now (a 429 without rate
    limit headers, an HTML or plain-text 429, a 403 with code 40333)."""


class TokenRevokedError(StopError):
    """401 after sign-in: the token was valid and is no longer."""


class VerifyError(StopError):
    """Code 40002: the account must be verified in the Discord app."""


class InvalidLimitError(StopError):
    """Too many 401/403/429 answers in Discord's 10-minute window."""


class SharedLimitError(DiscordError):
    """A long 429 of the `shared` scope: this channel or thread is skipped."""


class IntentError(DiscordError, UsageError):
    """A bot without the Message Content intent (exit 2: a setting to change)."""

    exit_code = EXIT_USAGE


class ChannelTypeError(DiscordError, UsageError):
    """A channel of a type that holds no messages (a category...): exit 2."""

    exit_code = EXIT_USAGE

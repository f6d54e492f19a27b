"""Discord snowflake IDs and timestamps, as the emulator issues them."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Optional, Union

DISCORD_EPOCH_MS = 1420070400000
UTC = timezone.utc


def snowflake_for(when: datetime, increment: int = 0) -> int:
    """Discord snowflake for an aware datetime: ((ms - epoch) << 22) | increment."""
    ms = math.floor(when.timestamp() * 1000)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (increment & 0xFFF)


def snowflake_time(snowflake: Union[int, str]) -> datetime:
    """The aware UTC datetime (ms precision) a snowflake was made at."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso(when: Optional[datetime]) -> Optional[str]:
    """Discord's timestamp format: ISO 8601 in UTC with +00:00."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def message_time(when: datetime) -> datetime:
    """`when` in UTC cut to whole milliseconds; naive datetimes are refused."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("message times must be aware datetimes")
    # Snowflakes carry milliseconds; keep timestamp and ID in agreement.
    when = when.astimezone(UTC)
    return when.replace(microsecond=(when.microsecond // 1000) * 1000)

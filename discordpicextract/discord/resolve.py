"""Finding the channel to read: by ID, or by server and channel name
(case-insensitive, Unicode-normalised, with "did you mean" hints)."""
import difflib
import re
import unicodedata

from discordpicextract.discord.errors import AccessError, AmbiguousError, ChannelTypeError, NotFoundError
from discordpicextract.discord.window import channel_from_link

# Channel types whose messages we can read: text, DM, voice chat, group DM,
# announcement, announcement/public/private threads, stage chat.
MESSAGE_CHANNEL_TYPES = frozenset({0, 1, 2, 3, 5, 10, 11, 12, 13})
# Forum and media channels: no messages of their own, their posts are threads.
FORUM_CHANNEL_TYPES = frozenset({15, 16})
READABLE_TYPES = MESSAGE_CHANNEL_TYPES | FORUM_CHANNEL_TYPES
TYPE_NAMES = {4: "a category", 6: "a store channel", 14: "a server directory"}
_SNOWFLAKE = re.compile(r"^\d{15,21}$")


def _fold(name) -> str:
    return unicodedata.normalize("NFKC", name or "").casefold().strip()


def near_names(wanted, names, limit=5):
    """Names close to `wanted` (for "did you mean")."""
    folded = {_fold(n): n for n in names}
    close = difflib.get_close_matches(_fold(wanted), list(folded), n=limit, cutoff=0.4)
    close += [key for key in folded if _fold(wanted) in key and key not in close]
    return [folded[key] for key in close[:limit]]


def _did_you_mean(wanted, names):
    near = near_names(wanted, names)
    if near:
        return "; near names: " + ", ".join(near)
    if names:
        shown = sorted(names)[:10]
        more = f" (+{len(names) - 10} more)" if len(names) > 10 else ""
        return "; available: " + ", ".join(shown) + more
    return ""


def match_guild(guilds, name):
    """The guild named `name` (case-insensitive, Unicode-normalised)."""
    wanted = _fold(name)
    found = [g for g in guilds if _fold(g.get("name")) == wanted]
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"{g['name']} (ID {g['id']})" for g in found)
        raise AmbiguousError(f"several servers are named {name!r}: {listed}")
    names = [g.get("name", "") for g in guilds]
    raise NotFoundError(f"server {name!r} not found among your {len(guilds)} servers"
                        + _did_you_mean(name, names))


def match_channel(channels, name, guild_name=""):
    """The message channel named `name` (a leading '#' is ignored)."""
    wanted = _fold(name).lstrip("#").strip()
    readable = [c for c in channels if c.get("type") in READABLE_TYPES]
    found = [c for c in readable if _fold(c.get("name")) == wanted]
    where = f" in server {guild_name!r}" if guild_name else ""
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(f"#{c['name']} (ID {c['id']})" for c in found)
        raise AmbiguousError(f"several channels named #{wanted}{where}: {listed}; "
                             f"pass the channel ID instead")
    names = [c.get("name", "") for c in readable]
    raise NotFoundError(f"channel #{wanted} not found{where} "
                        f"(searched {len(readable)} text, forum and media channels)" + _did_you_mean(wanted, names))


def is_channel_id(text) -> bool:
    """An ID, or a link that names one (no server name needed)."""
    return bool(_SNOWFLAKE.match(text.strip())) or channel_from_link(text) is not None


def check_readable(channel):
    """The channel, when its type can hold images; else a clear error."""
    kind = channel.get("type")
    if kind not in READABLE_TYPES:
        what = TYPE_NAMES.get(kind, f"a channel of type {kind}")
        raise ChannelTypeError(f"#{channel.get('name', channel.get('id'))} is {what}, which holds no "
                               f"messages: pass one of its text, forum or media channels")
    return channel


def resolve_channel(client, channel, guild_name=None):
    """(channel object, guild name or "") for an ID, a link as Discord's
    "Copy Link" gives it, or a name + guild name."""
    channel = channel.strip()
    channel = channel_from_link(channel) or channel
    if is_channel_id(channel):
        try:
            return check_readable(client.fetch_channel(channel)), ""
        except NotFoundError:
            raise NotFoundError(f"channel ID {channel} not found (Unknown Channel)") from None
        except AccessError:
            raise AccessError(f"no access to channel ID {channel} (Missing Access)") from None
    if not guild_name:
        raise NotFoundError(f"channel {channel!r} is a name: a server name is needed too (--guild)")
    guilds = [g for page in client.fetch_guilds() for g in page]
    guild = match_guild(guilds, guild_name)
    try:
        channels = client.fetch_channels(guild["id"])
    except AccessError:
        raise AccessError(f"no access to the channels of server {guild['name']!r}") from None
    return match_channel(channels, channel, guild["name"]), guild["name"]

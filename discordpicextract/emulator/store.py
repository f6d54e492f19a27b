"""The emulated world: guilds, channels, threads, messages and stored file bytes.

`World` owns the state and its lock; routes read it under `world.lock`, the
emulator's public add_* methods write it. Objects are kept in Discord's JSON
shapes where Discord sends them as they are (guilds, channels, threads).
"""
from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional, Union

from .components import map_leaves
from .snowflakes import UTC, iso, message_time, snowflake_for

Id = Union[int, str]
# (filename, bytes, content_type or None[, extra attachment fields: title, flags, description])
FileSpec = tuple
THREAD_TYPES = (10, 11, 12)
FORUM_TYPES = (15, 16)


@dataclass
class Blob:
    """Stored file bytes (attachment or external image)."""
    id: int
    channel_id: int
    filename: str
    data: bytes
    content_type: Optional[str]
    extra: dict = field(default_factory=dict)   # title, flags, description as Discord sends them


@dataclass
class Snapshot:
    content: str
    attachments: list[Blob]
    embeds: list[dict]
    when: datetime
    components: list = field(default_factory=list)


@dataclass
class Message:
    id: int
    channel_id: int
    when: datetime
    content: str
    author: dict
    attachments: list[Blob]
    embeds: list[dict]
    snapshots: list[Snapshot]
    reference: Optional[dict]
    components: list = field(default_factory=list)   # with Blob where an upload is referenced
    type: int = 0


@dataclass
class Channel:
    obj: dict
    accessible: bool = True
    ids: list[int] = field(default_factory=list)         # sorted message IDs
    messages: dict[int, Message] = field(default_factory=dict)


def make_user(uid: int, username: str, bot: bool = False) -> dict:
    user: dict[str, Any] = {
        "id": str(uid), "username": username, "avatar": None, "discriminator": "0",
        "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
        "global_name": username.replace("_", " ").title(), "avatar_decoration_data": None,
        "collectibles": None, "primary_guild": None}
    if bot:
        user["bot"] = True
    return user


class World:
    """Every object the emulator serves, behind one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._increments: dict[int, int] = {}
        self.guilds: dict[int, dict] = {}
        self.guild_member: dict[int, bool] = {}
        self.channels: dict[int, Channel] = {}
        self.blobs: dict[int, Blob] = {}
        self.external: dict[int, Blob] = {}

    def new_id(self, when: datetime) -> int:
        """A fresh snowflake for `when`: the increment counts IDs made in that millisecond."""
        with self.lock:
            ms = math.floor(when.timestamp() * 1000)
            inc = self._increments.get(ms, 0)
            if inc > 0xFFF:
                raise ValueError("more than 4096 IDs in one millisecond")
            self._increments[ms] = inc + 1
            return snowflake_for(when, inc)

    # ---- building ------------------------------------------------------------
    def add_guild(self, name: str, member: bool) -> dict:
        with self.lock:
            gid = self.new_id(datetime.now(UTC) - timedelta(days=800))
            guild: dict[str, Any] = {
                "id": str(gid), "name": name, "icon": None, "banner": None, "owner": False,
                "permissions": "1071698660929", "features": [],
                "approximate_member_count": None, "approximate_presence_count": None}
            self.guilds[gid] = guild
            self.guild_member[gid] = member
            return guild

    def add_channel(self, guild_id: Id, name: str, accessible: bool, topic: Optional[str],
                    position: Optional[int], kind: int = 0) -> dict:
        with self.lock:
            gid = int(guild_id)
            cid = self.new_id(datetime.now(UTC) - timedelta(days=700))
            if position is None:
                position = sum(1 for c in self.channels.values()
                               if c.obj["guild_id"] == str(gid) and c.obj["type"] == 0)
            obj: dict[str, Any] = {
                "id": str(cid), "type": kind, "guild_id": str(gid), "name": name,
                "position": position, "flags": 0, "parent_id": None, "topic": topic,
                "nsfw": False, "rate_limit_per_user": 0, "permission_overwrites": [],
                "last_message_id": None, "last_pin_timestamp": None}
            self.channels[cid] = Channel(obj, accessible=accessible and self.guild_member.get(gid, False))
            return obj

    def add_thread(self, channel_id: Id, name: str, owner_id: str, archived: bool,
                   archive_time: Optional[datetime], created: Optional[datetime] = None,
                   thread_id: Optional[int] = None, private: bool = False) -> dict:
        """A thread; `thread_id` given: a thread started from that message
        (Discord gives such a thread the message's ID)."""
        with self.lock:
            parent = self.channels[int(channel_id)]
            created = message_time(created) if created else datetime.now(UTC) - timedelta(days=60)
            tid = thread_id if thread_id is not None else self.new_id(created)
            archive_time = archive_time or (datetime.now(UTC) - timedelta(days=1) if archived else created)
            obj: dict[str, Any] = {
                "id": str(tid), "type": 12 if private else 11, "guild_id": parent.obj["guild_id"], "name": name,
                "parent_id": parent.obj["id"], "owner_id": owner_id, "flags": 0,
                "last_message_id": None, "rate_limit_per_user": 0,
                "message_count": 0, "member_count": 1, "total_message_sent": 0,
                "thread_metadata": {"archived": archived, "archive_timestamp": iso(message_time(archive_time)),
                                    "auto_archive_duration": 1440, "locked": False,
                                    "create_timestamp": iso(created)}}
            self.channels[tid] = Channel(obj, accessible=parent.accessible)
            return obj

    def _blob(self, channel_id: int, when: datetime, spec: FileSpec) -> Blob:
        filename, data, content_type = spec[:3]
        extra = dict(spec[3]) if len(spec) > 3 else {}
        blob = Blob(self.new_id(when), channel_id, filename, bytes(data), content_type, extra)
        self.blobs[blob.id] = blob
        return blob

    def _components(self, channel_id: int, when: datetime, components: Iterable) -> list:
        """Component trees with each upload given as a FileSpec tuple (in a
        media or file slot) stored as a Blob."""
        return map_leaves(list(components),
                          lambda leaf: self._blob(channel_id, when, leaf) if isinstance(leaf, tuple) else leaf)

    def _snapshots(self, channel_id: int, when: datetime, snapshots: Iterable[dict]) -> list[Snapshot]:
        return [Snapshot(snap.get("content", ""),
                         [self._blob(channel_id, when, a) for a in snap.get("attachments", ())],
                         [dict(e) for e in snap.get("embeds", ())],
                         message_time(snap.get("timestamp") or when),
                         self._components(channel_id, when, snap.get("components", ())))
                for snap in snapshots]

    def add_message(self, channel_id: Id, when: datetime, content: str, attachments: Iterable[FileSpec],
                    embeds: Iterable[dict], snapshots: Iterable[dict], author: dict,
                    components: Iterable = (), message_id: Optional[int] = None, kind: int = 0,
                    reference: Optional[dict] = None) -> Message:
        when = message_time(when)
        with self.lock:
            cid = int(channel_id)
            chan = self.channels[cid]
            if chan.obj["type"] in FORUM_TYPES:
                raise ValueError("a forum or media channel holds no messages: post in one of its threads")
            mid = message_id if message_id is not None else self.new_id(when)
            snaps = self._snapshots(cid, when, snapshots)
            if snaps:
                reference = {"type": 1, "channel_id": str(cid), "guild_id": chan.obj["guild_id"],
                             "message_id": str(snowflake_for(snaps[0].when))}
            msg = Message(mid, cid, when, content, dict(author),
                          [self._blob(cid, when, a) for a in attachments],
                          [dict(e) for e in embeds], snaps, reference,
                          self._components(cid, when, components), kind)
            bisect.insort(chan.ids, mid)
            chan.messages[mid] = msg
            chan.obj["last_message_id"] = str(chan.ids[-1])
            if chan.obj["type"] in THREAD_TYPES:
                chan.obj["message_count"] += 1
                chan.obj["total_message_sent"] += 1
            return msg

    def add_blob(self, channel_id: Id, spec: FileSpec) -> Blob:
        with self.lock:
            return self._blob(int(channel_id), datetime.now(UTC), spec)

    def add_external(self, filename: str, data: bytes, content_type: str) -> Blob:
        with self.lock:
            blob = Blob(self.new_id(datetime.now(UTC)), 0, filename, bytes(data), content_type)
            self.external[blob.id] = blob
            return blob

    # ---- reading ---------------------------------------------------------------
    def threads_of(self, parent_id: Optional[str] = None, guild_id: Optional[str] = None,
                   archived: Optional[bool] = None) -> list[dict]:
        out = []
        for chan in self.channels.values():
            obj = chan.obj
            if obj["type"] not in THREAD_TYPES:
                continue
            if parent_id is not None and obj["parent_id"] != parent_id:
                continue
            if guild_id is not None and obj["guild_id"] != guild_id:
                continue
            if archived is not None and obj["thread_metadata"]["archived"] != archived:
                continue
            out.append(obj)
        return out

    def guild_channels(self, guild_id: str) -> list[dict]:
        """The guild's channels that are not threads, in Discord's order (position, then ID)."""
        chans = [c.obj for c in self.channels.values()
                 if c.obj["guild_id"] == guild_id and c.obj["type"] not in THREAD_TYPES]
        return sorted(chans, key=lambda c: (c["position"], int(c["id"])))

"""Messages as Discord's JSON, with signed, expiring CDN links (`ex`/`is`/`hm`)."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import threading
from typing import Any, Callable, Optional
from urllib.parse import quote

from .components import map_leaves
from .snowflakes import iso
from .store import Blob, Message


def image_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) of PNG, GIF, JPEG or WebP bytes, read from the header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_dimensions(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_dimensions(data)
    return None


def _webp_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    if data[12:16] == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if data[12:16] == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return w, h
        pos += 2 + length
    return None


def attachment_path(blob: Blob) -> str:
    return f"/attachments/{blob.channel_id}/{blob.id}/{quote(blob.filename, safe='')}"


class CdnLinks:
    """Signs attachment links; `expire_all()` invalidates every link issued so far."""

    def __init__(self, ttl: float, cdn_base: Callable[[], str]):
        self.ttl = float(ttl)
        self._cdn_base = cdn_base
        self._secret = secrets.token_bytes(32)
        self._generation = 0
        self._lock = threading.Lock()

    def _sign(self, path: str, issued: int, expires: int) -> str:
        msg = f"{self._generation}|{path}|{expires:x}|{issued:x}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, blob: Blob, now: float) -> str:
        path = attachment_path(blob)
        issued = int(now)
        expires = int(now + self.ttl)
        return f"{self._cdn_base()}{path}?ex={expires:x}&is={issued:x}&hm={self._sign(path, issued, expires)}&"

    def is_valid(self, blob: Blob, query: dict[str, str], now: float) -> bool:
        """True when the query's ex/is/hm sign this blob's path in this generation and `ex` is not past."""
        try:
            expires, issued, hm = int(query["ex"], 16), int(query["is"], 16), query["hm"]
        except (KeyError, ValueError):
            return False
        good = self._sign(attachment_path(blob), issued, expires)
        return hmac.compare_digest(good, hm) and expires >= now

    def expire_all(self) -> None:
        with self._lock:
            self._generation += 1


def render_attachment(blob: Blob, links: CdnLinks, now: float) -> dict:
    url = links.signed_url(blob, now)
    out: dict[str, Any] = {"id": str(blob.id), "filename": blob.filename, "size": len(blob.data),
                           "url": url, "proxy_url": url}
    out.update(blob.extra)      # title (the original name), flags (IS_THUMBNAIL, IS_SPOILER), description
    if blob.content_type:
        out["content_type"] = blob.content_type
    # Discord gives width/height for images, also when it could not name the type
    is_image = blob.content_type is None or blob.content_type.startswith("image/")
    dims = image_dimensions(blob.data) if is_image else None
    if dims:
        out["width"], out["height"] = dims
    return out


IS_COMPONENTS_V2 = 1 << 15
HAS_SNAPSHOT = 1 << 14


def render_media(blob: Blob, links: CdnLinks, now: float) -> dict:
    """An unfurled media item for an upload a component references."""
    url = links.signed_url(blob, now)
    out: dict[str, Any] = {"id": str(blob.id + 1), "url": url, "proxy_url": url,
                           "content_type": blob.content_type, "attachment_id": str(blob.id)}
    dims = image_dimensions(blob.data)
    out["width"], out["height"] = dims if dims else (None, None)
    return out


def render_components(components: list, links: CdnLinks, now: float) -> list:
    """Component trees as Discord sends them: a stored upload becomes an
    unfurled media item with a fresh signed link and its attachment_id."""
    return map_leaves(list(components),
                      lambda leaf: render_media(leaf, links, now) if isinstance(leaf, Blob) else leaf)


def referenced_uploads(components: list) -> set:
    found: set = set()

    def walk(node: Any) -> None:
        if isinstance(node, Blob):
            found.add(node.id)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(components)
    return found


def _attachments(blobs: list, components: list, links: CdnLinks, now: float) -> list:
    """Discord lists in `attachments` only the files no component references
    (api-docs #8277)."""
    used = referenced_uploads(components)
    return [render_attachment(b, links, now) for b in blobs if b.id not in used]


def render_embeds(embeds: list, proxy: Callable[[str], Optional[str]]) -> list:
    """Embeds as given, with Discord's proxy copy (`proxy_url`, on another
    host than the origin) added to each image and thumbnail that has none."""
    out = []
    for given in embeds:
        embed = dict(given)
        for part in ("image", "thumbnail"):
            media = embed.get(part)
            if isinstance(media, dict) and media.get("url") and "proxy_url" not in media:
                proxied = proxy(media["url"])
                if proxied:
                    embed[part] = {**media, "proxy_url": proxied}
        out.append(embed)
    return out


def render_message(msg: Message, links: CdnLinks, now: float, proxy: Optional[Callable[[str], Optional[str]]] = None,
                   content_visible: bool = True) -> dict:
    """A message as Discord's JSON. `content_visible=False`: as a bot without
    the Message Content intent sees it (no text, embeds, attachments,
    components or forwards)."""
    proxy = proxy or (lambda url: None)
    flags = IS_COMPONENTS_V2 if msg.components else 0
    out: dict[str, Any] = {
        "type": msg.type, "id": str(msg.id), "channel_id": str(msg.channel_id), "author": msg.author,
        "content": msg.content, "timestamp": iso(msg.when), "edited_timestamp": None,
        "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
        "attachments": _attachments(msg.attachments, msg.components, links, now),
        "embeds": render_embeds(msg.embeds, proxy), "pinned": False, "flags": flags,
        "components": render_components(msg.components, links, now)}
    if msg.reference and not msg.snapshots:
        out["message_reference"] = msg.reference
    if msg.snapshots:
        out["flags"] = flags | HAS_SNAPSHOT          # as Discord marks forwards
        out["message_reference"] = msg.reference
        out["message_snapshots"] = [{"message": {
            "type": 0, "content": s.content, "timestamp": iso(s.when), "edited_timestamp": None,
            "flags": IS_COMPONENTS_V2 if s.components else 0, "mentions": [], "mention_roles": [],
            "components": render_components(s.components, links, now),
            "attachments": _attachments(s.attachments, s.components, links, now),
            "embeds": render_embeds(s.embeds, proxy)}} for s in msg.snapshots]
    if not content_visible:
        out.update(content="", embeds=[], attachments=[], components=[])
        out.pop("message_snapshots", None)
    return out

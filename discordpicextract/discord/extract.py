"""The images of a message (pure): attachments, embed images, image URLs in
the text, forwarded messages; each with its archive key and original name."""
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import config
from discordpicextract import naming
from discordpicextract.discord.components import component_media, component_text

# Query parameters that sign a Discord CDN link: they change on every read of
# the message, so the archive key ignores them.
SIGNATURE_PARAMS = frozenset({"ex", "is", "hm"})
# Attachment flag: a media channel's grid thumbnail, "not on the message" (a
# second, smaller copy of the post's image).
IS_THUMBNAIL = 1 << 1
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`|()\[\]{}]+")


def parse_time(stamp) -> datetime:
    """An ISO 8601 timestamp from Discord as an aware UTC datetime."""
    stamp = stamp.replace("Z", "+00:00")
    # Python 3.9's fromisoformat takes only 3 or 6 fraction digits.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", stamp)
    if match and match.group(2):
        fraction = (match.group(2)[1:] + "000000")[:6]
        stamp = f"{match.group(1)}.{fraction}{match.group(3)}"
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def message_time(message) -> datetime:
    return parse_time(message["timestamp"])


@dataclass(frozen=True)
class ImageItem:
    """One image to fetch: where it is, when it was posted, what it is called."""

    key: str            # archive key: message ID + attachment ID or unsigned URL
    message_id: str
    channel_id: str
    posted: datetime    # the message's time, aware UTC
    url: str
    original: str       # sanitised original file name
    source: str         # "attachment", "embed" or "text" (+ " (forwarded)")
    index: int          # position within the message
    # for messages.csv: who posted it and the text around the image
    author: str = ""
    author_id: str = ""
    text: str = ""
    fallback: str = ""  # tried when `url` fails (an embed's origin behind its proxy copy)
    original_posted: Optional[datetime] = None  # a forward's original post time


def strip_signature(url) -> str:
    """`url` without Discord's signing parameters (ex, is, hm)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in SIGNATURE_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def item_key(message_id, attachment_id=None, url=None) -> str:
    if attachment_id is not None:
        return f"{message_id}/attachment/{attachment_id}"
    return f"{message_id}/url/{strip_signature(url)}"


def url_filename(url) -> str:
    """The last part of a URL's path, without its query."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def is_image_attachment(attachment) -> bool:
    content_type = (attachment.get("content_type") or "").lower()
    if content_type.startswith("image/") and "svg" not in content_type:
        return True
    return naming.is_image_name(attachment.get("filename") or "")


def is_image_url(url) -> bool:
    return naming.is_image_name(url_filename(url))


def text_image_urls(text):
    """Image URLs in a message's text (query strings allowed)."""
    for match in _URL_IN_TEXT.finditer(text or ""):
        url = match.group(0).rstrip(".,;:!?*_~")
        if is_image_url(url):
            yield url


def embed_media(embed):
    """The one image of an embed, as (URL to fetch, fallback URL, key URL,
    content type), or None: per embed the image rather than its thumbnail
    (a rich bot embed's small thumbnail beside its image is left out), no
    videos. Discord's proxy copy is fetched first and the origin is the
    fallback (an origin that is gone or blocks us would lose the image)."""
    if embed.get("type") in ("video", "gifv") or embed.get("video"):
        return None
    for part in ("image", "thumbnail"):
        media = embed.get(part) or {}
        urls = [u for u in (media.get("proxy_url"), media.get("url"))
                if u and u.startswith(("http://", "https://"))]
        if urls:
            fallback = urls[1] if len(urls) > 1 and urls[1] != urls[0] else ""
            return urls[0], fallback, media.get("url") or urls[0], media.get("content_type")
    return None


def cdn_url(url) -> str:
    """A media-proxy link to an attachment as the CDN serves it whole:
    `media.discordapp.net/attachments/...` -> `cdn.discordapp.com/...` without
    the proxy's width/height/format/quality (which give a resized or
    re-encoded copy). Stickers and `images-ext-*` proxies stay as they are."""
    parts = urlsplit(url)
    target = config.MEDIA_PROXY_HOSTS.get(parts.netloc.lower())
    if target is None or not parts.path.startswith(("/attachments/", "/ephemeral-attachments/")):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _PROXY_PARAMS]
    return urlunsplit((parts.scheme, target, parts.path, urlencode(query), ""))


_PROXY_PARAMS = frozenset({"width", "height", "format", "quality"})


_TYPE_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
                    "image/webp": ".webp", "image/bmp": ".bmp"}
_EXTENSION_INSIDE = re.compile(r"\.(png|jpe?g|gif|webp|bmp)(?![a-z0-9])", re.IGNORECASE)


def with_image_extension(name, content_type=None, url=""):
    """`name`, ending in an image extension so that the later pipeline steps
    see the file: an embed URL like `.../media/abc?format=jpg` or
    `.../abc.jpg:large` has none. Taken from the content type, the URL's
    `format`, an extension inside the name, else `.png`."""
    if naming.is_image_name(name):
        return name
    ext = _TYPE_EXTENSIONS.get((content_type or "").split(";")[0].strip().lower())
    if ext is None:
        fmt = dict(parse_qsl(urlsplit(url).query)).get("format", "").lower()
        ext = f".{fmt}" if naming.is_image_name(f"x.{fmt}") else None
    if ext is None:
        inside = _EXTENSION_INSIDE.search(name or "")
        ext = inside.group(0).lower() if inside else ".png"
    return f"{name}{ext}"


def _sources(message):
    """(source label, content holder, original time) for the message and
    its forwards (a snapshot's timestamp is the original post's)."""
    yield "", message, None
    for snapshot in message.get("message_snapshots") or []:
        inner = snapshot.get("message") or {}
        stamp = inner.get("timestamp")
        yield " (forwarded)", inner, parse_time(stamp) if stamp else None


def is_thumbnail(attachment) -> bool:
    return bool(int(attachment.get("flags") or 0) & IS_THUMBNAIL)


def thumbnail_count(message) -> int:
    """IS_THUMBNAIL attachments of a message and its forwards (not saved)."""
    return sum(1 for _, holder, _ in _sources(message)
               for a in holder.get("attachments") or [] if is_thumbnail(a))


def has_content(message) -> bool:
    """False for a message as a bot without the Message Content intent sees
    it: no text, embeds, attachments, components, forwards or poll."""
    return any(message.get(k) for k in ("content", "embeds", "attachments", "components",
                                        "message_snapshots", "poll"))


def attachment_name(attachment) -> str:
    """The attachment's file name; Discord keeps the original in `title`
    when `filename` was reduced (underscores or a hash, common with Chinese
    names): then the title with the file's real extension."""
    filename = attachment.get("filename") or url_filename(attachment.get("url") or "")
    title = (attachment.get("title") or "").strip()
    if not title:
        return filename
    ext = os.path.splitext(filename)[1]
    if not naming.is_image_name(f"x{ext}"):
        ext = _TYPE_EXTENSIONS.get((attachment.get("content_type") or "").split(";")[0].strip().lower(), ext)
    return title if title.lower().endswith(ext.lower()) else f"{title}{ext}"


def _is_image_media(media) -> bool:
    content_type = (media.content_type or "").lower()
    if content_type:
        return content_type.startswith("image/") and "svg" not in content_type
    return naming.is_image_name(media.name or url_filename(media.url))


def _text_of(holder) -> str:
    """A message's text for messages.csv: its content, else (Components V2)
    its text displays."""
    return str(holder.get("content") or "") or component_text(holder.get("components"))


def extract_images(message):
    """The image items of a message: attachments (not media-channel grid
    thumbnails), component media (Components V2), one image per embed (not
    videos), image URLs in the text, and the same inside forwarded messages.
    An item present twice (an upload in attachments and in a gallery, one
    URL in text and embed) is fetched once."""
    items: list[ImageItem] = []
    seen: set[str] = set()
    message_id, channel_id = str(message["id"]), str(message.get("channel_id", ""))
    posted = message_time(message)
    author = message.get("author") or {}

    def add(key, url, original, source, holder, content_type=None, fallback="", original_posted=None):
        unsigned = strip_signature(url)
        if key in seen or unsigned in seen:
            return
        seen.update((key, unsigned))
        original = naming.sanitize_original(with_image_extension(original, content_type, url))
        items.append(ImageItem(key, message_id, channel_id, posted, cdn_url(url), original, source, len(items),
                               str(author.get("username") or ""), str(author.get("id") or ""),
                               _text_of(holder), fallback, original_posted))

    for label, holder, original_posted in _sources(message):
        for attachment in holder.get("attachments") or []:
            if is_image_attachment(attachment) and attachment.get("url") and not is_thumbnail(attachment):
                add(item_key(message_id, attachment_id=attachment["id"]), attachment["url"],
                    attachment_name(attachment), "attachment" + label, holder,
                    attachment.get("content_type"), original_posted=original_posted)
        for media in component_media(holder.get("components")):
            if _is_image_media(media):
                key = item_key(message_id, attachment_id=media.attachment_id, url=media.url)
                add(key, media.url, media.name or url_filename(media.url), "component" + label, holder,
                    media.content_type, original_posted=original_posted)
        for embed in holder.get("embeds") or []:
            found = embed_media(embed)
            if found:
                url, fallback, key_url, content_type = found
                add(item_key(message_id, url=key_url), url, url_filename(key_url), "embed" + label, holder,
                    content_type, fallback, original_posted)
        for url in text_image_urls(holder.get("content")):
            add(item_key(message_id, url=url), url, url_filename(url), "text" + label, holder,
                original_posted=original_posted)
    return items

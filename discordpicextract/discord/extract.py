"""The images of a message (pure): attachments, embed images, image URLs in
the text, forwarded messages; each with its archive key and original name."""
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from discordpicextract import naming

# Query parameters that sign a Discord CDN link: they change on every read of
# the message, so the archive key ignores them.
SIGNATURE_PARAMS = frozenset({"ex", "is", "hm"})
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


def _embed_image_urls(embed):
    if embed.get("type") in ("video", "gifv") or embed.get("video"):
        return
    for part in ("image", "thumbnail"):
        media = embed.get(part) or {}
        url = media.get("url") or media.get("proxy_url")
        if url and url.startswith(("http://", "https://")):
            yield url, media.get("content_type")


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
    """(source label, content holder) for the message and its forwards."""
    yield "", message
    for snapshot in message.get("message_snapshots") or []:
        inner = snapshot.get("message") or {}
        yield " (forwarded)", inner


def extract_images(message):
    """The image items of a message: attachments, embed images and
    thumbnails (not videos), image URLs in the text, and the same inside
    forwarded messages. A URL present twice is fetched once."""
    items: list[ImageItem] = []
    seen: set[str] = set()
    message_id, channel_id = str(message["id"]), str(message.get("channel_id", ""))
    posted = message_time(message)
    author = message.get("author") or {}
    holder: dict = message

    def add(key, url, original, source, content_type=None):
        unsigned = strip_signature(url)
        if key in seen or unsigned in seen:
            return
        seen.update((key, unsigned))
        original = naming.sanitize_original(with_image_extension(original, content_type, url))
        items.append(ImageItem(key, message_id, channel_id, posted, url, original, source, len(items),
                               str(author.get("username") or ""), str(author.get("id") or ""),
                               str(holder.get("content") or "")))

    for label, holder in _sources(message):
        for attachment in holder.get("attachments") or []:
            if is_image_attachment(attachment) and attachment.get("url"):
                add(item_key(message_id, attachment_id=attachment["id"]), attachment["url"],
                    attachment.get("filename") or url_filename(attachment["url"]), "attachment" + label,
                    attachment.get("content_type"))
        for embed in holder.get("embeds") or []:
            for url, content_type in _embed_image_urls(embed):
                add(item_key(message_id, url=url), url, url_filename(url), "embed" + label, content_type)
        for url in text_image_urls(holder.get("content")):
            add(item_key(message_id, url=url), url, url_filename(url), "text" + label)
    return items

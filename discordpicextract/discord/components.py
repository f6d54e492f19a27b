"""Media inside message components (Components V2), pure.

A message flagged IS_COMPONENTS_V2 carries its images in `components`, and
Discord then leaves `attachments` empty for the uploads that components
reference (api-docs #8277). The media sits in "unfurled media items":
media gallery (type 12) `items[].media`, thumbnail (11) `media` (a section's
accessory), file (13) `file`; sections (9) and containers (17) nest others.
The walk does not gate on the flag: a message may carry components anyway.
"""
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

IS_COMPONENTS_V2 = 1 << 15
SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, CONTAINER = 9, 10, 11, 12, 13, 17
# an action row (1) holds buttons and selects only: nothing to walk
MAX_DEPTH = 8


@dataclass(frozen=True)
class ComponentMedia:
    """One unfurled media item found in a component tree."""

    url: str                       # a fetchable http(s) URL
    attachment_id: Optional[str]   # set for uploads: the same key as an attachment
    content_type: Optional[str]
    name: str                      # the file component's name, else ""
    kind: int                      # the component type that held it


def _fetchable(media) -> Optional[str]:
    """The media's http(s) URL: an upload may show `attachment://name` as
    its url and the CDN link as its proxy_url."""
    for key in ("url", "proxy_url"):
        url = media.get(key) or ""
        if url.startswith(("https://", "http://")):
            return url
    return None


def _media_of(component) -> Iterator[tuple[dict, str]]:
    kind = component.get("type")
    if kind == MEDIA_GALLERY:
        for item in component.get("items") or []:
            if isinstance(item, dict):
                yield item.get("media") or {}, ""
    elif kind == THUMBNAIL:
        yield component.get("media") or {}, ""
    elif kind == FILE:
        yield component.get("file") or {}, str(component.get("name") or "")


def _children(component) -> list:
    children = list(component.get("components") or [])
    accessory = component.get("accessory")
    if isinstance(accessory, dict):
        children.append(accessory)
    return children


def _walk(components) -> Iterator[dict]:
    """Every component of a tree, depth first, in order (MAX_DEPTH levels)."""
    stack = [(c, 0) for c in reversed(components or []) if isinstance(c, dict)]
    while stack:
        component, depth = stack.pop()
        yield component
        if depth < MAX_DEPTH:
            stack.extend((c, depth + 1) for c in reversed(_children(component)) if isinstance(c, dict))


def component_text(components) -> str:
    """The text of a component tree's text displays (type 10), one per line:
    a Components V2 message has no `content`, its caption is there."""
    return "\n".join(str(c.get("content") or "") for c in _walk(components)
                     if c.get("type") == TEXT_DISPLAY and c.get("content"))


def component_media(components) -> Iterator[ComponentMedia]:
    """Every media item of a component tree, depth first, in order."""
    for component in _walk(components):
        for media, name in _media_of(component):
            url = _fetchable(media) if isinstance(media, dict) else None
            if url:
                attachment_id = media.get("attachment_id")
                yield ComponentMedia(url, str(attachment_id) if attachment_id else None,
                                     media.get("content_type"), name, int(component.get("type") or 0))

"""Components V2 trees for `DiscordEmulator.add_message(components=...)`, in
the shapes Discord sends (and the OpenAPI spec's *ComponentResponse): uploads
are given as attachment tuples (filename, bytes, content_type); the emulator
stores them and renders each as an unfurled media item with its
`attachment_id` and a signed link.

    emu.add_message(cid, when, components=[container(
        text("SPX levels"), gallery(("a.png", png, "image/png"), ("b.png", png2, "image/png")),
        section("close", thumbnail=("t.png", png3, "image/png")),
        file(("notes.txt", b"...", "text/plain")))])
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

_ids = itertools.count(1)


def map_leaves(tree: Any, convert: Callable[[Any], Any]) -> Any:
    """`tree` (JSON-like dicts and lists) with every other value passed
    through `convert`: how the store keeps uploads and how they are rendered."""
    if isinstance(tree, dict):
        return {k: map_leaves(v, convert) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_leaves(v, convert) for v in tree]
    return convert(tree)


def _id() -> int:
    return next(_ids)


def text(content: str) -> dict:
    return {"type": 10, "id": _id(), "content": content}


def gallery(*uploads: tuple, descriptions: Any = None) -> dict:
    """A media gallery (type 12) of 1-10 items."""
    if not 1 <= len(uploads) <= 10:
        raise ValueError("a media gallery holds 1 to 10 items")
    return {"type": 12, "id": _id(), "items": [
        {"media": upload, "description": None, "spoiler": False} for upload in uploads]}


def thumbnail(upload: tuple) -> dict:
    return {"type": 11, "id": _id(), "media": upload, "description": None, "spoiler": False}


def section(content: str, thumbnail_upload: tuple) -> dict:
    """A section (type 9): text with a thumbnail (11) as its accessory."""
    return {"type": 9, "id": _id(), "components": [text(content)], "accessory": thumbnail(thumbnail_upload)}


def file(upload: tuple) -> dict:
    """A file (type 13): any upload, not necessarily an image."""
    return {"type": 13, "id": _id(), "file": upload, "name": upload[0], "size": len(upload[1]),
            "spoiler": False}


def container(*children: dict) -> dict:
    """A container (type 17) nesting the others."""
    return {"type": 17, "id": _id(), "accent_color": None, "components": list(children), "spoiler": False}

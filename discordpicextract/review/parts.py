"""Day sections of the review page kept between runs: a nightly re-run
renders only the days whose facts changed (a new image, a new pick, a
changed flag) and takes every other day's HTML from here.

A part is `parts/<key>.html`, the key the digest of everything its day
shows (render.day_key). Its first line holds the digest of the rest, so a
part damaged on disk is never pasted into the page: it is rendered again.
Parts no day uses any more are removed at the end of the run.
"""
import hashlib
import os
import re
from pathlib import Path
from typing import Optional

from discordpicextract.review.folder import write_atomic

PART_DIR = "parts"
_HEAD = re.compile(r"<!-- ([0-9a-f]{32}) -->\n")
_PART_NAME = re.compile(r"[0-9a-f]{32}\.html")


def _digest(html: str) -> str:
    return hashlib.blake2b(html.encode("utf-8"), digest_size=16).hexdigest()


class Parts:
    """render.DayParts over a review folder's parts/."""

    def __init__(self, review_dir: Path):
        self.folder = Path(review_dir) / PART_DIR
        self.folder.mkdir(exist_ok=True)
        self.present = {entry.name for entry in os.scandir(self.folder)}
        self.used: set[str] = set()
        self.reused = self.made = 0

    def get(self, key: str) -> Optional[str]:
        name = f"{key}.html"
        if name not in self.present:
            return None
        try:
            text = (self.folder / name).read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            return None
        head = _HEAD.match(text)
        if head is None or _digest(text[head.end():]) != head.group(1):
            return None  # damaged: made again (and rewritten by put)
        html = text[head.end():]
        self.used.add(name)
        self.reused += 1
        return html

    def put(self, key: str, html: str) -> None:
        name = f"{key}.html"
        data = f"<!-- {_digest(html)} -->\n{html}".encode()
        write_atomic(self.folder / name, data)
        self.used.add(name)
        self.made += 1

    def prune(self) -> None:
        """Remove the parts of ours no day of this run used."""
        for name in self.present - self.used:
            if _PART_NAME.fullmatch(name):
                (self.folder / name).unlink(missing_ok=True)

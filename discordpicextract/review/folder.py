"""The review folder: the only place the review writes.

A folder is taken only when it is new, empty, or an earlier review (it
holds our record, RECORD_FILE); anything else is refused, so the review can
never write among a user's files. The record is written first, so a run
that stops half-way still leaves a folder a re-run accepts.
"""
import json
import os
from pathlib import Path

from discordpicextract import __version__, fileops
from discordpicextract.errors import UsageError

RECORD_FILE = ".discordpicextract-review.json"
PAGE_FILE = "index.html"
TOOL = "discordpicextract review_archive"


def open_review_dir(path) -> dict:
    """Create or accept `path` as the review folder; its record's sources
    (see thumbs.fetch_thumbs), empty for a new folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output is not a folder: {folder}")
    if folder.is_dir():
        try:
            names = os.listdir(folder)
        except OSError as exc:
            raise UsageError(f"cannot read --output folder {folder}: {exc.strerror or exc}") from None
        if names and RECORD_FILE not in names:
            raise UsageError(f"--output folder {folder} holds files the review did not write; "
                             f"choose a new or empty folder (or an earlier review's)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --output folder {folder}: {exc.strerror or exc}") from None
    sources = _read_sources(folder)
    if not (folder / RECORD_FILE).exists():
        save_record(folder, sources)
    return sources


def _read_sources(folder: Path) -> dict:
    try:
        data = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged record only costs a re-read of every source
    sources = data.get("sources") if isinstance(data, dict) else None
    return sources if isinstance(sources, dict) else {}


def save_record(folder, sources: dict) -> None:
    data = {"tool": TOOL, "version": __version__, "sources": sources}
    write_atomic(Path(folder) / RECORD_FILE, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace one of our own files through a temp file beside it."""
    temp = fileops.temp_path_beside(path)
    try:
        temp.write_bytes(data)
        os.chmod(temp, fileops.new_file_mode())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

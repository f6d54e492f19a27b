"""Thumbnails for the review page: made in parallel, cached by content.

A thumbnail is `thumbs/<blake2b of the source's bytes>.webp` (JPEG where
Pillow has no WebP), THUMB_WIDTH pixels wide at most: the same picture in
three folders, or under a new name after a rename, is made once. The
review folder's record (see folder.py) remembers, per source path, its size,
file stamp, digest and thumbnail size, so a re-run reads only files that
are new or changed.
"""
import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from discordpicextract.images.cache import file_stamp

log = logging.getLogger(__name__)  # -v: each thumbnail made, or taken from one of the same content

THUMB_WIDTH = 240
# Tall screenshots are cut down to this height, not shown a metre long.
THUMB_MAX_HEIGHT = 480
THUMB_DIR = "thumbs"
PARALLEL_MIN_THUMBS = 16


def thumb_format() -> tuple[str, str]:
    from PIL import features

    return ("WEBP", ".webp") if features.check("webp") else ("JPEG", ".jpg")


@dataclass(frozen=True)
class Thumb:
    file: str            # relative to the review folder, "/"-separated
    width: int
    height: int


@dataclass(frozen=True)
class ThumbResult:
    digest: Optional[str]
    width: int = 0
    height: int = 0
    error: Optional[str] = None
    made: bool = False


@dataclass
class ThumbStats:
    made: int = 0        # decoded and written this run
    reused: int = 0      # read, but a thumbnail of the same content existed
    cached: int = 0      # answered by the record without reading the file
    failed: int = 0
    sheets: int = 0      # contact sheets made (see sheets.py)
    days_made: int = 0   # day sections rendered (see parts.py)
    days_reused: int = 0  # day sections taken from an earlier run


def make_thumb(job) -> ThumbResult:
    """(source path, thumbs folder): the thumbnail of the source's content,
    written through a temp file unless it is already there. Runs in a
    worker process."""
    from PIL import Image, UnidentifiedImageError

    source, folder = job
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        return ThumbResult(None, error=f"cannot read: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    fmt, ext = thumb_format()
    target = Path(folder) / f"{digest}{ext}"
    done = _read_thumb(target)
    if done is not None:
        return ThumbResult(digest, *done)
    try:
        with Image.open(io.BytesIO(data)) as image:
            # A JPEG decodes at a fraction of its size, still at least the thumbnail's.
            image.draft("RGB", (THUMB_WIDTH, max(1, image.height * THUMB_WIDTH // max(1, image.width))))
            small = image.convert("RGBA" if fmt == "WEBP" and _has_alpha(image) else "RGB")
            small.thumbnail((THUMB_WIDTH, THUMB_MAX_HEIGHT), reducing_gap=2.0)
        _save_atomic(small, target, fmt)
        return ThumbResult(digest, small.width, small.height, made=True)
    except UnidentifiedImageError:  # its message names a BytesIO object, not the file
        return ThumbResult(digest, error="cannot decode: not an image format Pillow reads")
    except Exception as exc:  # Pillow raises many kinds for bad files
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        return ThumbResult(digest, error=f"cannot decode: {text}")


def _read_thumb(target: Path) -> Optional[tuple[int, int]]:
    """The size of a thumbnail already made; None when there is none or it
    is damaged (made again: a thumbnail is never the source's fault)."""
    from PIL import Image

    try:
        with Image.open(target) as done:
            done.load()
            return done.width, done.height
    except FileNotFoundError:
        return None
    except Exception:  # Pillow raises many kinds for a damaged file
        target.unlink(missing_ok=True)
        return None


def drop_thumbs(review_dir: Path, files) -> None:
    """Remove damaged thumbnails of ours (`files` relative to the review
    folder), so that the next fetch_thumbs makes them again."""
    for file in files:
        (Path(review_dir) / file).unlink(missing_ok=True)


def _has_alpha(image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _save_atomic(image, target: Path, fmt: str) -> None:
    temp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        options = {"quality": 80, "method": 2} if fmt == "WEBP" else {"quality": 85}
        image.save(temp, fmt, **options)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fetch_thumbs(paths: dict[str, str], review_dir: Path, record: dict, pool) \
        -> tuple[dict[str, Thumb], dict[str, str], ThumbStats, dict]:
    """Thumbnails for `paths` (name -> source). Returns name -> Thumb,
    name -> error for sources that could not be read or decoded, and the
    counts, and the new record: source path -> [size, stamp, digest,
    width, height] for these sources only (`record` is the old one)."""
    folder = review_dir / THUMB_DIR
    folder.mkdir(exist_ok=True)
    _, ext = thumb_format()
    present = {entry.name for entry in os.scandir(folder)}
    thumbs, errors, stats, fresh = {}, {}, ThumbStats(), {}
    todo: list[tuple] = []
    real = RealPaths()
    for name, path in paths.items():
        try:
            stat = os.stat(path)
        except OSError as exc:
            errors[name] = f"cannot read: {exc.strerror or exc}"
            continue
        key, stamp = real(path), file_stamp(stat)
        row = record.get(key)
        if row and row[:2] == [stat.st_size, stamp] and f"{row[2]}{ext}" in present:
            thumbs[name] = Thumb(f"{THUMB_DIR}/{row[2]}{ext}", row[3], row[4])
            fresh[key] = row
            stats.cached += 1
        else:
            todo.append((name, path, key, stat.st_size, stamp))
    results = pool.map(make_thumb, [(str(item[1]), str(folder)) for item in todo], PARALLEL_MIN_THUMBS)
    for (name, _path, key, size, stamp), result in zip(todo, results):
        if result.error or result.digest is None:
            errors[name] = result.error or "cannot read"
            stats.failed += 1
            continue
        fresh[key] = [size, stamp, result.digest, result.width, result.height]
        thumbs[name] = Thumb(f"{THUMB_DIR}/{result.digest}{ext}", result.width, result.height)
        if result.made:
            stats.made += 1
            log.debug("thumbnail made for %s", name)
        else:
            stats.reused += 1
            log.debug("thumbnail for %s: one of the same content reused", name)
    return thumbs, errors, stats, fresh


class RealPaths:
    """A file's path with its folder resolved (symbolic links, `..`), the
    folder once per listing, not once per file: realpath costs a system
    call per path component. A file that is itself a link keeps its own
    name (its stamp is the target's: os.stat follows it), which is all a
    record key needs to tell files apart."""

    def __init__(self):
        self._folders: dict[str, str] = {}

    def __call__(self, path) -> str:
        folder, name = os.path.split(os.fspath(path))
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder or os.curdir)
        return os.path.join(real, name)


def prune_thumbs(review_dir: Path, keep: set) -> int:
    """Remove thumbnails of ours that no image uses any more (a deleted or
    replaced source); `keep` holds the used files' names."""
    folder = review_dir / THUMB_DIR
    removed = 0
    for entry in os.scandir(folder):
        if entry.name not in keep and _is_thumb_name(entry.name) and entry.is_file():
            os.unlink(entry.path)
            removed += 1
    return removed


def _is_thumb_name(name: str) -> bool:
    stem, ext = os.path.splitext(name)
    return ext in (".webp", ".jpg") and len(stem) == 32 and all(c in "0123456789abcdef" for c in stem)

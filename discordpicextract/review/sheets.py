"""Contact sheets: each day's thumbnails pasted into one image.

A browser pays per image file (a file load, a decode), and a desktop
browser's lazy loading is not there everywhere (headless Chromium loads
every image at once): 4,000 thumbnails as 4,000 files make a page that
takes seconds to load, a sheet per day makes it a couple of hundred files.
Each tile on the page is the sheet cropped to its place (`object-fit: none`,
`object-position`).

A sheet is named after what it holds (its thumbnails, in order, and the
layout), so a re-run reuses every sheet of an unchanged day and makes the
others again from the cached thumbnails, never from the sources.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from discordpicextract.review.thumbs import THUMB_WIDTH, thumb_format

SHEET_DIR = "sheets"
SHEET_COLUMNS = 8
# Sheets stay small enough to decode cheaply (and far below WebP's 16,383 px).
SHEET_TILES = 48
LAYOUT = "v1"
PARALLEL_MIN_SHEETS = 4


@dataclass(frozen=True)
class Place:
    """Where a thumbnail sits: its sheet and its offset in it."""

    file: str            # the sheet, relative to the review folder
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class SheetPlan:
    file: str            # relative to the review folder
    width: int
    height: int
    tiles: tuple         # ((thumb file, x, y), ...)


def plan_sheets(groups, ext: str):
    """Pure. `groups`: one list of Thumbs per day, in page order. Returns
    the SheetPlans and thumb file -> Place (per day: a thumbnail shown on
    two days sits on both days' sheets)."""
    plans, places = [], []
    for thumbs in groups:
        unique = list(dict.fromkeys(thumbs))
        day_places = {}
        for start in range(0, len(unique), SHEET_TILES):
            plan = _layout(unique[start:start + SHEET_TILES], ext)
            plans.append(plan)
            for (file, x, y), thumb in zip(plan.tiles, unique[start:start + SHEET_TILES]):
                day_places[file] = Place(plan.file, x, y, thumb.width, thumb.height)
        places.append(day_places)
    return plans, places


def _layout(thumbs, ext) -> SheetPlan:
    tiles, y = [], 0
    for row in range(0, len(thumbs), SHEET_COLUMNS):
        cells = thumbs[row:row + SHEET_COLUMNS]
        tiles += [(thumb.file, column * THUMB_WIDTH, y) for column, thumb in enumerate(cells)]
        y += max(thumb.height for thumb in cells)
    key = hashlib.blake2b(repr((LAYOUT, tiles)).encode("utf-8"), digest_size=16).hexdigest()
    width = THUMB_WIDTH * min(SHEET_COLUMNS, len(thumbs))
    return SheetPlan(f"{SHEET_DIR}/{key}{ext}", width, max(1, y), tuple(tiles))


def make_sheet(job) -> tuple:
    """(review folder, SheetPlan): paste the thumbnails, write through a
    temp file. Returns the thumbnails that could not be read (damaged on
    disk; then no sheet is written). Runs in a worker process."""
    from PIL import Image

    review_dir, plan = job
    fmt, _ = thumb_format()
    target = Path(review_dir) / plan.file
    sheet = Image.new("RGB", (plan.width, plan.height), "white")
    damaged = []
    for file, x, y in plan.tiles:
        try:
            with Image.open(Path(review_dir) / file) as thumb:
                sheet.paste(thumb.convert("RGBA"), (x, y), thumb.convert("RGBA"))
        except Exception:  # Pillow raises many kinds for a damaged file
            damaged.append(file)
    if damaged:
        return tuple(damaged)
    temp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        sheet.save(temp, fmt, **({"quality": 80, "method": 2} if fmt == "WEBP" else {"quality": 85}))
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ()


def fetch_sheets(review_dir: Path, groups, pool) -> "tuple[list[dict], int, set]":
    """Make the sheets `groups` need that are not there yet; prune the
    ones of ours no day uses. Returns per day thumb file -> Place, how
    many sheets were made, and the thumbnails found damaged."""
    folder = review_dir / SHEET_DIR
    folder.mkdir(exist_ok=True)
    _, ext = thumb_format()
    plans, places = plan_sheets(groups, ext)
    present = {entry.name for entry in os.scandir(folder)}
    todo = {plan.file: plan for plan in plans if Path(plan.file).name not in present}
    results = pool.map(make_sheet, [(str(review_dir), plan) for plan in todo.values()], PARALLEL_MIN_SHEETS)
    damaged = {file for result in results for file in result}
    used = {Path(plan.file).name for plan in plans}
    for name in present - used:
        if _is_sheet_name(name):
            os.unlink(folder / name)
    return places, len(todo) - sum(1 for result in results if result), damaged


def _is_sheet_name(name: str) -> bool:
    stem, ext = os.path.splitext(name)
    return ext in (".webp", ".jpg") and len(stem) == 32 and all(c in "0123456789abcdef" for c in stem)

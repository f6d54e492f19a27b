"""Build the review page: list the folders, plan the model, find the pairs,
make the thumbnails, write the page. Returns what happened; the script
prints it."""
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from discordpicextract import naming
from discordpicextract.errors import RunError, UsageError
from discordpicextract.images.cache import HashCache
from discordpicextract.images.workers import WorkerDied, Workers
from discordpicextract.review import folder as review_folder
from discordpicextract.review import model, pairs, parts, render, sheets, thumbs
from discordpicextract.timestamps import truth
from discordpicextract.timestamps import zone as names_zone
from discordpicextract.timestamps.convert import to_wall


@dataclass
class ReviewRun:
    page: Path
    model: model.ReviewModel
    thumbs: thumbs.ThumbStats
    hashes: pairs.HashStats
    errors: dict[str, str]                    # name -> why it has no thumbnail
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall time
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        skipped = any(f.skipped for f in self.model.folders)
        return bool(self.errors or self.model.unmatched or skipped)


def fetch_folders(paths: Mapping[str, Path]) -> list[model.FolderInput]:
    """role -> folder as listed FolderInputs, in ROLES order."""
    inputs = []
    for role in model.ROLES:
        if role in paths:
            try:
                listing = naming.list_images(paths[role])
            except OSError as exc:
                raise UsageError(f"cannot read folder {paths[role]}: {exc.strerror or exc}") from None
            inputs.append(model.FolderInput(role, Path(paths[role]), listing, names_zone.folder_zone(paths[role])))
    return inputs


def fetch_post_times(folders: list[model.FolderInput]) -> Optional[dict[str, datetime]]:
    """name -> post time (naive, in the names' zone) from the download
    folder's archive: by name for its own files, by content for names only
    the other folders hold. None when there is no archive to ask."""
    download = next((f for f in folders if f.role == model.DOWNLOAD), None)
    rows = truth.own_archive_rows(download.path) if download else []
    if download is None or not rows:
        return None
    zone = names_zone.folder_zone(download.path)
    found = truth.match_messages(download.listing.images, rows, [], zone).known
    mine = {image.name for image in download.listing.images}
    others = {image.name: image for f in folders if f.role != model.DOWNLOAD for image in f.listing.images
              if image.name not in mine}
    if others:
        found.update(truth.match_messages(list(others.values()), [], rows, zone).known)
    return {name: to_wall(known.posted, zone) for name, known in found.items()}


def build_review(paths: Mapping[str, Path], output, *, workers=1, dedupe_report=None,
                 post_times: Optional[Mapping[str, datetime]] = None) -> ReviewRun:
    """`post_times` (name -> naive post time) defaults to what the download
    folder's archive knows (fetch_post_times)."""
    clock = _Clock()
    review_dir = Path(output)
    _refuse_image_folder(paths, review_dir)
    record = review_folder.open_review_dir(review_dir)
    folders = fetch_folders(paths)
    if post_times is None:
        post_times = fetch_post_times(folders)
    entries = model.plan_entries(folders, post_times)
    clock.lap("list")
    cache = HashCache(review_dir)
    try:
        with Workers(workers) as pool:
            found, hashes = _fetch_pairs(folders, entries, cache, review_dir, pool, dedupe_report)
            clock.lap("pairs")
            page = model.plan_review(folders, entries, found, verified=post_times is not None)
            made, errors, stats, day_places = _fetch_pictures(page, review_dir, record, pool, clock)
    except WorkerDied as exc:
        raise RunError(f"{exc}; no page written") from None
    warnings = [w for w in (cache.warning, cache.save()) if w]
    places = {day.date: found_places for day, found_places in zip(page.days, day_places)}
    kept = parts.Parts(review_dir)
    html = render.render_page(page, made, errors, review_dir, datetime.now(), places, kept)
    target = review_dir / review_folder.PAGE_FILE
    review_folder.write_atomic(target, html.encode("utf-8"))
    kept.prune()  # only now: a run stopped before the page is written keeps what the old page shows
    stats.days_made, stats.days_reused = kept.made, kept.reused
    clock.lap("page")
    return ReviewRun(target, page, stats, hashes, errors, clock.laps, warnings)


def _fetch_pictures(page, review_dir, record, pool, clock):
    """Thumbnails, then the days' contact sheets. A thumbnail found damaged
    on disk while a sheet is pasted (ours are written atomically: damaged
    by something else) is dropped and made again from its source, once."""
    sources = {e.name: e.path for e in page.entries}
    total = thumbs.ThumbStats()
    for _attempt in range(2):
        made, errors, stats, fresh = thumbs.fetch_thumbs(sources, review_dir, record, pool)
        if fresh != record:  # a re-run with nothing new does not write 20,000 rows again
            review_folder.save_record(review_dir, fresh)
        record = fresh
        thumbs.prune_thumbs(review_dir, {t.file.rpartition("/")[2] for t in made.values()})
        clock.lap("thumbnails")
        groups = [[made[e.name] for e in day.entries if e.name in made] for day in page.days]
        day_places, sheets_made, damaged = sheets.fetch_sheets(review_dir, groups, pool)
        clock.lap("sheets")
        total.made, total.sheets = total.made + stats.made, total.sheets + sheets_made
        if not damaged:
            break
        thumbs.drop_thumbs(review_dir, damaged)
    else:
        raise RunError(f"thumbnails in {review_dir / thumbs.THUMB_DIR} cannot be read even when made again "
                       f"({sorted(damaged)[0]}); no page written")
    stats.made, stats.sheets = total.made, total.sheets
    return made, errors, stats, day_places


def _fetch_pairs(folders, entries, cache, review_dir, pool, dedupe_report):
    if dedupe_report:
        return pairs.read_dedupe_report(dedupe_report), pairs.HashStats()
    if not any(e.removed for e in entries):
        return {}, pairs.HashStats()
    clean = next(f.path for f in folders if f.role == model.CLEAN)
    # dedupe's own cache, in the clean folder: read only, never written.
    dedupe_cache = HashCache(clean, readonly=True)
    return pairs.fetch_pairs(model.pair_candidates(entries), cache, dedupe_cache, pool)


def _refuse_image_folder(paths, review_dir: Path):
    target = review_dir.resolve()
    for role, path in paths.items():
        if Path(path).resolve() == target:
            raise UsageError(f"--output must not be the {role} folder: {path}")


class _Clock:
    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name):
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now

"""Which kept image each removed duplicate duplicates.

From dedupe's own `--report` file when one is given (exactly what dedupe
decided), else recomputed with dedupe's pHash code: the kept candidate of
the same date (see model.pair_candidates) nearest in pHash, same size
first, earliest first. pHashes come from the review's cache, then from the
clean folder's dedupe cache (read only), and only then are decoded.
"""
import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from discordpicextract.errors import UsageError
from discordpicextract.images import cache as hash_cache
from discordpicextract.images import phash
from discordpicextract.images.integrity import FileCheck
from discordpicextract.images.workers import PARALLEL_MIN_DECODES
from discordpicextract.review.model import Candidates, Entry, Pair
from discordpicextract.review.thumbs import RealPaths

# A nearest kept image further than this many pHash bits is not called a
# duplicate: the removed image is shown unmatched, for a look.
MAX_PAIR_DISTANCE = 10


@dataclass
class HashStats:
    decoded: int = 0
    cached: int = 0


@dataclass
class _Known:
    """What the caches (or a decode) say about one file."""

    path: str           # a hint for the cache: the file's real path
    size: int
    identity: tuple     # the cache key: images.cache.file_identity
    digest: Optional[str] = None
    phash: Optional[str] = None


def read_dedupe_report(path) -> dict[str, Pair]:
    """removed name -> Pair from deduplicate_images.py --report (.csv/.json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            rows = [(group["kept"], item["name"], item["difference_seconds"], item["match"])
                    for group in json.loads(text)["groups"] for item in group["removed"]]
        else:
            rows = [(row["kept"], row["removed"], row["difference_seconds"], row["match"])
                    for row in csv.DictReader(text.splitlines())]
        return {removed: Pair(kept, float(seconds), _distance(match)) for kept, removed, seconds, match in rows}
    except OSError as exc:
        raise UsageError(f"cannot read --dedupe-report {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--dedupe-report {path} is not a deduplicate_images.py report: {exc}") from None


def _distance(match: str) -> Optional[int]:
    if match == "identical bytes":
        return 0
    if match.startswith("phash distance "):
        return int(match.rsplit(" ", 1)[1])
    raise ValueError(f"unknown match {match!r}")


def fetch_pairs(candidates: Candidates, cache, dedupe_cache, pool) -> "tuple[dict[str, Pair], HashStats]":
    """removed name -> Pair, recomputed. A kept image with the same bytes
    (digests from the caches) pairs without a decode; the rest by pHash.
    `cache` (a HashCache in the review folder) is read and filled;
    `dedupe_cache` only read."""
    removed = candidates.removed
    everyone = dict(removed)
    everyone.update((e.name, e) for e in candidates.kept())
    sizes = {name: size for name, entry in everyone.items() if (size := _size(entry.path)) is not None}
    # Same bytes means same size: the caches are asked only about the kept
    # images of a removed image's date and size, until pHashes are needed.
    alike = {(entry.date, sizes[name]) for name, entry in removed.items() if name in sizes}
    real = RealPaths()
    known: dict[str, _Known] = {}
    _fill_facts(known, [(name, entry) for name, entry in everyone.items()
                        if name in sizes and (name in removed or (entry.date, sizes[name]) in alike)],
                cache, dedupe_cache, real)
    pairs = _identical_pairs(candidates, known)
    rest = [name for name in removed if name not in pairs]
    todo = {name: removed[name] for name in rest}
    for name in rest:
        todo.update((e.name, e) for e in candidates[name])
    _fill_facts(known, [(name, entry) for name, entry in todo.items() if name in sizes], cache, dedupe_cache, real)
    stats = _fill_phashes([(todo[name], known[name]) for name in todo if name in known], cache, pool)
    for name in rest:
        pair = choose_pair(removed[name], candidates[name], known)
        if pair is not None:
            pairs[name] = pair
    stats.cached = len(known) - stats.decoded
    return pairs, stats


def _size(path) -> Optional[int]:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _fill_facts(known: dict, items, cache, dedupe_cache, real: RealPaths) -> None:
    for name, entry in items:
        if name not in known and (facts := _cached_facts(entry, cache, dedupe_cache, real)) is not None:
            known[name] = facts


def _identical_pairs(candidates: Candidates, known: dict[str, _Known]) -> dict[str, Pair]:
    """Removed images whose bytes a kept image of their date has: the
    earliest such kept image is dedupe's pick (one look-up each)."""
    first: dict = {}
    for candidate in candidates.kept():  # in time order
        facts = known.get(candidate.name)
        if facts is not None and facts.digest:
            first.setdefault((candidate.date, facts.digest, facts.size), candidate)
    pairs = {}
    for name, entry in candidates.removed.items():
        facts = known.get(name)
        kept = first.get((entry.date, facts.digest, facts.size)) if facts and facts.digest else None
        if kept is not None and (kept.timestamp, kept.name) <= (entry.timestamp, entry.name):
            pairs[name] = Pair(kept.name, (entry.timestamp - kept.timestamp).total_seconds(), 0)
    return pairs


def choose_pair(entry: Entry, kept: list[Entry], known: dict[str, _Known]) -> Optional[Pair]:
    """The nearest kept image in pHash (same size first, then earliest)."""
    mine = known.get(entry.name)
    if mine is None or mine.phash is None:
        return None
    best, best_key = None, None
    for candidate in kept:
        theirs = known.get(candidate.name)
        if theirs is None or theirs.phash is None:
            continue
        distance = phash.hamming(mine.phash, theirs.phash)
        key = (distance, theirs.size != mine.size, candidate.timestamp, candidate.name)
        if best_key is None or key < best_key:
            best, best_key = candidate, key
    if best is None or best_key is None or best_key[0] > MAX_PAIR_DISTANCE:
        return None
    return Pair(best.name, (entry.timestamp - best.timestamp).total_seconds(), best_key[0])


def _cached_facts(entry: Entry, cache, dedupe_cache, real: RealPaths) -> Optional[_Known]:
    try:
        stat = os.stat(entry.path)
    except OSError:
        return None
    facts = _Known(real(entry.path), stat.st_size, hash_cache.file_identity(stat))
    for source in (cache, dedupe_cache):
        check = source.get_check(facts.identity)
        facts.digest = facts.digest or (check.digest if check else None)
        facts.phash = facts.phash or source.get_phash(facts.identity)
    return facts


def _fill_phashes(items, cache, pool) -> HashStats:
    """Decode the files whose pHash no cache knows; remember them."""
    todo = [(entry, facts) for entry, facts in items if facts.phash is None]
    results = pool.map(phash.compute_phash, [str(entry.path) for entry, _ in todo],
                          PARALLEL_MIN_DECODES)
    for (_, facts), result in zip(todo, results):
        facts.phash = result.phash
        if result.phash:
            cache.put(facts.identity, facts.path, FileCheck(facts.digest, None), result.phash)
    return HashStats(decoded=len(todo))

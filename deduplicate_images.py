"""Step 2 of the pipeline: copy a folder's images without their duplicates.

Two images are duplicates when they carry the same date in their names, the
same perceptual hash (imagehash pHash) and the same file size. In each group
the earliest timestamp is kept (ties: name order); the others are not copied.

    python deduplicate_images.py --source spx-realtime-aws --output spx-realtime-aws-clean

Fast path, same answer as hashing every file: only files sharing date and
size can be duplicates, so a file alone in its (date, size) bucket needs no
hash at all; byte-identical files (equal blake2b digest) have equal pHash, so
a bucket of identical copies needs no decode either; what is left is decoded
in parallel processes. Every file is still read once for a cheap integrity
check (PNG: chunk CRCs; formats without checksums are decoded, a JPEG at
1/8 scale), so a damaged copy is never collapsed unseen. One crafted case
differs: a PNG whose CRCs are right over bad compressed data is only found
by --no-fast-path. Results are cached in the output folder (see
discordpicextract/images/cache.py).

`--max-distance N` / `--ignore-size`: an image joins the group of the
earliest already-kept image of its bucket whose pHash is within N bits
(bytes-identical counts as distance 0); if there is none it is kept and
starts a new group. Processing in (timestamp, name) order makes this
deterministic, and with N = 0 it is exactly "equal pHash".
"""
import argparse
import bisect
import csv
import functools
import io
import json
import operator
import os
import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Optional

import config
from discordpicextract import cli, fileops, locking, logs, messages, naming
from discordpicextract import records as derived
from discordpicextract.errors import RunError
from discordpicextract.images.cache import HashCache, NoCache
from discordpicextract.images.integrity import FileCheck, check_file
from discordpicextract.images.phash import compute_phash, hamming
from discordpicextract.images.workers import PARALLEL_MIN_CHECKS, PARALLEL_MIN_DECODES, WorkerDied, Workers
from discordpicextract.records import PARALLEL_MIN_COPIES
from discordpicextract.timestamps import zone as names_zone

PERCENTILES = (25, 75, 90, 95)


# ---------------------------------------------------------------- records
class ImageRecord(naming.ImageFile):
    """One source image (its listing's folder, name and timestamp) and what
    is known about its content. Slotted, the stat's numbers kept flat: a
    run holds one per file of the folder."""

    __slots__ = ("dev", "digest", "error", "ino", "learnt", "mtime_ns", "phash", "size")

    def __init__(self, folder, name: str, timestamp: datetime, stat=None, dev: int = 0):
        self.folder, self.name, self.timestamp = folder, name, timestamp
        # size -1: could not be stat-ed (gone since the listing)
        self.size: int = stat.st_size if stat else -1
        self.mtime_ns: int = stat.st_mtime_ns if stat else 0
        self.ino: int = stat.st_ino if stat else 0
        self.dev = dev
        self.digest: Optional[str] = None
        self.error: Optional[str] = None     # not None: unreadable or corrupt
        self.phash: Optional[str] = None     # hex; only computed when it can matter
        self.learnt = False                  # found this run: the cache gets its row

    @property
    def key(self) -> tuple:
        """records.file_key, () when it could not be stat-ed."""
        return (self.size, self.mtime_ns, self.ino) if self.size >= 0 else ()

    @property
    def identity(self) -> tuple:
        """images.cache.file_identity: the cache's key."""
        return (self.dev, self.ino, self.size, self.mtime_ns) if self.size >= 0 else ()

    @property
    def file(self) -> str:
        """The path, as a string (workers and copies open it)."""
        return os.path.join(self.folder, self.name)

    @property
    def ok(self):
        return self.error is None

    # identity, not name: records of two listings may share a name
    __eq__ = object.__eq__
    __hash__ = object.__hash__


def in_order(records) -> list:
    """`records` in (timestamp, name) order: two stable sorts, no key tuple
    per record (a listing is already in this order: linear)."""
    ordered = list(records)
    ordered.sort(key=_name_of)
    ordered.sort(key=_timestamp_of)
    return ordered


_name_of = operator.attrgetter("name")
_timestamp_of = operator.attrgetter("timestamp")


def days_of(ordered):
    """The records of each date, from records in timestamp order: a date's
    buckets are all the plan and the fast path hold at once. A date ends
    where the next midnight would sort (bisect, in C): no date made per
    record of 100,000, only per date."""
    ordered = ordered if isinstance(ordered, list) else list(ordered)
    stamps = list(map(_timestamp_of, ordered))
    start = 0
    while start < len(ordered):
        day = stamps[start].date()
        if day == date.max:
            end = len(ordered)
        else:
            end = bisect.bisect_left(stamps, datetime.combine(day + timedelta(days=1), dt_time()), start)
        yield ordered[start:end]
        start = end


# ------------------------------------------------------------------ plan
class Removed:
    """A duplicate that is not copied (slotted: a third of a folder can be these)."""

    __slots__ = ("match", "record", "seconds")

    def __init__(self, record: ImageRecord, seconds: float, match: str):
        self.record = record
        self.seconds = seconds   # removed timestamp minus kept timestamp
        self.match = match       # "identical bytes" or "phash distance N"


class DuplicateGroup:
    __slots__ = ("kept", "removed")

    def __init__(self, kept: ImageRecord, removed: Optional[list] = None):
        self.kept = kept
        self.removed: list = removed if removed is not None else []


@dataclass
class DedupePlan:
    keep: list        # ImageRecords to copy, in (timestamp, name) order
    groups: list      # DuplicateGroups with at least one removed image
    corrupt: list     # ImageRecords kept because they could not be checked

    @property
    def removed(self):
        return [item for group in self.groups for item in group.removed]

    def signature(self):
        """Names only: what two plans must share to be the same answer."""
        return ([r.name for r in self.keep],
                [(g.kept.name, [(x.record.name, x.seconds) for x in g.removed]) for g in self.groups],
                [r.name for r in self.corrupt])


def match_of(a, b, max_distance):
    """How `b` duplicates `a`, or None. Equal bytes imply equal pHash."""
    if a.digest is not None and a.digest == b.digest:
        return "identical bytes"
    if a.phash is None or b.phash is None:
        raise ValueError(f"no pHash to compare {a.name} and {b.name}")
    distance = hamming(a.phash, b.phash)
    return f"phash distance {distance}" if distance <= max_distance else None


def plan_dedupe(records, max_distance=0, ignore_size=False, ordered=False) -> DedupePlan:
    """Decide what to keep. Pure: reads only the records' fields.
    `ordered`: `records` is a list already in (timestamp, name) order (as
    fill_records gives them), not sorted again."""
    keep: list = []
    corrupt: list = []
    groups: list = []
    for day in days_of(records if ordered else in_order(records)):
        # bucket (size, or all of the date) -> its kept records, earliest first
        kept_by_bucket: dict = {}
        group_of: dict = {}   # kept record -> its DuplicateGroup, once it has a removed one
        for record in day:
            if record.error is not None:   # not .ok: a property call per record of 100,000
                corrupt.append(record)
                keep.append(record)
                continue
            bucket = None if ignore_size else record.size
            kept = kept_by_bucket.get(bucket)
            if kept is None:
                kept_by_bucket[bucket] = [record]
                keep.append(record)
                continue
            match_kept, match = _find_kept(kept, record, max_distance)
            if match_kept is None:
                kept.append(record)
                keep.append(record)
                continue
            group = group_of.get(match_kept)
            if group is None:
                group = group_of[match_kept] = DuplicateGroup(match_kept)
                groups.append(group)
            seconds = (record.timestamp - match_kept.timestamp).total_seconds()
            group.removed.append(Removed(record, seconds, match))
    groups.sort(key=lambda g: (g.kept.timestamp, g.kept.name))
    return DedupePlan(keep, groups, corrupt)


def _find_kept(kept, record, max_distance):
    # Kept records are added in timestamp order, so the first match is the
    # earliest kept image.
    for candidate in kept:
        match = match_of(candidate, record, max_distance)
        if match:
            return candidate, match
    return None, None


# ------------------------------------------------------------ statistics
@dataclass
class DiffStats:
    count: int
    mean: float
    median: float
    std: float        # population standard deviation (numpy.std default)
    minimum: float
    maximum: float
    percentiles: dict  # {25: value, ...}, linear interpolation


def percentile(sorted_values, p):
    """numpy's default ("linear") percentile of already sorted values."""
    rank = (len(sorted_values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def difference_stats(seconds) -> Optional[DiffStats]:
    values = sorted(seconds)
    if not values:
        return None
    return DiffStats(len(values), statistics.fmean(values), statistics.median(values),
                     statistics.pstdev(values), values[0], values[-1],
                     {p: percentile(values, p) for p in PERCENTILES})


def outliers(plan, threshold):
    """Removed images whose difference is above `threshold`, largest first."""
    pairs = [(item, group.kept) for group in plan.groups for item in group.removed
             if item.seconds > threshold]
    return sorted(pairs, key=lambda pair: (-pair[0].seconds, pair[0].record.name))


def format_seconds(seconds):
    if seconds >= 60:
        return f"{seconds / 60:.1f}m ({seconds:.1f}s)"
    return f"{seconds:.1f}s"


# ------------------------------------------------------------------ scan
@dataclass
class ScanStats:
    checked: int = 0   # files read for digest + integrity this run
    decoded: int = 0   # files decoded for pHash this run
    cached: int = 0    # files answered entirely by the cache


def fetch_records(images, cache, workers, fast=True, ignore_size=False):
    """ImageRecords for `images`, in (timestamp, name) order, with digest,
    integrity and the pHashes the plan needs (all of them when `fast` is
    False)."""
    return fill_records(_stat_all(images), cache, workers, fast, ignore_size)


def list_records(folder) -> naming.FolderListing:
    """naming.list_images_afresh of `folder`, as ImageRecords stat-ed as
    the listing makes them (no ImageFile first, no second pass)."""
    devices: dict = {}   # one int object per device, not one per file
    folder_of = os.path.join(str(folder), "")

    def make(base, name, timestamp):
        return _stat_record(folder_of + name, base, name, timestamp, devices)

    return naming.scan_images(folder, make)


def _stat_record(path, folder, name, timestamp, devices) -> ImageRecord:
    """The ImageRecord of one listed file, stat-ed; `devices` holds one int
    object per device, not one per file."""
    try:
        stat = os.stat(path)
    except OSError:
        # Gone or unreachable since the listing: check_file reports why.
        return ImageRecord(folder, name, timestamp)
    return ImageRecord(folder, name, timestamp, stat, devices.setdefault(stat.st_dev, stat.st_dev))


def fill_records(records, cache, workers, fast=True, ignore_size=False):
    """fetch_records of ImageRecords already stat-ed, in (timestamp, name) order."""
    stats = ScanStats()
    _fill_from_cache(records, cache)
    _fill_checks(records, workers, stats)
    _fill_phashes(records, workers, fast, ignore_size, stats)
    # generator: the rows are made while the cache writes them
    cache.put_many((r.identity, r.file, FileCheck(r.digest, r.error), r.phash)
                   for r in records if r.learnt and r.size >= 0)
    stats.cached = len(records) - stats.checked
    return records, stats


def _stat_all(images) -> list:
    records = []
    devices: dict = {}
    last, folder = None, ""   # the listing's folder as a str ending in a separator, made once
    for image in in_order(images) if _out_of_order(images) else images:
        if image.folder is not last:
            last, folder = image.folder, os.path.join(image.folder, "")
        records.append(_stat_record(folder + image.name, image.folder, image.name, image.timestamp, devices))
    return records


def _out_of_order(images) -> bool:
    return any(b.timestamp < a.timestamp or (b.timestamp == a.timestamp and b.name < a.name)
               for a, b in zip(images, images[1:]))


def _fill_from_cache(records, cache):
    """What the cache knows of each record: its table streamed once against
    the files (a hard link's second name, or an inode of another device, is
    answered after, against the first record of that inode)."""
    wanted: dict = {}
    twins = []
    for record in records:
        if record.size >= 0 and wanted.setdefault(record.ino, record) is not record:
            twins.append(record)
    for record, (dev, _, size, mtime_ns, digest, error, phash) in cache.lookup(wanted):
        if record.dev == dev and record.size == size and record.mtime_ns == mtime_ns \
                and (digest is not None or error is not None):
            record.digest, record.error, record.phash = digest, error, phash
    for record in twins:
        first = wanted[record.ino]
        if (first.dev, first.size, first.mtime_ns) == (record.dev, record.size, record.mtime_ns):
            record.digest, record.error, record.phash = first.digest, first.error, first.phash


def _fill_checks(records, workers, stats):
    todo = [r for r in records if r.digest is None and r.error is None]
    results = workers.imap(check_file, (r.file for r in todo), len(todo), PARALLEL_MIN_CHECKS)
    for record, check in zip(todo, results):
        record.digest, record.error, record.learnt = check.digest, check.error, True
    stats.checked = len(todo)


def records_needing_phash(records, fast=True, ignore_size=False, ordered=False):
    """One representative per distinct content that a comparison may need
    (`ordered`: as for plan_dedupe).

    A bucket with one sound record, or whose sound records are all
    byte-identical, needs none."""
    if not fast:
        return [r for r in records if r.ok]
    needed: list = []
    for day in days_of(records if ordered else in_order(records)):
        buckets: dict = {}
        for record in day:
            if record.error is None:   # .ok, without a call per record
                bucket = buckets.get(None if ignore_size else record.size)
                if bucket is None:
                    buckets[None if ignore_size else record.size] = [record]
                else:
                    bucket.append(record)
        for bucket in buckets.values():
            if len(bucket) < 2:
                continue
            by_digest: dict = {}
            for record in bucket:
                by_digest.setdefault(record.digest, record)
            if len(by_digest) > 1:
                needed.extend(by_digest.values())
    return needed


def _fill_phashes(records, workers, fast, ignore_size, stats):
    needed = records_needing_phash(records, fast, ignore_size, ordered=True)   # fill_records' order
    # A pHash known for one copy (from the cache) serves all byte-identical ones.
    known = {r.digest: r.phash for r in records if r.phash and r.error is None}   # r.ok, inlined
    todo = [r for r in needed if r.phash is None and not (fast and r.digest in known)]
    results = workers.imap(compute_phash, (r.file for r in todo), len(todo), PARALLEL_MIN_DECODES)
    for record, result in zip(todo, results):
        record.phash, record.error, record.learnt = result.phash, result.error, True
        if result.phash:
            known[record.digest] = result.phash
    if fast:
        for record in records:
            if record.phash is None and record.error is None and record.digest in known:
                record.phash, record.learnt = known[record.digest], True
    _spread_decode_failures(records, todo)
    stats.decoded = len(todo)


def _spread_decode_failures(records, decoded):
    # A content that passed the structure check but failed to decode is
    # corrupt in every byte-identical copy too.
    failed = {r.digest: r.error for r in decoded if r.error}
    if not failed:
        return
    for record in records:
        if record.ok and record.digest in failed:
            record.error, record.learnt = failed[record.digest], True


# ----------------------------------------------------------------- apply
def apply_copies(records, output) -> fileops.CopyResult:
    """Copy each kept record's file into `output`, never overwriting."""
    return fileops.copy_files_into([record.file for record in records], output)


class _Keys(dict):
    """{name: file_key} of the records that could be stat-ed, as
    records.fetch_state reads its sources: a dict of the records themselves
    (no copy of their numbers), so that `in`, asked of every wanted name,
    is the dict's own; a key tuple is made only when one is asked for."""

    def __init__(self, image_records):
        super().__init__((r.name, r) for r in image_records if r.size >= 0)

    def __getitem__(self, name):
        return dict.__getitem__(self, name).key

    def get(self, name, default=None):
        record = dict.get(self, name)
        return default if record is None else record.key

    def values(self):
        return [record.key for record in dict.values(self)]

    def items(self):
        return [(name, record.key) for name, record in dict.items(self)]


class _ByName(Mapping):
    """{name: file_key} (or {name: digest}) of the stat-ed records, looked
    up in place: records.fetch_state gets the folder's 100,000 sources
    without a copy of them."""

    def __init__(self, by_name: dict, field: str):
        # the dict's own lookups: `by_name` may be a _Keys, whose get gives keys
        self._by_name, self._of = by_name, operator.attrgetter(field)
        self._get = functools.partial(dict.get, by_name)

    def __getitem__(self, name):
        record = self._get(name)
        value = None if record is None else self._of(record)
        if not value:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        record = self._get(name)
        return record is not None and bool(self._of(record))

    def get(self, name, default=None):
        record = self._get(name)
        value = None if record is None else self._of(record)
        return value if value else default

    def __iter__(self):
        return (name for name, record in dict.items(self._by_name) if self._of(record))

    def __len__(self):
        return sum(1 for _ in self)


def fetch_output_state(image_records, source, output, wanted):
    """The output folder and its record, against the names a fresh run
    would copy (the keys and digests already known spare reading sources
    again)."""
    keys = _Keys(image_records)
    record_of = functools.partial(dict.get, keys)   # name -> its ImageRecord or None, a call in C

    def source_unchanged(name, entry):
        # records.SyncState.source_unchanged: the stat-ed key and the digest
        # read this run (or cached), without a key tuple or a mapping call
        record = record_of(name)
        return record is not None and entry[1] == record.size \
            and entry[2] == record.mtime_ns and entry[3] == record.ino \
            and (not record.digest or record.digest == entry[7])

    state = derived.fetch_state(output, keys, wanted, _ByName(keys, "digest"), source_dir=source,
                                shared=record_of, source_unchanged=source_unchanged)
    return state


def unchanged_copies(plan, source, output) -> Optional[derived.SyncResult]:
    """The outcome of a re-run with nothing to do (records.fetch_unchanged:
    the output holds exactly the kept images, each as its record vouches
    for it), without planning it in full; None when there is more to do."""
    kept = sorted(plan.keep, key=_name_of)   # name order; linear: the plan's order but for odd digits
    names = derived.fetch_unchanged(output, kept)
    if names is None:
        return None
    result = derived.SyncResult(identical=names)
    messages.sync_rows(source, output, result.current)
    return result


def apply_sync(state, wanted, source, output, workers=None) -> derived.SyncResult:
    """Bring `output` to exactly the kept images: copy what is missing (over
    `workers`' processes), remove an earlier copy of ours that is now a
    duplicate (or whose source is gone), leave the user's files alone; then
    the messages' rows."""
    sync_plan = derived.plan_sync(state, wanted)
    mapper = None if workers is None else workers.mapper(PARALLEL_MIN_COPIES)
    result = derived.apply_sync(output, state, sync_plan, mapper=mapper)
    if result.stopped is None:   # a full disk: the next run writes the rows
        messages.sync_rows(source, output, result.current)
    return result


def report_rows(plan):
    return [{"date": g.kept.date.isoformat(), "kept": g.kept.name, "removed": item.record.name,
             "difference_seconds": item.seconds, "size": item.record.size, "match": item.match}
            for g in plan.groups for item in g.removed]


def render_report(plan, fmt) -> bytes:
    """The --report file: every duplicate group, as CSV rows or JSON."""
    if fmt == ".csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, ["date", "kept", "removed", "difference_seconds", "size", "match"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(report_rows(plan))
        # a name that is not UTF-8 is written as its own bytes, as the folder holds it
        return text.getvalue().encode("utf-8", "surrogateescape")
    groups = [{"date": g.kept.date.isoformat(), "kept": g.kept.name, "size": g.kept.size,
               "removed": [{"name": item.record.name, "difference_seconds": item.seconds,
                            "match": item.match} for item in g.removed]}
              for g in plan.groups]
    shown = json.dumps({"groups": groups}, indent=2, ensure_ascii=False) + "\n"
    try:
        return shown.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8: JSON's escapes keep it exact
        return (json.dumps({"groups": groups}, indent=2) + "\n").encode("ascii")


def write_report(path, data: bytes) -> str:
    """Write atomically; an existing different file is left alone.
    Returns "written", "identical" or "conflict"."""
    path = Path(path)
    temp = fileops.temp_path_beside(path)
    try:
        temp.write_bytes(data)
        fileops.publish_no_clobber(temp, path)
        return "written"
    except FileExistsError:
        return "identical" if path.read_bytes() == data else "conflict"
    finally:
        temp.unlink(missing_ok=True)


# ----------------------------------------------------------------- print
@dataclass
class DedupeRun:
    source: str
    output: str
    dry_run: bool
    scanned: int
    plan: DedupePlan
    unparsed: list
    copies: Optional[derived.SyncResult]
    scan: ScanStats
    warnings: list = field(default_factory=list)
    report_file: Optional[str] = None
    report_outcome: Optional[str] = None
    not_files: list = field(default_factory=list)   # image-named folders, broken links
    sync_plan: Optional[derived.SyncPlan] = None    # dry run: what the output would undergo

    @property
    def failed(self):
        copies = self.copies
        report_failed = self.report_outcome and self.report_outcome not in ("written", "identical")
        return bool(self.unparsed or self.not_files or self.plan.corrupt or report_failed
                    or (copies and (copies.conflicts or copies.failed or copies.changed)))

    def note(self):
        """The one-line summary (--quiet, main.py --pipeline)."""
        copies = self.copies
        did = f"{self.scanned} scanned, {len(self.plan.removed)} duplicates skipped"
        if copies is not None:
            did += f", {len(copies.copied)} copied, {len(copies.removed)} removed"
        look = []
        if self.plan.corrupt:
            look.append(f"{len(self.plan.corrupt)} corrupt")
        if self.unparsed or self.not_files:
            look.append(f"{len(self.unparsed) + len(self.not_files)} skipped names")
        if copies and (copies.conflicts or copies.failed):
            look.append(f"{len(copies.conflicts) + len(copies.failed)} not copied")
        if copies and copies.changed:
            look.append(f"{len(copies.changed)} changed copies left")
        return did, ", ".join(look)


def print_report(run: DedupeRun, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    for message in run.warnings:
        print(f"warning: {message}", file=err)
    for line in naming.skipped_warnings(run.unparsed, run.not_files):
        print(line, file=err)
    for record in run.plan.corrupt:
        print(f"warning: {record.name}: {record.error}; kept as unique", file=err)
    if run.dry_run:
        _print_plan(run.plan, out)
        _print_sync_plan(run.sync_plan, out)
    _print_summary(run, out)
    _print_statistics(run.plan, out)
    _print_outcome(run, out, err)


def _print_plan(plan, out):
    print("Dry run: nothing is copied. Duplicates that would be skipped:", file=out)
    for group in plan.groups:
        for item in group.removed:
            print(f"  {item.record.name} duplicates {group.kept.name} "
                  f"(+{format_seconds(item.seconds)}, {item.match})", file=out)
    if not plan.groups:
        print("  (none)", file=out)
    print(file=out)


def _print_sync_plan(sync_plan, out):
    if sync_plan is None or not sync_plan.remove:
        return
    print("Earlier copies that would be removed from the output (now duplicates, or their "
          "source is gone):", file=out)
    for name in sync_plan.remove:
        print(f"  {name}", file=out)
    print(file=out)


def _print_summary(run, out):
    plan, copies = run.plan, run.copies
    rule = "=" * 60
    lines = [rule, "Deduplication Summary:", f"  Total images scanned: {run.scanned}"]
    if copies is None:
        lines.append(f"  Unique images to copy: {len(plan.keep)}")
    else:
        lines.append(f"  Unique images copied: {len(copies.copied)}")
        if copies.identical:
            lines.append(f"  Already in output (identical, skipped): {len(copies.identical)}")
        if copies.removed:
            lines.append(f"  Earlier copies removed (now duplicates, or source gone): {len(copies.removed)}")
    lines += [f"  Duplicates skipped: {len(plan.removed)}",
              f"  Duplicate groups found: {len(plan.groups)}"]
    if plan.corrupt:
        lines.append(f"  Unreadable/corrupt images (kept as unique): {len(plan.corrupt)}")
    if run.unparsed:
        lines.append(f"  Skipped, name not parsed: {len(run.unparsed)}")
    if run.not_files:
        lines.append(f"  Skipped, not a readable file: {len(run.not_files)}")
    if copies and (copies.conflicts or copies.failed):
        lines.append(f"  Not copied, errors: {len(copies.conflicts) + len(copies.failed)}")
    lines.append(rule)
    print("\n".join(lines), file=out)


def _print_statistics(plan, out):
    stats = difference_stats(item.seconds for item in plan.removed)
    print(file=out)
    if stats is None:
        print("No duplicates found: no timestamp difference statistics.", file=out)
        return
    rule = "=" * 70
    rows = [("Total pairs calculated:", f"{stats.count:,}", 28),
            ("Mean difference:", format_seconds(stats.mean), 28),
            ("Median difference:", format_seconds(stats.median), 28),
            ("Standard deviation:", format_seconds(stats.std), 28),
            ("Minimum difference:", format_seconds(stats.minimum), 28),
            ("Maximum difference:", format_seconds(stats.maximum), 28)]
    rows += [(f"{p}th percentile:", format_seconds(v), 27) for p, v in stats.percentiles.items()]
    print(rule, "Timestamp Difference Statistics (Removed vs Kept Duplicates)", rule,
          sep="\n", file=out)
    for label, value, width in rows:
        print(f"{label:<{width}}{value}", file=out)
    print(rule, file=out)
    threshold = stats.percentiles[95]
    above = outliers(plan, threshold)
    print(f"\nFiles with timestamp difference above 95th percentile ({format_seconds(threshold)}):",
          file=out)
    print(f"Total: {len(above)} files", file=out)
    for item, kept in above:
        print(f"  {item.record.name}  (+{format_seconds(item.seconds)} after kept {kept.name})",
              file=out)


def _print_outcome(run, out, err):
    if run.copies:
        for line in run.copies.error_lines(run.output):
            print(line, file=err)
        for name in run.copies.removed:
            print(f"Removed {name}: an earlier copy of ours, now a duplicate or gone from the source",
                  file=out)
        for name in run.copies.changed:
            print(f"warning: {run.output}: {name} was copied here earlier but has changed since; "
                  "left alone (now counted as your file)", file=err)
        for name in run.copies.user_files:
            print(f"Left alone: {name} (not written by this step)", file=out)
    if run.report_outcome == "conflict":
        print(f"error: report not written: {run.report_file} exists with different content",
              file=err)
    elif run.report_outcome and run.report_outcome.startswith("failed"):
        print(f"error: report not written to {run.report_file}: "
              f"{run.report_outcome.split(': ', 1)[1]}", file=err)
    elif run.report_file:
        print(f"\nReport saved to: {run.report_file}", file=out)
    scan = run.scan
    print(f"\nFiles read: {scan.checked}, decoded for pHash: {scan.decoded}, "
          f"answered from cache: {scan.cached}", file=out)
    if not run.dry_run:
        print(f"Results saved to: {run.output}", file=out)


# ------------------------------------------------------------------ main
def build_parser():
    parser = cli.ArgumentParser(
        prog="deduplicate_images.py",
        description="Copy images without duplicates (same date, same pHash, same size; "
                    "the earliest is kept).",
        epilog="Statistics: population standard deviation; percentiles by linear interpolation "
               "(numpy's default). Exit 0 when done; 1 when a name did not parse, an entry could "
               "not be read, an image was corrupt (still copied), an output file conflicted or "
               "the output holds an earlier copy that is now a duplicate; 2 for bad usage.")
    parser.add_argument("--source", type=cli.existing_folder, default=config.DEFAULT_OUTPUT_DIR,
                        help=f"folder of downloaded images (default: {config.DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--output", default=config.CLEAN_OUTPUT_DIR,
                        help=f"folder for the unique images (default: {config.CLEAN_OUTPUT_DIR})")
    parser.add_argument("--dry-run", action="store_true", help="report only, copy nothing")
    names_zone.add_timezone_argument(parser, "the source's names (recorded on the output)")
    parser.add_argument("--report", metavar="FILE",
                        help="write every duplicate group to FILE (.csv or .json)")
    parser.add_argument("--max-distance", type=_int_in(0, 64), default=0, metavar="N",
                        help="pHash Hamming distance still counted as equal (default 0)")
    parser.add_argument("--ignore-size", action="store_true",
                        help="do not require equal file sizes (re-encoded copies)")
    parser.add_argument("--workers", type=_int_in(1, 256), default=min(os.cpu_count() or 1, 8),
                        help="processes for reading, decoding and copying (default: CPUs, at most 8)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the hash cache")
    parser.add_argument("--no-fast-path", action="store_true",
                        help="decode and hash every file (slow; same answer, and it also "
                             "finds a PNG damaged behind correct checksums)")
    return parser


def _int_in(low, high):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {text!r}")
        return value
    return parse


def _validate(args):
    cli.check_output_folder(args.source, args.output)
    if args.report:
        suffix = Path(args.report).suffix.lower()
        if suffix not in (".csv", ".json"):
            raise cli.UsageError(f"--report must end in .csv or .json: {args.report}")
        if not Path(args.report).resolve().parent.is_dir():
            raise cli.UsageError(f"--report folder not found: {Path(args.report).parent}")
        if Path(args.report).is_dir():
            raise cli.UsageError(f"--report is a folder: {args.report}")


def dedupe(args) -> DedupeRun:
    """The run; a real one holds the output folder's lock throughout
    (BusyError, exit 2, while another run writes there)."""
    if args.dry_run:
        return _dedupe(args)
    cli.make_output_folder(args.output)
    with locking.hold(args.output, "dedupe"):
        return _dedupe(args)


def _dedupe(args) -> DedupeRun:
    listing = list_records(args.source)
    if not args.dry_run:
        cli.make_output_folder(args.output)
        # The copies keep their names: the output's names are in the source's zone.
        names_zone.claim_zone(args.output, names_zone.folder_zone(args.source, args.timezone),
                              source=f"the names of {args.source}")
    cache = NoCache() if args.no_cache else \
        HashCache(args.output, readonly=args.dry_run)
    ignore_size = args.ignore_size
    with Workers(args.workers) as workers:
        try:
            image_records, scan = fill_records(listing.images, cache, workers,
                                               fast=not args.no_fast_path, ignore_size=ignore_size)
        except WorkerDied as exc:
            raise RunError(f"{exc}; nothing was copied") from None
        listing.images = []   # the records hold what is needed of them
        warnings = [w for w in (cache.warning, cache.save()) if w]
        plan = plan_dedupe(image_records, args.max_distance, ignore_size, ordered=True)
        copies = sync_plan = None
        if not args.dry_run:
            copies = unchanged_copies(plan, args.source, args.output)
        if copies is None:
            wanted = {r.name for r in plan.keep}
            state = fetch_output_state(image_records, args.source, args.output, wanted)
            if args.dry_run:
                sync_plan = derived.plan_sync(state, wanted)
            else:
                copies = apply_sync(state, wanted, args.source, args.output, workers)
    run = DedupeRun(args.source, args.output, args.dry_run, len(image_records), plan,
                    listing.unparsed, copies, scan, warnings, not_files=listing.not_files,
                    sync_plan=sync_plan)
    if args.report:
        run.report_file = args.report
        try:
            run.report_outcome = write_report(args.report,
                                              render_report(plan, Path(args.report).suffix.lower()))
        except OSError as exc:
            run.report_outcome = f"failed: {exc.strerror or exc}"
    return run


def _main(argv):
    args = build_parser().parse_args(argv)
    _validate(args)
    run = dedupe(args)
    print_report(run)
    logs.note("deduplicate_images.py", *run.note())
    if run.copies is not None:
        run.copies.raise_if_stopped()   # the disk filled up: the report so far, then one line
    return cli.EXIT_ITEMS_FAILED if run.failed else cli.EXIT_OK


def main(argv=None):
    # a cached re-run is 100,000s of long-lived records without cycles: no collector passes over them
    return cli.run(cli.without_gc_passes(_main), argv)


if __name__ == "__main__":
    sys.exit(main())

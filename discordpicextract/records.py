"""What a copy step (dedupe, one per day) wrote into its output folder, so
that a re-run can bring the folder to exactly what a fresh run would make.

The record is a hidden JSON file in the output folder: for each file the
step wrote, the source file it came from, the source's identity when it was
copied (size, modification time, inode: a rename keeps them, an edit or a
different file does not), the copy's own identity, and a digest of its bytes.

- `fetch_state` reads the record and the folder (digests only where the plan
  needs bytes: a file that changed since, a legacy folder's files);
- `plan_sync` (pure) decides: keep, copy, replace, remove, or leave alone;
- `apply_sync` copies (atomically, never over a file that is not ours),
  removes a copy of ours only after checking it is byte-identical to what
  was written, and saves the new record.

A file the user put in the folder is never touched, only reported. The
timestamp tools call `record_renames`, so the record follows their renames.
"""
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

from discordpicextract import fileops
from discordpicextract.errors import DISK_ERRNOS

RECORD_FILE = ".discordpicextract-written.json"
VERSION = 2  # files: {name: [source, source_key, key, digest]}
CHUNK = 1 << 20
# Copies run in threads from this many on; below, a pool costs more than it saves.
PARALLEL_MIN_COPIES = 16
COPY_THREADS = 8
log = logging.getLogger(__name__)


def file_key(stat) -> tuple:
    """A file's identity without reading it: size, modification time (ns)
    and inode. A rename keeps all three; rewriting a file changes its mtime,
    and another file has another inode."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def digest_of(path) -> str:
    """blake2b-128 of the file's bytes (the digest deduplicate_images computes)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Entry(NamedTuple):
    """One file the step wrote (a tuple: a record of 100,000 is read fast)."""

    source: str          # the source file's name when it was copied
    source_key: tuple    # file_key of the source then
    key: tuple           # file_key of the copy as written
    digest: str          # of the bytes written


# --- the record file ---------------------------------------------------------------

def record_path(folder) -> Path:
    return Path(folder) / RECORD_FILE


def read_record(folder) -> Optional[dict]:
    """{name: Entry}, or None when the folder has no record yet (a folder an
    older version filled, or a new one). A damaged record counts as none."""
    path = record_path(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
        if data.get("version") == 1:  # entries as objects
            return {name: Entry(e["source"], tuple(e["source_key"]), tuple(e["key"]), e["digest"])
                    for name, e in data["files"].items()}
        return {name: Entry(source, tuple(source_key), tuple(key), digest)
                for name, (source, source_key, key, digest) in data["files"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable record (%s); treating the folder as unrecorded", path, exc)
        return None


def write_record(folder, record: dict) -> None:
    """Write the record atomically (temp file, then rename over the old one)."""
    path = record_path(folder)
    files = {name: [e.source, list(e.source_key), list(e.key), e.digest] for name, e in sorted(record.items())}
    text = json.dumps({"version": VERSION, "files": files}, ensure_ascii=True, separators=(",", ":"))
    temp = fileops.temp_path_beside(path)
    try:
        temp.write_text(text + "\n", encoding="utf-8", errors="surrogateescape")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def record_renames(folder, mapping) -> None:
    """The timestamp tools renamed files of `folder` ({old: new}, applied at
    once): the record follows, keeping what each file is a copy of."""
    record = read_record(folder)
    if not record or not any(name in record for name in mapping):
        return
    renamed = {mapping.get(name, name): entry for name, entry in record.items()}
    write_record(folder, renamed)


# --- reading the folders -------------------------------------------------------------

@dataclass
class SyncState:
    """What is on disk, as far as the plan needs it."""

    record: dict                                        # {name: Entry}
    legacy: bool                                        # no record file yet
    outputs: dict                                       # {name: file_key} image files in the output
    sources: dict                                       # {name: (Path, file_key)} source images
    out_digests: dict = field(default_factory=dict)     # {name: digest}, where bytes matter
    src_digests: dict = field(default_factory=dict)     # {name: digest}, where bytes matter


def _image_files(folder) -> dict:
    from discordpicextract import naming

    found: dict = {}
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return found
    with entries:
        for entry in entries:
            if entry.name.startswith(".") or not naming.is_image_name(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    found[entry.name] = file_key(entry.stat(follow_symlinks=False))
            except OSError:
                continue
    return found


def fetch_state(output, sources, wanted, known_digests=None) -> SyncState:
    """Read the output folder and its record. `sources` is {name: Path, or
    (Path, file_key) when the caller has just stat-ed it} of every source
    image, `wanted` the names a fresh run would write; `known_digests`
    ({source name: digest}) saves reading a source again."""
    record = read_record(output)
    state = SyncState(record or {}, record is None, _image_files(output), {})
    # only the names the plan looks at: a big source folder is not stat-ed whole
    sources = {name: source for name, source in sources.items() if name in wanted or name in state.outputs}
    for name, source in sources.items():
        if isinstance(source, tuple):
            state.sources[name] = (Path(source[0]), source[1])
            continue
        try:
            state.sources[name] = (Path(source), file_key(os.stat(source)))
        except OSError:
            continue
    known = dict(known_digests or {})
    for name, key in state.outputs.items():
        entry = state.record.get(name)
        needs_bytes = (entry is not None and key != entry.key) or (
            entry is None and name in state.sources and (name in wanted or state.legacy))
        if not needs_bytes:
            continue
        _put_digest(state.out_digests, name, Path(output) / name)
        if entry is None:
            if name in known:
                state.src_digests[name] = known[name]
            else:
                _put_digest(state.src_digests, name, state.sources[name][0])
    return state


def _put_digest(into, name, path):
    try:
        into[name] = digest_of(path)
    except OSError:
        pass  # unreadable: the plan treats it as different bytes


# --- the plan (pure) -------------------------------------------------------------------

@dataclass
class SyncPlan:
    keep: list = field(default_factory=list)        # ours, current
    adopt: list = field(default_factory=list)       # not recorded, identical to what we would write
    copy: list = field(default_factory=list)        # wanted, not there yet
    replace: list = field(default_factory=list)     # ours, but the source changed
    remove: list = field(default_factory=list)      # ours, no longer wanted
    conflicts: list = field(default_factory=list)   # wanted name held by a file not ours: not overwritten
    changed: list = field(default_factory=list)     # ours once, changed since: now the user's
    user_files: list = field(default_factory=list)  # not ours, not wanted: left alone


def plan_sync(state: SyncState, wanted) -> SyncPlan:
    """What brings the output to exactly `wanted` (source names, copied
    under their own names) without touching a file that is not ours."""
    plan = SyncPlan()
    wanted = {name for name in wanted if name in state.sources}  # a source gone since its listing is not
    for name in sorted(state.outputs):
        _plan_existing(plan, state, name, name in wanted)
    plan.copy = sorted(name for name in wanted if name not in state.outputs)
    return plan


def _plan_existing(plan, state, name, is_wanted):
    entry = state.record.get(name)
    key = state.outputs[name]
    ours = entry is not None and (key == entry.key or state.out_digests.get(name) == entry.digest)
    if entry is not None and not ours:
        plan.changed.append(name)
        if is_wanted:
            plan.conflicts.append(name)
        return
    if ours:
        if not is_wanted:
            plan.remove.append(name)
        elif _source_unchanged(state, name, entry):
            plan.keep.append(name)
        else:
            plan.replace.append(name)
        return
    identical = name in state.out_digests and state.out_digests[name] == state.src_digests.get(name)
    if is_wanted:
        (plan.adopt if identical else plan.conflicts).append(name)
    elif state.legacy and identical:
        plan.remove.append(name)       # an older version's copy: the same bytes are in the source
    else:
        plan.user_files.append(name)


def _source_unchanged(state, name, entry):
    source = state.sources.get(name)
    return source is not None and source[1] == entry.source_key


# --- applying --------------------------------------------------------------------------

@dataclass
class SyncResult(fileops.CopyResult):
    """copied: new copies and replaced ones; identical: already there."""

    removed: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    user_files: list = field(default_factory=list)
    # a full or failing disk stopped the copies (OSError naming the target):
    # the record holds what was copied, nothing else was tried or removed
    stopped: Optional[OSError] = None
    not_tried: list = field(default_factory=list)

    def raise_if_stopped(self) -> None:
        """Raise the disk error that stopped the run (cli.run: one line, exit 1)."""
        if self.stopped is not None:
            raise self.stopped

    @property
    def current(self) -> list:
        """The names of ours in the folder now."""
        return sorted(self.copied + self.identical)


def apply_sync(output, state: SyncState, plan: SyncPlan, result=None) -> SyncResult:
    """Carry out `plan` in `output` and save the new record. Copies first,
    removals last: an interruption leaves an extra file, never a missing one.
    `result`: a SyncResult (or subclass) to fill."""
    output = Path(output)
    result = result if result is not None else SyncResult()
    result.conflicts += plan.conflicts
    result.changed += plan.changed
    result.user_files += plan.user_files
    record = {name: entry for name, entry in state.record.items()
              if name in state.outputs and name not in plan.changed}
    mode = fileops.new_file_mode()
    for name in plan.keep:
        record[name] = _relinked(record[name], name, state)
        result.identical.append(name)
    for name in plan.adopt:
        record[name] = Entry(name, state.sources[name][1], state.outputs[name], state.out_digests[name])
        result.identical.append(name)
    for name in plan.replace:
        if result.stopped is None:
            _replace_ours(output, name, state, record, result, mode)
        else:
            result.not_tried.append(name)
    _copy_all_new(output, plan.copy, state, record, result, mode)
    for name in plan.remove:
        if result.stopped is None:   # a stopped run removes nothing: the next one finishes the work
            _remove_ours(output, name, state, record, result)
    if state.legacy or record != state.record:
        write_record(output, record)
    return result


def _relinked(entry, name, state):
    """The entry after a rename of both copy and source: same file, new name."""
    return Entry(name, state.sources[name][1], entry.key, entry.digest)


def _still_ours(path, expected_digest):
    try:
        return digest_of(path) == expected_digest
    except OSError:
        return False


def _copy_all_new(output, names, state, record, result, mode):
    """Copy the new names in a few threads (the work is I/O and hashing,
    both outside the GIL); the outcome is filed in the plan's order, so a
    run reports the same whatever the threads' timing. A full or failing
    disk stops the copies not yet started (no retry on each file)."""
    full = threading.Event()
    if result.stopped is not None:
        full.set()

    def copy(name):
        if full.is_set():
            return None
        try:
            return _write_copy(state.sources[name][0], output / name, state.sources[name][1], mode,
                               replace=False)
        except OSError as exc:
            if exc.errno in DISK_ERRNOS:
                full.set()
            return exc

    pool = ThreadPoolExecutor(COPY_THREADS) if len(names) >= PARALLEL_MIN_COPIES else None
    outcomes: Iterator = pool.map(copy, names) if pool else map(copy, names)
    try:
        for name, outcome in zip(names, outcomes):
            if isinstance(outcome, Entry):
                record[name] = outcome
                result.copied.append(name)
                log.debug("copied %s", name)
            elif isinstance(outcome, FileExistsError):
                result.conflicts.append(name)   # appeared since the listing
            elif outcome is None or _stops(outcome, output / name, result):
                result.not_tried.append(name)
            else:
                result.failed.append((name, outcome.strerror or str(outcome)))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)


def _stops(exc, target, result) -> bool:
    """Whether `exc` is a full or failing disk; the first one is kept (naming
    the target, not its temp file) to end the run."""
    if exc.errno not in DISK_ERRNOS:
        return False
    if result.stopped is None:
        result.stopped = OSError(exc.errno, exc.strerror, str(target))
    return True


def _replace_ours(output, name, state, record, result, mode):
    target = output / name
    if not _still_ours(target, record[name].digest):
        record.pop(name, None)
        result.changed.append(name)
        result.conflicts.append(name)
        return
    try:
        record[name] = _write_copy(state.sources[name][0], target, state.sources[name][1], mode, replace=True)
        result.copied.append(name)
        log.debug("replaced %s (its source changed)", name)
    except OSError as exc:
        if _stops(exc, target, result):
            result.not_tried.append(name)
        else:
            result.failed.append((name, exc.strerror or str(exc)))


def _remove_ours(output, name, state, record, result):
    target = output / name
    entry = record.get(name)
    expected = entry.digest if entry is not None else state.src_digests.get(name)
    if expected is None or not _still_ours(target, expected):
        record.pop(name, None)
        (result.changed if entry is not None else result.user_files).append(name)
        return
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        result.failed.append((name, f"not removed: {exc.strerror or exc}"))
        return
    record.pop(name, None)
    result.removed.append(name)
    log.debug("removed %s (superseded)", name)


def _write_copy(source, target, source_key, mode, replace):
    """Copy `source` to `target` through a temp file, hashing the bytes on
    the way; the copy keeps the source's modification time. Without
    `replace`, an existing target raises FileExistsError."""
    if not replace and os.path.lexists(target):
        raise FileExistsError(target)
    temp = fileops.temp_path_beside(target)
    try:
        digest = hashlib.blake2b(digest_size=16)
        with open(source, "rb") as src, open(temp, "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
            times = os.fstat(src.fileno())
        os.chmod(temp, mode)
        os.utime(temp, ns=(times.st_atime_ns, times.st_mtime_ns))
        if replace:
            os.replace(temp, target)
        else:
            fileops.publish_no_clobber(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Entry(target.name, source_key, file_key(os.stat(target)), digest.hexdigest())

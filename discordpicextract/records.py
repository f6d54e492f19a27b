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
import errno
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Optional

from discordpicextract import fileops, locking
from discordpicextract.errors import DISK_ERRNOS

RECORD_FILE = ".discordpicextract-written.json"
# files: [[name, source or null (= name), source size, mtime_ns, inode, size, mtime_ns, inode,
# digest], ...] sorted by name: flat rows parse fast and small (version 2: {name: [source,
# source_key, key, digest]}, still read)
VERSION = 3
ROWS_PER_DUMP = 2000   # rows serialised or parsed at once: the record is never a second time in memory
CHUNK = 1 << 20
# Copies go to the worker processes from this many on; below, the chunks cost more than they save.
PARALLEL_MIN_COPIES = 16
# copy_file_range errors that mean "not here": the bytes are copied by hand instead
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP,
                   errno.EPERM, errno.EBADF, errno.ETXTBSY}
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


class Entry(tuple):
    """One file the step wrote: a flat tuple (source, the source's size,
    mtime and inode then, the copy's size, mtime and inode as written,
    digest of the bytes written), so that a record of 100,000 is small and
    read fast. `source_key` and `key` are records.file_key tuples."""

    __slots__ = ()

    def __new__(cls, source: str, source_key: tuple, key: tuple, digest: str):
        return tuple.__new__(cls, (source, *source_key, *key, digest))

    @classmethod
    def _flat(cls, fields) -> "Entry":
        return tuple.__new__(cls, fields)

    def __reduce__(self):
        # pickled flat (a copy made in a worker process comes back as one)
        return (Entry._flat, (tuple(self),))

    @property
    def source(self) -> str:
        """The source file's name when it was copied."""
        return self[0]

    @property
    def source_key(self) -> tuple:
        return self[1:4]

    @property
    def key(self) -> tuple:
        return self[4:7]

    @property
    def digest(self) -> str:
        return self[7]

    def __repr__(self):
        return f"Entry(source={self.source!r}, source_key={self.source_key}, key={self.key}, digest={self.digest!r})"


# --- the record file ---------------------------------------------------------------

def record_path(folder) -> Path:
    return Path(folder) / RECORD_FILE


def read_record(folder, shared=None) -> Optional[dict]:
    """{name: Entry}, or None when the folder has no record yet (a folder an
    older version filled, or a new one). A damaged record counts as none.
    `shared(name)`: what the caller already holds of the source of that
    name, an object with the attributes name, size, mtime_ns, ino and
    digest, or None (a dict's get: asked of every row); equal values are
    taken from it, so that a folder's names, numbers and digests are held
    once."""
    path = record_path(folder)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            first = handle.readline()
            if first == _ROWS_HEAD + "\n":
                return _read_rows(handle, shared)
            data = json.loads(first + handle.read())
        version, files = data.get("version"), data["files"]
        if version == 1:  # entries as objects
            return {name: Entry(e["source"], tuple(e["source_key"]), tuple(e["key"]), e["digest"])
                    for name, e in files.items()}
        if version == 2:
            return {name: Entry(source, tuple(source_key), tuple(key), digest)
                    for name, (source, source_key, key, digest) in files.items()}
        record: dict = {}
        _add_rows(record, files, shared)
        return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable record (%s); treating the folder as unrecorded", path, exc)
        return None


# Version 3 as written: this line, then one row per line (each but the last
# ending in a comma), then "]}". Still one JSON document; read a few
# thousand lines at a time, so the file is never parsed whole at once.
_ROWS_HEAD = f'{{"version":{VERSION},"files":['


def _read_rows(handle, shared) -> dict:
    # ROWS_PER_DUMP lines at a time, joined as they are (each row but the
    # last ends in ",\n"): one JSON array per batch, no step per line in Python
    record: dict = {}
    while True:
        lines = list(itertools.islice(handle, ROWS_PER_DUMP))
        if not lines:
            raise ValueError("record cut short")
        end = next((i for i in (_index(lines, "]}\n"), _index(lines, "]}")) if i >= 0), -1)
        rows = "".join(lines if end < 0 else lines[:end]).rstrip("\n")
        if rows:
            _add_rows(record, json.loads("[" + (rows[:-1] if rows.endswith(",") else rows) + "]"), shared)
        if end >= 0:
            return record


def _index(lines, line) -> int:
    try:
        return lines.index(line)
    except ValueError:
        return -1


def _add_rows(record: dict, rows: list, shared=None) -> None:
    """Version 3's rows into {name: Entry}. Each row is dropped as it is
    converted, and equal numbers are one object (a copy has its source's
    size and mtime; `shared`: see read_record)."""
    rows.reverse()
    held_of = shared if shared is not None else {}.get
    while rows:
        name, source, s_size, s_mtime, s_ino, size, mtime, ino, digest = rows.pop()
        if digest.__class__ is not str or name.__class__ is not str:
            raise TypeError("record row without a name or digest")
        held = held_of(name)
        if held is not None:
            name = held.name
            s_size = held.size if s_size == held.size else s_size
            s_mtime = held.mtime_ns if s_mtime == held.mtime_ns else s_mtime
            s_ino = held.ino if s_ino == held.ino else s_ino
            digest = held.digest if digest == held.digest else digest
        record[name] = _new_entry(Entry, (name if source is None else source, s_size, s_mtime, s_ino,
                                          s_size if size == s_size else size,
                                          s_mtime if mtime == s_mtime else mtime, ino, digest))


_new_entry = tuple.__new__   # Entry._flat without a call of its own: one per row


def write_record(folder, record: dict) -> None:
    """Write the record atomically (temp file, then rename over the old one)."""
    path = record_path(folder)
    temp = fileops.temp_path_beside(path)
    os.chmod(temp, fileops.new_file_mode())  # mkstemp's file is private; the record is not
    encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
    try:
        with open(temp, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(_ROWS_HEAD + "\n")
            names = sorted(record)
            for start in range(0, len(names), ROWS_PER_DUMP):
                lines = [encode(_row_of(name, record[name])) for name in names[start:start + ROWS_PER_DUMP]]
                handle.write((",\n" if start else "") + ",\n".join(lines))
            handle.write("\n]}\n")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _row_of(name, entry) -> list:
    return [name, None if entry.source == name else entry.source, *entry.source_key, *entry.key, entry.digest]


def record_renames(folder, mapping) -> None:
    """The timestamp tools renamed files of `folder` ({old: new}, applied at
    once): the record follows, keeping what each file is a copy of.

    The record as written here (compact rows) is rewritten row by row as it
    is read, each renamed row made again and every other copied as text: a
    record of 100,000 files is never held, as objects or as text. (The rows
    then stand in the old names' order; the copy step sorts them again.)
    Any other layout is read and written whole."""
    path = record_path(folder)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            done = _rename_rows(path, handle, mapping)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("%s: unreadable record (%s); treating the folder as unrecorded", path, exc)
        return
    if not done:
        _record_renames_whole(folder, mapping)


_READ = 1 << 20   # characters of the record read at a time


def _rename_rows(path, handle, mapping) -> bool:
    """Write the record read from `handle` (compact rows) with its rows
    renamed, atomically; False (nothing written) when it is not laid out
    as write_record writes it, or cannot be read. Nothing is written either
    when no row is renamed. A row is [name, source or null, six numbers,
    digest]: its two names are read as JSON strings and the rest is copied
    up to its "]"."""
    temp = fileops.temp_path_beside(path)
    os.chmod(temp, fileops.new_file_mode())
    renamed = False
    try:
        text, ended = handle.read(max(_READ, len(_ROWS_HEAD))), False
        if not text.startswith(_ROWS_HEAD):
            return False
        with open(temp, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(_ROWS_HEAD)
            pos = len(_ROWS_HEAD)
            while True:
                try:
                    while text[pos] == "\n":   # write_record's line breaks, kept as they are
                        out.write("\n")
                        pos += 1
                    if text[pos] == "]":
                        break
                    row, end, changed = _renamed_row(text, pos, mapping)
                except (IndexError, ValueError):
                    if ended:
                        return False
                    more = handle.read(_READ)   # the row goes on in the next part of the file
                    text, pos, ended = text[pos:] + more, 0, not more
                    continue
                out.write(row)
                renamed = renamed or changed
                pos = end
            if (text[pos:] + handle.read()).rstrip("\n") != "]}":
                return False
            out.write("]}\n")
        if renamed:
            os.replace(temp, path)
        return True
    except (OSError, UnicodeDecodeError):
        return False
    finally:
        temp.unlink(missing_ok=True)


def _renamed_row(text, pos, mapping) -> tuple[str, int, bool]:
    """(the row at `pos` as it is to be written with the "," after it,
    where the next begins, whether it was renamed); IndexError or
    ValueError when the text there is not a whole row."""
    if text[pos:pos + 2] != '["':
        raise ValueError("not a row")
    name, at = _scanstring(text, pos + 2)          # at: just past the name's closing quote
    if text.startswith(",null,", at):
        source, rest = None, at + 5
    elif text.startswith(',"', at):
        source, rest = _scanstring(text, at + 2)
    else:
        raise ValueError("not a row")
    end = text.index("]", rest) + 1
    if text[rest] != "," or text[end] not in ",]\n":
        raise ValueError("not a row")
    after = end + 1 if text[end] == "," else end
    new = mapping.get(name)
    if new is None:
        return text[pos:after], after, False
    # as _row_of makes it: the source named unless it is the file's own name
    origin = name if source is None else source
    origin_text = "null" if origin == new else _encode_string(origin)
    return f"[{_encode_string(new)},{origin_text}{text[rest:after]}", after, True


# JSON strings in C: a record's names, read and written as write_record's json.dumps does (ASCII).
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
_encode_string = json.encoder.encode_basestring_ascii


def _record_renames_whole(folder, mapping) -> None:
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
    outputs: dict                                       # {name: file_key, or its Entry when the key is
                                                        # the recorded one} image files in the output
    sources: Mapping                                    # {name: file_key} source images
    out_digests: dict = field(default_factory=dict)     # {name: digest}, where bytes matter
    src_digests: dict = field(default_factory=dict)     # {name: digest}, where bytes matter
    known: Mapping = field(default_factory=dict)        # {source name: digest} the caller read
    source_dir: Optional[str] = None                    # where `sources` are, when given as keys
    source_paths: Mapping = field(default_factory=dict)  # {name: path} otherwise
    # (name, its Entry) -> whether the recorded copy is still its source's: what
    # _source_unchanged decides, answered by a caller that holds the sources otherwise
    source_unchanged: Optional[Callable] = None

    def output_key(self, name) -> tuple:
        key = self.outputs[name]
        return key.key if isinstance(key, Entry) else key

    def source_path(self, name):
        return self.source_paths[name] if self.source_dir is None else os.path.join(self.source_dir, name)


def _image_names(folder) -> list:
    """The names of the folder's image files (by their directory entries),
    sorted: the record's order, so that what is matched against its rows is
    met in the order the rows were made, not scattered (directory order)."""
    from discordpicextract import naming

    # naming.is_image_name for a name without a leading dot, without splitext
    extensions = naming.IMAGE_EXTENSIONS
    names: list = []
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return names
    with entries:
        for entry in entries:
            name = entry.name
            # from the last dot (no dot: the last character, never an extension)
            if name.startswith(".") or name[name.rfind("."):].lower() not in extensions:
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    names.append(name)
            except OSError:
                continue
    names.sort()
    return names


def _image_files(folder, record) -> dict:
    """{name: file_key} of the folder's image files, in name order; a file
    whose key is the recorded one maps to its Entry, under the record's
    name (no second tuple or name per file)."""
    found: dict = {}
    prefix, lstat, get = os.path.join(folder, ""), os.lstat, record.get
    for name in _image_names(folder):
        try:
            stat = lstat(prefix + name)
        except OSError:
            continue
        if not S_ISREG(stat.st_mode):   # no longer a file (a link or a folder now)
            continue
        known = get(name)
        if known is not None and known[4] == stat.st_size and known[5] == stat.st_mtime_ns \
                and known[6] == stat.st_ino:   # Entry.key, without the tuple
            found[known[0] if known[0] == name else name] = known   # [0]: Entry.source
        else:
            found[name] = file_key(stat)
    return found


def fetch_unchanged(output, kept) -> Optional[list]:
    """The names of `kept` when `output` holds exactly their copies as its
    record has them, so that a re-run has nothing to do; None otherwise,
    or when unsure (the caller then plans in full: fetch_state, plan_sync).

    Exactly: the folder's image files are the kept names, no other; and the
    record is, row for row, what write_record writes for them: each file
    copied from the source of its own name, with the identity that source
    has now (size, mtime, inode) and the digest the caller holds for it
    (the hash cache's, or read this run), and with the identity the copy
    has now. `kept`: objects with the attributes name, size, mtime_ns, ino
    and digest, in name order. The record's text is compared with those
    rows a batch at a time: no row parsed, no Entry made, the file never
    read twice nor held whole."""
    names = [image.name for image in kept]
    if not _only_images(output, names):
        return None
    try:
        with open(record_path(output), encoding="utf-8", errors="surrogateescape") as handle:
            if handle.read(len(_ROWS_HEAD) + 1) != _ROWS_HEAD + "\n":
                return None
            for start in range(0, len(kept), ROWS_PER_DUMP):
                rows = _rows_if_current(output, kept[start:start + ROWS_PER_DUMP])
                if rows is None:
                    return None
                text = (",\n" if start else "") + ",\n".join(rows)
                if handle.read(len(text)) != text:
                    return None
            if handle.read(5) != "\n]}\n":
                return None
    except (OSError, UnicodeDecodeError):
        return None
    return names


def _only_images(folder, names) -> bool:
    """Whether the folder's image-named entries (not hidden) are exactly
    `names`, whatever each entry is (fetch_unchanged lstat-s each name):
    the listing's names only, matched in C."""
    from discordpicextract import naming

    try:
        listed = os.listdir(folder)
    except OSError:
        return False
    wanted = set(names)
    others = [name for name in listed if name not in wanted]
    if len(wanted) != len(names) or len(listed) - len(others) != len(wanted):
        return False
    # hidden files (ours: the record, the cache, temp files) are no images, as for _image_names
    return not any(naming.is_image_name(name) and not name.startswith(".") for name in others)


def _rows_if_current(output, kept) -> Optional[list]:
    """write_record's rows for `kept` as copied to `output` with the
    identities their files have now (json's own string encoder for the
    names and digests; ints print as json prints them); None when one is
    no regular file there, or its source has no identity or digest."""
    rows = []
    prefix, lstat = os.path.join(output, ""), os.lstat
    for image in kept:
        digest, size = image.digest, image.size
        if digest.__class__ is not str or size < 0:
            return None
        try:
            stat = lstat(prefix + image.name)
        except OSError:
            return None
        if not S_ISREG(stat.st_mode):
            return None
        rows.append(f"[{_encode_string(image.name)},null,{size},{image.mtime_ns},{image.ino},"
                    f"{stat.st_size},{stat.st_mtime_ns},{stat.st_ino},{_encode_string(digest)}]")
    return rows


def fetch_state(output, sources, wanted, known_digests=None, source_dir=None, shared=None,
                source_unchanged=None) -> SyncState:
    """Read the output folder and its record. `sources` is {name: path} of
    every source image, or with `source_dir` (their folder) {name: file_key}
    as the caller has just stat-ed them; `wanted` the names a fresh run
    would write; `known_digests` ({source name: digest}) saves reading a
    source again, and a recorded copy whose source now has another digest
    is not taken as current. Mappings are only looked up, never copied;
    `shared`: as for read_record; `source_unchanged`: see SyncState."""
    record = read_record(output, shared)
    state = SyncState(record or {}, record is None, _image_files(output, record or {}), {},
                      known=known_digests if known_digests is not None else {},
                      source_unchanged=source_unchanged)
    if source_dir is not None:
        state.sources, state.source_dir = sources, str(source_dir)
    else:
        state.source_paths, found = sources, {}
        # only the names the plan looks at: a big source folder is not stat-ed whole
        for name in itertools.chain(wanted, state.outputs):
            if name in found or name not in sources:
                continue
            try:
                found[name] = file_key(os.stat(sources[name]))
            except OSError:
                continue
        state.sources = found
    for name, value in state.outputs.items():
        if isinstance(value, Entry):
            continue   # its recorded key: ours, nothing to read
        key, entry = value, state.record.get(name)
        needs_bytes = (entry is not None and key != entry.key) or (
            entry is None and name in state.sources and (name in wanted or state.legacy))
        if not needs_bytes:
            continue
        _put_digest(state.out_digests, name, Path(output) / name)
        if entry is None:
            known = state.known.get(name)
            if known is not None:
                state.src_digests[name] = known
            else:
                _put_digest(state.src_digests, name, state.source_path(name))
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
    outputs, keep = state.outputs, plan.keep
    unchanged = state.source_unchanged or (lambda name, entry: _source_unchanged(state, name, entry))
    for name in sorted(outputs):
        value = outputs[name]
        if value.__class__ is Entry and name in wanted:   # ours as recorded, and wanted: most files
            (keep if unchanged(name, value) else plan.replace).append(name)
        else:
            _plan_existing(plan, state, name, name in wanted)
    plan.copy = sorted(name for name in wanted if name not in state.outputs)
    return plan


def _plan_existing(plan, state, name, is_wanted):
    value = state.outputs[name]
    if isinstance(value, Entry):   # the key recorded: ours (no tuple made, no lookup)
        entry, ours = value, True
    else:
        entry = state.record.get(name)
        ours = entry is not None and (value == entry.key or state.out_digests.get(name) == entry.digest)
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
    """The recorded copy is still the source's: the source has the identity
    it had when copied and, where this run knows the source's digest (the
    hash cache, or a file read this run), that digest."""
    key = state.sources.get(name)
    if key is None or key != entry.source_key:
        return False
    known = state.known.get(name)
    return known is None or known == entry.digest


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


def apply_sync(output, state: SyncState, plan: SyncPlan, result=None, mapper=None) -> SyncResult:
    """Carry out `plan` in `output` and save the new record. Copies first,
    removals last: an interruption leaves an extra file, never a missing one.
    `result`: a SyncResult (or subclass) to fill; `mapper`: see _copy_all_new."""
    output = Path(output)
    result = result if result is not None else SyncResult()
    result.conflicts += plan.conflicts
    result.changed += plan.changed
    result.user_files += plan.user_files
    record = {name: entry for name, entry in state.record.items()
              if name in state.outputs and name not in plan.changed}
    mode = fileops.new_file_mode()
    outputs = state.outputs
    for name in plan.keep:
        entry = record[name]
        if outputs[name] is not entry or entry[0] != name:   # else _relinked keeps it as it is
            record[name] = _relinked(entry, name, state)
    result.identical += plan.keep
    for name in plan.adopt:
        record[name] = Entry(name, state.sources[name], state.output_key(name), state.out_digests[name])
        result.identical.append(name)
    for name in plan.replace:
        if result.stopped is None:
            _replace_ours(output, name, state, record, result, mode)
        else:
            result.not_tried.append(name)
    _copy_all_new(output, plan.copy, state, record, result, mode, mapper)
    for name in plan.remove:
        if result.stopped is None:   # a stopped run removes nothing: the next one finishes the work
            _remove_ours(output, name, state, record, result)
    if state.legacy or record != state.record:
        write_record(output, record)
    return result


def _relinked(entry, name, state):
    """The entry after a rename of both copy and source (same file, new
    name), or once a copy whose identity changed was found to hold the bytes
    written (its new identity is recorded: it is not read again)."""
    value = state.outputs[name]
    if value is entry and entry.source == name:
        return entry   # same name, same copy; plan_sync found the source unchanged
    key = state.output_key(name)
    if entry.source == name and entry.source_key == state.sources[name] and entry.key == key:
        return entry
    return Entry(name, state.sources[name], key, entry.digest)


def _still_ours(path, expected_digest):
    try:
        return digest_of(path) == expected_digest
    except OSError:
        return False


def _copy_all_new(output, names, state, record, result, mode, mapper=None):
    """Copy the new names; the outcome is filed in the plan's order, so a
    run reports the same whatever the workers' timing. `mapper`
    (func, jobs, count) -> results in order spreads them over processes
    (dedupe's pool: a copy is a few system calls, and threads would queue
    on the GIL between them). A full or failing disk stops the copies not
    yet started (no retry on each file)."""
    folder = os.path.join(output, "")
    full = [result.stopped is not None]

    def jobs(todo):
        for name in todo:
            if full[0]:
                return
            yield (state.source_path(name), folder + name, state.sources[name], mode, state.known.get(name), name)

    parallel = mapper is not None and len(names) >= PARALLEL_MIN_COPIES
    outcomes = mapper(copy_new, jobs(names), len(names)) if parallel else map(copy_new, jobs(names))
    done = 0
    while done < len(names):
        try:
            outcome = next(outcomes)
        except StopIteration:
            break   # the disk filled up: the rest is not tried
        except Exception as exc:   # the pool broke (a worker killed): the rest is copied here
            if not parallel:   # raised here, not by the pool: again on every retry, a run that never ends
                raise
            parallel = False
            log.warning("copies go on in this process: %s", exc)
            locking.remove_our_leftovers(output)   # a killed worker's half-written copies (we hold the lock)
            outcomes = map(copy_new, jobs(names[done:]))
            continue
        name = names[done]
        done += 1
        if isinstance(outcome, OSError) and outcome.errno in DISK_ERRNOS:
            full[0] = True
        elif parallel and isinstance(outcome, Entry):
            outcome = _sharing(outcome, name, state.sources[name], state.known.get(name))
        _file_outcome(output, name, outcome, record, result)
    result.not_tried += names[done:]


def _sharing(entry, name, source_key, digest):
    """`entry` as unpickled from a worker, remade of the objects this
    process already holds for it (its name, the source's numbers, the
    digest): 100,000 entries would otherwise each bring their own copies."""
    return Entry(name, source_key, _copy_key(source_key, *entry.key),
                 digest if digest == entry.digest else entry.digest)


def _copy_key(source_key, size, mtime_ns, inode) -> tuple:
    """A copy's file_key made of its source's numbers where they are equal
    (a copy has its source's size and mtime): one int object each, not two."""
    return (source_key[0] if size == source_key[0] else size,
            source_key[1] if mtime_ns == source_key[1] else mtime_ns, inode)


def _file_outcome(output, name, outcome, record, result) -> None:
    if isinstance(outcome, Entry):
        record[name] = outcome
        result.copied.append(name)
        log.debug("copied %s", name)
    elif isinstance(outcome, FileExistsError):
        result.conflicts.append(name)   # appeared since the listing
    elif _stops(outcome, output / name, result):
        result.not_tried.append(name)
    else:
        result.failed.append((name, outcome.strerror or str(outcome)))


def copy_new(job):
    """One new copy (a job of _copy_all_new, run in a worker process or
    here): its Entry, or the OSError that stopped it. A target that
    appeared meanwhile holding the source's very bytes (a copy whose worker
    was killed after writing it) is taken as the copy, as plan_sync adopts
    such a file."""
    source, target, source_key, mode, digest, name = job
    try:
        return _write_copy(source, target, source_key, mode, replace=False, digest=digest, name=name)
    except FileExistsError as exc:
        return _adopted(name, source_key, target, digest) or exc
    except OSError as exc:
        return exc


def _adopted(name, source_key, target, digest):
    try:
        found = os.lstat(target)
    except OSError:
        return None
    if digest is None or not S_ISREG(found.st_mode) or not _still_ours(target, digest):
        return None
    return Entry(name, source_key, file_key(found), digest)


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
        record[name] = _write_copy(state.source_path(name), target, state.sources[name], mode, replace=True)
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


def _write_copy(source, target, source_key, mode, replace, digest=None, name=None):
    """Copy `source` to `target` through a temp file; the copy keeps the
    source's modification time. Without `replace`, an existing target
    raises FileExistsError. `digest`: the source's as this run read it (for
    `source_key`); while the source keeps that identity, before and after
    the copy, the kernel copies the bytes and they are not hashed again
    (the hash cache's own assumption); otherwise they are hashed on the way.
    `name`: the target's name as the caller holds it (the entry keeps that str).
    Descriptors and str paths only: a first run makes 100,000s of copies."""
    if not replace and os.path.lexists(target):
        raise FileExistsError(target)
    folder, base = os.path.split(target)
    name = name if name == base else base
    handle, temp = _open_temp(folder or ".", name, mode)
    try:
        src = os.open(source, os.O_RDONLY | _O_CLOEXEC)
        try:
            times = os.fstat(src)
            if digest is None or file_key(times) != source_key or not _kernel_copy(src, handle, times.st_size) \
                    or file_key(os.fstat(src)) != source_key:
                digest, times = _hashed_copy(src, handle), os.fstat(src)
        finally:
            os.close(src)
        if _UTIME_BY_FD:
            os.utime(handle, ns=(times.st_atime_ns, times.st_mtime_ns))
        else:
            os.utime(temp, ns=(times.st_atime_ns, times.st_mtime_ns))
        written = os.fstat(handle)   # a rename keeps size, mtime and inode
        key = _copy_key(source_key, written.st_size, written.st_mtime_ns, written.st_ino)
        os.close(handle)
        handle = -1
        if replace:
            os.replace(temp, target)
        elif not fileops.rename_no_replace(temp, target):
            fileops.publish_no_clobber(Path(temp), Path(target))
    except BaseException:
        if handle >= 0:
            os.close(handle)
        Path(temp).unlink(missing_ok=True)
        raise
    return Entry(name, source_key, key, digest)


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_UTIME_BY_FD = os.utime in os.supports_fd
_temp_serial = itertools.count()


def _open_temp(folder, name, mode):
    """A new temp file beside the target, named as fileops.temp_path_beside
    names them (".NAME.xxxxxxxx.part", which locking.remove_our_leftovers
    knows), created exclusively with `mode` (the umask already applied):
    (descriptor, path). A pid and a counter, not mkstemp's random letters."""
    while True:
        tag = ((os.getpid() << 20) ^ next(_temp_serial)) & 0xFFFFFFFF
        temp = os.path.join(folder, f".{name[:40]}.{tag:08x}.part")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode), temp
        except FileExistsError:
            continue


def _kernel_copy(src, dst, size) -> bool:
    """All `size` bytes of the descriptor `src` into the empty `dst` without
    passing them through Python (copy_file_range); False where the call or
    the file system does not do it (the caller copies by hand)."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return False
    done = 0
    try:
        while done < size:
            step = copy_range(src, dst, size - done)
            if step == 0:
                return False    # the source got shorter
            done += step
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
        return False
    return True


def _hashed_copy(src, dst) -> str:
    """Copy descriptor `src` into `dst` from their starts; the bytes' digest."""
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    digest = hashlib.blake2b(digest_size=16)
    while True:
        chunk = os.read(src, CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
    return digest.hexdigest()

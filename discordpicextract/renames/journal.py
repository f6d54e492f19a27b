"""The folder's rename journal (`config.JOURNAL_FILE`, JSON lines, fsync):
each batch is written whole before any file moves, then its progress and
its end. Reading it back gives the batches (`read_journal`) and the one left
unfinished by a crash (`pending_batch`). Every record is checked before it
is believed: a name must be a plain name inside the folder, every field of
its type (a damaged or foreign line is skipped and counted). One run's
batch over several folders shares its id, and each folder's begin record
lists them all, so that recovery brings every folder to the same state.
Writers hold the folder's lock (`locking`); the journal is not a lock.
Once big and all finished, the journal becomes a numbered history file
(`rotate_if_finished`): runs read only the current journal, and --undo
reads history back only as far as its batch (`older_batches`)."""
import json
import os
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain, repeat
from operator import attrgetter, eq, itemgetter
from pathlib import Path
from typing import Optional

import config
from discordpicextract import fileops, locking
from discordpicextract.errors import BusyError, RunError, UsageError
from discordpicextract.renames.plan import Move, PlanSteps, Skip

# A step as journaled: (src, dst, move index, inode or None).
JournalStep = tuple

# The begin record's layout. 1 (no "format" field): "moves" [[old, new]],
# "steps" [[src, dst, move, inode]] (each name written twice). 2: "inodes"
# (one per move: every step of a move moves that move's file) and "steps"
# as move indices, [src, dst, move] only where a step is not its move
# (a cycle's temporary name). Both are read, 2 is written.
BEGIN_FORMAT = 2


class CompactSteps(PlanSteps):
    """A batch's steps as the format-2 begin record keeps them: a plan's
    steps (a move index each, names only where a step is not its move)
    with the inode of each move's file; each step reads as
    (src, dst, move, inode), like the steps of a format-1 record."""

    __slots__ = ("inodes",)

    def __init__(self, moves, inodes, order, special):
        super().__init__(moves, order, special)
        self.inodes = inodes

    def _step(self, src, dst, move):
        return (src, dst, move, self.inodes[move])

    def __eq__(self, other):
        if isinstance(other, CompactSteps):
            return (self.order == other.order and self.special == other.special
                    and self.inodes == other.inodes and self.moves == other.moves)
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None

    def __repr__(self):
        return f"CompactSteps({len(self)} steps, {len(self.special)} special)"

    def rows(self) -> list:
        """The record's "steps": a move index, or [src, dst, move]."""
        rows: list = list(self.order)
        for i, (src, dst) in self.special.items():
            rows[i] = [src, dst, rows[i]]
        return rows


def compact_steps(moves, steps, inodes) -> CompactSteps:
    """A plan's steps ((src, dst, move, ...) each) with the inode of each
    move's file, as a format-2 begin record writes them."""
    if isinstance(steps, PlanSteps):   # a plan's: its order and its temp names as they are
        return CompactSteps(moves, inodes, array("q", steps.order), dict(steps.special))
    order = array("q", map(_third, steps))
    if all(map(eq, map(_first_two, steps), map(moves.__getitem__, order))):   # in C: no temp name
        return CompactSteps(moves, inodes, order, {})
    special = {i: (src, dst) for i, (src, dst, m, *_rest) in enumerate(steps)
               if src != moves[m][0] or dst != moves[m][1]}
    return CompactSteps(moves, inodes, order, special)


_first_two, _third = itemgetter(0, 1), itemgetter(2)


@dataclass
class Batch:
    """A batch as the journal tells it."""

    id: str
    label: str
    created: str
    moves: list[Move]
    steps: Sequence[JournalStep]   # a CompactSteps when the begin record is of format 2
    undoes: Optional[str] = None
    recovers: Optional[str] = None
    update_archive: bool = True
    failed: dict[int, str] = field(default_factory=dict)   # step index -> reason
    archived: bool = False
    status: Optional[str] = None  # "completed", "reverted" or None (unfinished)
    skipped: list[Skip] = field(default_factory=list)     # at apply time
    folders: list[str] = field(default_factory=list)      # every folder of the run's batch (absolute)

    def move_inodes(self) -> list:
        """The inode of each move's file as the journal recorded it (None
        where it recorded none), by move index."""
        if isinstance(self.steps, CompactSteps):
            return self.steps.inodes
        inodes: list = [None] * len(self.moves)
        seen = bytearray(len(self.moves))
        for _src, _dst, move, inode in self.steps:   # the first step of a move says (format 1)
            if not seen[move]:
                seen[move] = 1
                inodes[move] = inode
        return inodes

    def done_moves(self) -> list[Move]:
        failed_moves = {self.steps[i][2] for i in self.failed}
        # A batch finished by `--recover complete` logs its failures only in
        # its end record.
        skipped = {(skip.name, skip.target) for skip in self.skipped}
        return [move for i, move in enumerate(self.moves)
                if i not in failed_moves and (move.old, move.new) not in skipped]


def journal_path(folder) -> Path:
    return Path(folder) / config.JOURNAL_FILE


def read_journal(folder) -> list[Batch]:
    """The batches of `folder`'s journal, oldest first (see read_journal_checked)."""
    return read_journal_checked(folder)[0]


@dataclass
class _Parsed:
    """What this process has read of one journal file so far."""

    identity: tuple                  # (device, inode) of the journal file
    offset: int = 0                  # bytes read, up to the last complete line
    lines: int = 0                   # lines read
    batches: dict = field(default_factory=dict)
    damaged: list = field(default_factory=list)


# A run asks about its journals many times (pending? undoable? damaged?
# before and under the locks, then for each folder of a batch): each file
# is parsed once per process, then only what was appended since.
_PARSED: dict[str, _Parsed] = {}


def read_journal_checked(folder) -> tuple[list[Batch], list[int]]:
    """(the batches of `folder`'s journal oldest first, the numbers of the
    damaged lines skipped). A torn last line (a crash while writing it) is
    not counted: no file moves before its line is complete and synced. An
    unreadable journal is a UsageError. Only the current journal: older
    batches, all finished, are in the history files (`older_batches`)."""
    return _read_file(journal_path(folder))


def _read_file(path, cache=True) -> tuple[list[Batch], list[int]]:
    try:
        with open(path, "rb") as handle:
            parsed = _read_new_lines(handle, os.path.realpath(path) if cache else None)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise UsageError(f"cannot read the rename journal {path}: {exc.strerror or exc}") from None
    return list(parsed.batches.values()), list(parsed.damaged)


def _read_new_lines(handle, key) -> _Parsed:
    stat = os.fstat(handle.fileno())
    parsed = _PARSED.get(key) if key is not None else None
    if parsed is None or parsed.identity != (stat.st_dev, stat.st_ino) or stat.st_size < parsed.offset:
        parsed = _Parsed((stat.st_dev, stat.st_ino))
        if key is not None:
            _PARSED[key] = parsed
    handle.seek(parsed.offset)
    while True:
        line = handle.readline()
        if not line.endswith(b"\n"):
            break  # the end, or a torn line (or still being written): read again next time
        parsed.offset += len(line)
        parsed.lines += 1
        if line.isspace():
            continue
        try:
            # A begin record is tens of MB: its bytes, then its text, go
            # as soon as the next form exists.
            text = line.decode("utf-8")
            del line
            record = _load_record(text)
            del text
            _apply_record(parsed.batches, record)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            parsed.damaged.append(parsed.lines)
    return parsed


def _load_record(text: str):
    """json.loads(text); a begin record as written here (its moves, then
    its steps, last) has its moves and steps decoded a piece at a time
    and each element converted at once, a step's
    names made its move's own str objects where they are the same: a batch
    of 100,000 moves is never held twice (as JSON lists and as tuples)."""
    at = text.find(_MOVES_AT)
    if not text.startswith('{"event":"begin",') or at < 0:
        return json.loads(text)
    try:
        record = json.loads(text[:at] + "}")
        compact = record.get("format") == BEGIN_FORMAT
        # Each element in its final form at once (a Move, a step tuple):
        # nothing per element is made to be thrown away later.
        at += len(_MOVES_AT)
        steps_at = text.find(_STEPS_AT, at)   # in a line json.dumps made, only where the steps begin
        if steps_at < 1 or text[steps_at - 1] != "]":
            return json.loads(text)
        moves, at = _elements(text, at, steps_at - 1, _moves_of), steps_at

        def step_of(row):
            if (type(row) is list and len(row) == 4 and type(row[2]) is int and 0 <= row[2] < len(moves)
                    and type(moves[row[2]]) is Move):
                return _shared_step(row[0], row[1], row[2], row[3], moves[row[2]])
            return row   # as it is: _steps says what is wrong with it

        at += len(_STEPS_AT)
        tail = len(text.rstrip()) - 2   # where the line's "]}" is
        if tail < at or text[tail:].rstrip() != "]}" or "moves" in record or "steps" in record:
            return json.loads(text)
        steps = _elements(text, at, tail, None if compact else partial(map, step_of))
    except ValueError:
        return json.loads(text)   # says what is wrong, as for any other line
    record["moves"], record["steps"] = moves, steps
    return record


_MOVES_AT, _STEPS_AT = ',"moves":[', ',"steps":['


def _move_of(pair):
    return Move(*pair) if type(pair) is list and len(pair) == 2 else pair


def _moves_of(pairs):
    """The Moves of a piece of a begin record's moves, made in C when they
    are all pairs (else one at a time: _moves says what is wrong)."""
    if set(map(type, pairs)) == {list} and set(map(len, pairs)) == {2}:
        return map(tuple.__new__, repeat(Move), pairs)
    return map(_move_of, pairs)


# Characters of a begin record's array json.loads reads at a time (then
# cut at the next element's start): each piece is decoded in C, and only
# its few thousand elements are held as JSON lists before they convert.
_STRIDE = 1 << 16


def _elements(text, at, end, convert) -> list:
    """The elements of the JSON array whose text between its brackets is
    text[at:end], read a piece at a time, each piece's list through
    `convert` (None: as they are). A piece cut inside a string (a name ending in "],[") does not parse: ValueError
    (the caller then reads the line whole), as for any text that is no
    array of JSON values."""
    items: list = []
    while at < end:
        cut = text.find('],["', at + _STRIDE, end)
        stop = end if cut < 0 else cut + 1
        piece = json.loads("[" + text[at:stop] + "]")
        items.extend(piece if convert is None else convert(piece))
        at = stop + 1
    return items


# --- history: finished batches rotated out of the journal -----------------------------

# A journal this big whose batches are all finished (nothing to recover, no
# damaged line to report) becomes a history file when its batch ends, so a
# run reads its folder's recent batches, not everything it ever renamed.
ROTATE_AT = 1 << 20
_HISTORY_PREFIX = config.JOURNAL_FILE.rsplit(".", 1)[0] + "."


def history_files(folder) -> list[Path]:
    """The folder's history files, newest first. Under the folder's lock
    the folder is listed for them once per hold (only this process makes
    history files then, and `rotate_if_finished` adds its own)."""
    token, key = locking.hold_token(folder), os.path.realpath(folder)
    seen = _HISTORY_SEEN.get(key)
    if token is not None and seen is not None and seen[0] is token:
        named = seen[1]
    else:
        # Matched in C over the folder's names (100,000s), one at a time:
        # no Python step per name, no list of them.
        with os.scandir(folder) as entries:
            named = list(filter(_HISTORY_NAME.match, map(attrgetter("name"), entries)))
        if token is not None:
            _HISTORY_SEEN[key] = (token, named)
    numbered = sorted(((int(name[len(_HISTORY_PREFIX):-len(".jsonl")]), name) for name in named), reverse=True)
    return [Path(folder) / name for _number, name in numbered]


def note_history_names(folder, names) -> None:
    """A listing of `folder` made under its lock saw these names besides
    the ones it looked for: its history files are known for this hold."""
    token = locking.hold_token(folder)
    if token is not None:
        _HISTORY_SEEN[os.path.realpath(folder)] = (token, list(filter(_HISTORY_NAME.match, names)))


_HISTORY_NAME = re.compile(re.escape(_HISTORY_PREFIX) + r"[0-9]+\.jsonl\Z")
# {real folder path: (the lock hold, the names of its history files)}
_HISTORY_SEEN: dict[str, tuple[object, list[str]]] = {}


def older_batches(folder):
    """The batches of each history file, newest file first (each list
    oldest first): --undo reads back only as far as it has to."""
    for path in history_files(folder):
        # Not kept in the parsed copies: a history file is read once, and
        # an undo lets its batch go once planned.
        yield _read_file(path, cache=False)[0]


def rotate_if_finished(folder) -> Optional[Path]:
    """Move the journal to the next history file when it is big and every
    batch in it is finished; the history file, or None. (A crash during the
    rename leaves the journal under one of its two names, complete.)"""
    path = journal_path(folder)
    try:
        if path.stat().st_size < ROTATE_AT:
            return None
    except FileNotFoundError:
        return None
    batches, damaged = read_journal_checked(folder)
    if damaged or any(batch.status is None for batch in batches):
        return None
    history = history_files(folder)
    number = int(history[0].name[len(_HISTORY_PREFIX):-len(".jsonl")]) + 1 if history else 1
    target = Path(folder) / f"{_HISTORY_PREFIX}{number:06d}.jsonl"
    try:
        fileops.move_no_clobber(path, target)
    except OSError:
        return None  # the journal just stays: nothing is lost
    seen = _HISTORY_SEEN.get(os.path.realpath(folder))
    if seen is not None and seen[0] is locking.hold_token(folder):
        seen[1].append(target.name)
    sync_dir(folder)
    return target


def damaged_message(folder, damaged) -> str:
    shown = ", ".join(map(str, damaged[:5])) + (", ..." if len(damaged) > 5 else "")
    return (f"{journal_path(folder)}: {len(damaged)} damaged line(s) ignored (line {shown}): "
            "names outside the folder, wrong types or broken JSON; nothing they name was moved")


def plain_name(value) -> str:
    """`value` if it is a plain file name inside a folder, else ValueError:
    a journal naming ../x, /etc/passwd or a sub/path must move nothing."""
    if (not isinstance(value, str) or not value or value in (".", "..") or "/" in value
            or "\\" in value or "\x00" in value or (os.altsep and os.altsep in value)):
        raise ValueError(f"not a plain file name: {value!r}")
    return value


def _text(value, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _index(value, size):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < size:
        raise ValueError(f"not an index below {size}: {value!r}")
    return value


def all_plain(names) -> bool:
    """True when every one of `names` (a list) is a plain name (see
    plain_name), checked a few thousand at a time: a batch holds 100,000s."""
    return all(_plain_joined(names[start:start + _PIECE]) for start in range(0, len(names), _PIECE))


def rows_plain(rows) -> bool:
    """all_plain over the first two names of each of `rows` (moves or
    steps), the names gathered in C a few thousand rows at a time."""
    for start in range(0, len(rows), _PIECE):
        chunk = rows[start:start + _PIECE]
        if not _plain_joined(list(chain(map(_first, chunk), map(_second, chunk)))):
            return False
    return True


_first, _second = itemgetter(0), itemgetter(1)


def _plain_joined(chunk) -> bool:
    try:
        joined = "\x00" + "\x00".join(chunk) + "\x00"
    except TypeError:
        return False  # not all strings
    return not (joined.count("\x00") != len(chunk) + 1 or "/" in joined or "\\" in joined
                or (os.altsep and os.altsep in joined)
                or "\x00\x00" in joined or "\x00.\x00" in joined or "\x00..\x00" in joined)


def _moves(pairs: list) -> list[Move]:
    """The moves of a begin record as Moves, in place (the JSON lists go
    as the tuples come: a batch is not held twice)."""
    if set(map(type, pairs)) != {Move}:   # checked in C: a record read in pieces is all Moves
        for k, pair in enumerate(pairs):
            if type(pair) is not Move:
                old, new = pair
                pairs[k] = Move(old, new)
    if not rows_plain(pairs):
        for move in pairs:   # the slow way, for the message
            plain_name(move.old), plain_name(move.new)
    return pairs


def _steps(rows: list, moves: list[Move]) -> list[JournalStep]:
    """The steps of a begin record as tuples, in place. A step's names are
    its move's own str objects where they are the same names (most are):
    each name is held once, not once per move and once per step."""
    count = len(moves)
    for k, row in enumerate(rows):
        src, dst, move, inode = row
        if not isinstance(move, int) or isinstance(move, bool) or not 0 <= move < count:
            _index(move, count)
        if inode is not None and (not isinstance(inode, int) or isinstance(inode, bool)):
            raise TypeError("an inode is a whole number")
        if type(row) is not tuple:
            rows[k] = _shared_step(src, dst, move, inode, moves[move])
    if not rows_plain(rows):
        for step in rows:
            plain_name(step[0]), plain_name(step[1])
    return rows


def _shared_step(src, dst, move, inode, of) -> JournalStep:
    old, new = of
    return (old if src == old else src, new if dst == new else dst, move, inode)


def _compact(rows: list, moves: list[Move], inodes) -> CompactSteps:
    """The steps of a format-2 begin record, checked: each a move index,
    or [src, dst, move] with plain names; one inode (or null) per move.
    Checked in C where the rows are all indices (the usual batch)."""
    count = len(moves)
    if type(inodes) is not list or len(inodes) != count:
        raise ValueError("a format-2 begin record has one inode per move")
    if not set(map(type, inodes)) <= {int, type(None)}:
        raise TypeError("an inode is a whole number")
    special = {}
    if set(map(type, rows)) != {int}:
        for i, row in enumerate(rows):
            if type(row) is int:
                continue
            if type(row) is not list or len(row) != 3:
                raise TypeError("a step is a move index or [src, dst, move]")
            src, dst, move = row
            special[i] = (plain_name(src), plain_name(dst))
            rows[i] = _index(move, count) if type(move) is int else _index(None, count)
    if rows and (min(rows) < 0 or max(rows) >= count):
        raise ValueError(f"a step's move is not an index below {count}")
    return CompactSteps(moves, inodes, array("q", rows), special)


def _begin(record) -> Batch:
    moves = _moves(record["moves"])
    if record.get("format") == BEGIN_FORMAT:
        steps: Sequence = _compact(record["steps"], moves, record["inodes"])
    elif "format" in record:
        raise ValueError(f"unknown begin record format {record['format']!r}")
    else:
        steps = _steps(record["steps"], moves)
    update_archive = record.get("update_archive", True)
    if not isinstance(update_archive, bool):
        raise TypeError("update_archive is true or false")
    folders = [_text(f) for f in record.get("folders") or []]
    return Batch(_text(record["batch"]), _text(record.get("label", "")), _text(record.get("created", "")),
                 moves, steps, _text(record.get("undoes"), True), _text(record.get("recovers"), True),
                 update_archive, folders=folders)


def _apply_record(batches, record):
    event, batch_id = record.get("event"), record.get("batch")
    if event == "begin":
        batch = _begin(record)
        batches[batch.id] = batch
        return
    batch = batches.get(batch_id)
    if batch is None or (event == "step" and record.get("ok", True)):
        return
    # A batch handed out by an earlier read is never changed under its
    # holder: a later record updates a copy.
    batch = batches[batch_id] = replace(batch, failed=dict(batch.failed))
    if event == "step":
        batch.failed[_index(record["i"], len(batch.steps))] = _text(record.get("reason", ""))
    elif event in ("archive", "unarchive"):  # the records named the new names / the old ones again
        batch.archived = event == "archive"
    elif event == "end":
        status = record.get("status", "completed")
        if status not in ("completed", "reverted"):
            raise ValueError(f"unknown status {status!r}")
        skipped = [Skip(plain_name(name), _text(target), _text(reason))
                   for name, target, reason in record.get("skipped", [])]
        batch.status, batch.skipped = status, skipped


class BatchRunning(BusyError):
    """Another process is renaming in this folder right now (exit 2: the
    run refused to start, nothing was moved in that folder)."""


def refuse_if_busy(folder) -> None:
    """BatchRunning when another process holds `folder`'s lock: its batch
    is live, not crashed, and must not be recovered or joined."""
    found = locking.holder(folder)
    if found is not None and not locking.holds(folder):
        raise BatchRunning(locking.busy_message(folder, found))


class Journal:
    """The folder's journal, opened for appending for the time of one batch
    (the caller holds the folder's lock). Use it as a context manager:
    leaving syncs and closes.

    What it writes also goes into this process's parsed copy of the file
    (when that copy is up to date), so a run never parses back the batch
    it has just written (100,000s of moves)."""

    def __init__(self, folder):
        path = journal_path(folder)
        if path.is_symlink():   # a link would carry the journal's writes out of the folder
            raise UsageError(f"the rename journal {path} is a link; not followed (move it away and run again)")
        try:
            # Held open for the whole batch, closed by close(); O_NOFOLLOW
            # where there is one, against a link planted since the check.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_BINARY", 0), 0o666)
            self.handle = os.fdopen(fd, "a+b")
        except OSError as exc:
            raise UsageError(f"cannot write the rename journal {path}: {exc.strerror or exc}") from None
        size = self.handle.seek(0, os.SEEK_END)
        if size == 0:
            sync_dir(folder)  # the journal's own name must survive a crash too
        else:
            # A line torn by a crash must not swallow the next record.
            self.handle.seek(size - 1)
            if self.handle.read(1) != b"\n":
                self.handle.write(b"\n")
                size += 1
        self._end = size
        self._key = os.path.realpath(path)
        stat = os.fstat(self.handle.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        if size == 0:   # a new journal: nothing to read back, so the copy is up to date
            _PARSED[self._key] = _Parsed(self._identity)

    def write(self, record, sync=False):
        # ASCII escapes keep names that are not valid UTF-8 (surrogate escapes) intact
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        self._put([line], sync)
        self._parsed_too(len(line), lambda batches: _apply_record(batches, record))

    def write_begin(self, batch: Batch, head: dict, sync=True):
        """The begin record of `batch` (its steps a CompactSteps): `head`
        (its other fields), then "format", its inodes, moves and steps, the
        same line `write` makes of the whole record, written in pieces (one
        string of 100,000 moves is tens of MB)."""
        assert isinstance(batch.steps, CompactSteps)
        begun = self._end
        head = {**head, "format": BEGIN_FORMAT, "inodes": batch.steps.inodes}
        pieces = [json.dumps(head, separators=(",", ":"))[:-1].encode("utf-8"), b',"moves":[']
        plain = True
        moves = batch.moves
        for start in range(0, len(moves), _PIECE):
            chunk = moves[start:start + _PIECE]
            plain = plain and rows_plain(chunk)
            if start:
                pieces.append(b",")
            pieces.append(json.dumps(chunk, separators=(",", ":"))[1:-1].encode("utf-8"))
            if len(pieces) > 64:
                self._put(pieces, False)
                pieces = []
        special = batch.steps.special
        plain = plain and all_plain([name for names in special.values() for name in names])
        pieces += [b'],"steps":', json.dumps(batch.steps.rows(), separators=(",", ":")).encode("utf-8"), b"}\n"]
        self._put(pieces, sync)
        if plain:   # else a reader counts the line damaged: let it read the line
            self._parsed_too(self._end - begun, lambda batches: batches.__setitem__(batch.id, batch))

    def _put(self, pieces, sync):
        try:
            for piece in pieces:
                self.handle.write(piece)
                self._end += len(piece)
        except OSError as exc:
            raise self._failed(exc) from None
        if sync:
            self.sync()

    def _parsed_too(self, length, update):
        """Bring the parsed copy past a line just written, if it stood
        right before it (else the next read parses the file as usual)."""
        parsed = _PARSED.get(self._key)
        if parsed is None or parsed.identity != self._identity or parsed.offset != self._end - length:
            return
        try:
            self.handle.flush()   # a read of the file meanwhile must not find it shorter than the copy
        except OSError as exc:
            raise self._failed(exc) from None
        parsed.offset = self._end
        parsed.lines += 1
        try:
            update(parsed.batches)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            parsed.damaged.append(parsed.lines)

    def sync(self):
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc) -> "JournalError":
        return JournalError(f"cannot write the rename journal {self.handle.name}: {exc.strerror or exc}; "
                            "renaming stopped there (no file is lost): once it can be written again, "
                            "run with --recover complete or --recover revert")

    def close(self):
        try:
            self.sync()
        finally:
            self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            self.close()
        except JournalError:
            if exc_type is None:
                raise


# Moves (or steps) per json.dumps call of a begin record being written.
_PIECE = 4096


class JournalError(RunError):
    """The journal cannot be written (disk full, I/O error): exit 1, one
    line; a batch it stopped is recovered like a crashed one."""


def close_batch(folder, batch_id, status) -> None:
    """Write the end record of `batch_id` with `status` ("reverted")."""
    with Journal(folder) as journal:
        journal.write({"event": "end", "batch": batch_id, "status": status}, sync=True)


def sync_dir(folder) -> None:
    """Make the renames themselves durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def root_of(batches, batch) -> Batch:
    """The batch a recovery batch recovers (itself for any other)."""
    by_id = {b.id: b for b in batches}
    seen = set()
    while batch.recovers and batch.recovers in by_id and batch.id not in seen:
        seen.add(batch.id)
        batch = by_id[batch.recovers]
    return batch


def pending_batch(folder) -> Optional[Batch]:
    """The batch of `folder` a crash left unfinished, or None: one that
    started and neither completed nor was reverted here, or one whose
    recovery is itself unfinished (the batch recovered is returned: a
    --recover names what to do with it, whatever the crashed recovery was
    doing)."""
    batches = read_journal(folder)
    for batch in reversed(batches):
        if batch.status is None:
            return root_of(batches, batch)
    return None


def unfinished_elsewhere(folder) -> Optional[tuple[Batch, str]]:
    """(batch, other folder) when the last batch of `folder` is finished
    here but unfinished in another folder of the same run, else None."""
    batches = [b for b in read_journal(folder) if not b.recovers]
    if not batches or len(batches[-1].folders) < 2:
        return None
    last, here = batches[-1], os.path.realpath(folder)
    for other in last.folders:
        if other == here or not os.path.isdir(other):
            continue
        found = pending_batch(other)
        if found is not None and found.id == last.id:
            return found, other
    return None


def pending_message(folder, batch) -> str:
    return (f"{folder}: an unfinished rename batch {batch.id} ({batch.label or 'no label'}, started {batch.created}) "
            f"must be recovered first: rerun with --recover complete (finish it) "
            f"or --recover revert (put every name back)")

"""Planning a batch of renames, in pure functions (`plan_renames`,
`plan_mapping`): every target is checked against the names in the folder,
two files never get the same name, a target held by a file that stays is
skipped and reported, and chains, swaps and cycles inside the batch are
ordered (through temporary names in the same folder when needed). Nothing
here touches a file; `apply.apply_plan` carries a plan out."""
import os
import re
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import compress, repeat
from operator import itemgetter
from typing import NamedTuple, Optional

from discordpicextract import naming

TEMP_PREFIX = ".dpe-rename-"


class Move(NamedTuple):
    """One file's rename (a tuple: a batch holds 100,000s)."""

    old: str
    new: str


@dataclass(frozen=True)
class Skip:
    name: str
    target: str  # "" when there is none (the new time is out of range)
    reason: str

    def describe(self) -> str:
        target = f" -> {self.target}" if self.target else ""
        return f"{self.name}{target} ({self.reason})"


class Step(NamedTuple):
    """One physical rename; `move` indexes RenamePlan.moves. A tuple, the
    same shape as a journaled step; `inode` stays None in a plan (apply
    journals the inode of each move's file, read under the folder's lock)."""

    src: str
    dst: str
    move: int
    inode: Optional[int] = None


class PlanSteps(Sequence):
    """A plan's steps, in execution order, as a move index per step (8
    bytes each, not a tuple) and the few steps whose names are not their
    move's (a cycle's temporary name): each reads as a Step."""

    __slots__ = ("moves", "order", "special")

    def __init__(self, moves, order, special=None):
        self.moves = moves
        self.order = order if isinstance(order, (range, array)) else array("q", order)
        self.special: dict[int, tuple[str, str]] = special or {}

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        m = self.order[i]
        names = self.special.get(i if i >= 0 else i + len(self.order)) if self.special else None
        src, dst = names if names is not None else self.moves[m]
        return self._step(src, dst, m)

    def __iter__(self):
        moves, special, step = self.moves, self.special, self._step
        for i, m in enumerate(self.order):
            names = special.get(i) if special else None
            src, dst = names if names is not None else moves[m]
            yield step(src, dst, m)

    def _step(self, src, dst, move):
        return Step(src, dst, move)

    def pairs(self):
        """(src, dst) of each step in order: the moves themselves when each
        is its own step in move order (the usual batch), made for nothing."""
        if self.special:
            return map(_first_two, self)
        if self.order == range(len(self.moves)):
            return iter(self.moves)
        return map(self.moves.__getitem__, self.order)   # each step its move's names: the Move, in C

    def __eq__(self, other):
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    __hash__ = None   # type: ignore[assignment]

    def __repr__(self):
        return f"PlanSteps({list(self)!r})"


_first_two = itemgetter(0, 1)


@dataclass
class RenamePlan:
    batch_id: str
    moves: list[Move] = field(default_factory=list)     # listing order
    steps: Sequence[Step] = field(default_factory=list)  # execution order (a PlanSteps once planned)
    skipped: list[Skip] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)   # names left alone
    unselected: int = 0                                 # parsed, not in the batch
    # A plan made from a listing under the folder's lock: that hold
    # (locking.hold_token), the inode of each move's file as the listing
    # read it, and (when it read them all) the listing's hidden names.
    # apply trusts them, instead of listing the folder again, only under
    # that very hold, and once.
    hold: Optional[object] = None
    inodes: Optional[list] = None
    hidden: Optional[list[str]] = None


def new_batch_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def plan_renames(listing, shift, occupied=None, batch_id: Optional[str] = None) -> RenamePlan:
    """Plan renaming the files of `listing` (a naming.FolderListing or an
    iterable of names). `shift(parsed)` returns the new naive timestamp of a
    file, or None to leave it out of the batch. `occupied` is every name in
    the folder (hidden and non-image files included); default: the listing.
    """
    if isinstance(listing, naming.FolderListing):  # already parsed: not again
        entries = ([(image.name, image.parsed) for image in listing.images]
                   + [(path.name, None) for path in listing.unparsed])
    else:
        entries = [(name, naming.try_parse_name(name)) for name in listing]
    return plan_entries(entries, shift, occupied, batch_id)


def plan_entries(entries, shift, occupied=None, batch_id: Optional[str] = None) -> RenamePlan:
    """plan_renames over [(name, parsed or None)], in listing order."""
    unparsed = [name for name, parsed in entries if parsed is None]
    targets, skipped, unselected = _sort_fates((name, _target(name, parsed, shift))
                                               for name, parsed in entries if parsed is not None)
    if occupied is None:
        occupied = {name for name, _parsed in entries}
    elif any(name not in occupied for name, _parsed in entries):
        occupied = set(occupied).union(name for name, _parsed in entries)
    return _plan_targets(targets, occupied, batch_id, skipped, unparsed, unselected)


def _sort_fates(fated):
    """From (name, fate) pairs in plan order: the targets ({name: new}),
    the Skips, and how many names stay as they are."""
    skipped: list[Skip] = []
    targets: dict[str, str] = {}
    unselected = 0
    for name, new in fated:
        if new is None:
            unselected += 1
        elif isinstance(new, Skip):
            skipped.append(new)
        else:
            targets[name] = new
    return targets, skipped, unselected


def _target(name, parsed, shift):
    """The new name of one file; None when it stays (left out, or the
    same name), or a Skip."""
    try:
        stamp = shift(parsed)
    except OverflowError:
        return Skip(name, "", "the new time is out of range")
    if stamp is None:
        return None
    if not 1000 <= stamp.year <= 9999:
        return Skip(name, "", "the new time is out of range")
    new = naming.format_name(stamp, parsed.original)
    return None if new == name else new


def _plan_targets(targets, occupied, batch_id, skipped, unparsed, unselected) -> RenamePlan:
    plan = plan_mapping(targets, occupied, batch_id, require_sources=False)
    plan.skipped[:0] = skipped
    plan.unparsed = unparsed
    plan.unselected = unselected
    return plan


def plan_mapping(mapping, occupied, batch_id: Optional[str] = None, require_sources=True) -> RenamePlan:
    """Plan renaming {old: new} in a folder holding the names `occupied`.

    Nothing is ever collapsed: two files mapping to one name are both
    skipped; a target held by a file that stays (outside the batch, or
    whose own rename was skipped) is skipped, and so is, in turn, any file
    waiting for that name. Linear in the number of names, and nothing per
    file beyond the mapping itself and one index (100,000s of files).
    """
    batch_id = batch_id or new_batch_id()
    if not isinstance(occupied, (set, frozenset)):
        occupied = set(occupied)   # never changed here: a set the caller passes is used as it is
    plan = RenamePlan(batch_id)
    targets = dict(mapping)   # a copy, in C: the sources found are the usual case
    if require_sources and not occupied.issuperset(targets):
        for old, new in mapping.items():
            if old not in occupied:
                plan.skipped.append(Skip(old, new, "file not found (renamed or removed since)"))
                del targets[old]
    _drop_shared_targets(targets, plan.skipped)
    _drop_blocked(targets, occupied, plan.skipped)
    plan.moves = list(map(tuple.__new__, repeat(Move), targets.items()))   # Moves made in C
    plan.steps = _order_steps(plan.moves, targets, occupied, batch_id)
    return plan


def _drop_shared_targets(targets, skipped) -> None:
    """Remove (and report) every move whose target another move shares."""
    if len(set(targets.values())) == len(targets):
        return  # the usual case: every target once
    counts = Counter(targets.values())
    groups: dict[str, list[str]] = {}
    for old, new in targets.items():
        if counts[new] > 1:
            groups.setdefault(new, []).append(old)
    for new, olds in groups.items():
        for old in olds:
            skipped.append(Skip(old, new, "another file of the batch would get the same name"))
            del targets[old]


def _drop_blocked(targets, occupied, skipped):
    """Remove (and report) moves whose target stays occupied, propagating
    along chains: a file that cannot leave blocks whoever wanted its name."""
    staying = occupied - targets.keys()
    if staying.isdisjoint(targets.values()):
        return   # the usual case, found in C: no target held by a file that stays
    queue = [old for old, new in targets.items() if new in staying]
    source_of = {new: old for old, new in targets.items()}
    stuck = set()
    while queue:
        old = queue.pop()
        new = targets.pop(old, None)
        if new is None:
            continue
        del source_of[new]
        reason = ("target name is held by a file whose own rename was skipped" if new in stuck
                  else "target name is held by a file outside the batch")
        skipped.append(Skip(old, new, reason))
        stuck.add(old)
        waiting = source_of.get(old)
        if waiting is not None:
            queue.append(waiting)


def _order_steps(moves, targets, occupied, batch_id) -> PlanSteps:
    """Execution order: each chain from its free end backwards; each cycle
    opened through a temporary name in the same folder. `targets` is
    {old: new} of `moves`. Linear, and the moves no chain links (nearly
    all of a shift) are ordered in C: only a chain's moves take a Python
    step each."""
    count = len(moves)
    made_by = dict(zip(targets.values(), range(count)))   # name -> the move that makes it
    links = targets.keys() & made_by.keys()              # names one move frees and another takes
    if not links:   # the usual batch: each move its own step, in move order
        return PlanSteps(moves, range(count))
    waits = {made_by[name] for name in links}            # moves whose target must be freed first
    # A chain's free end: its target is free, and another move waits for its
    # old name (the move of an old name is the one that makes its target).
    ends = sorted(i for i in (made_by[targets[name]] for name in links) if i not in waits)
    free = bytearray(b"\x01") * count   # 0: a move that waits (a chain takes it along, or a cycle)
    for i in waits:
        free[i] = 0
    order: list[int] = []
    at = 0
    for end in ends:
        order.extend(compress(range(at, end), free[at:end]))
        order.append(end)
        old = moves[end].old
        while old in links:   # back along the chain: the move whose target is this one's old name
            current = made_by[old]
            order.append(current)
            old = moves[current].old
        at = end + 1
    order.extend(compress(range(at, count), free[at:]))
    del free
    if len(order) == count:
        return PlanSteps(moves, order)   # every move in a chain: no cycle
    done = bytearray(count)
    for i in order:
        done[i] = 1
    special: dict[int, tuple[str, str]] = {}
    counter = 0
    for i in sorted(waits):   # what no chain reached is a cycle
        if done[i]:
            continue
        temp = f"{TEMP_PREFIX}{batch_id}-{counter}"
        while temp in occupied:
            counter += 1
            temp = f"{TEMP_PREFIX}{batch_id}-{counter}"
        counter += 1
        move = moves[i]
        special[len(order)] = (move.old, temp)
        order.append(i)
        done[i] = 1
        current = made_by[move.old]
        while current != i:
            order.append(current)
            done[current] = 1
            current = made_by[moves[current].old]
        special[len(order)] = (temp, move.new)
        order.append(i)
    return PlanSteps(moves, order, special)


def plan_folder(folder, shift, batch_id: Optional[str] = None, fates: Optional[dict] = None,
                hold: Optional[object] = None) -> RenamePlan:
    """plan_renames over the images of `folder` (ordered by timestamp, then
    name), checked against every name in it. Each name's fate is decided
    as it is parsed: a folder of 100,000 is never held as parsed names.
    `fates`: {name: its fate} shared by the folders of one run with one
    `shift` (a name's new name depends on nothing else), so that a name
    in several folders is parsed and formatted once, its new name one str.
    `hold`: this process's hold of the folder's lock (planning under it),
    so that the plan carries its files' inodes (RenamePlan.hold)."""
    names, occupied, inode_of, hidden = _image_files(folder, hold is not None)
    plan = _plan_names(names, occupied, shift, batch_id, fates)
    if hold is not None:
        plan.hold, plan.hidden = hold, hidden
        plan.inodes = list(map(inode_of.__getitem__, map(itemgetter(0), plan.moves)))
    return plan


def _plan_names(names, occupied, shift, batch_id, fates) -> RenamePlan:
    """plan_folder's plan of the image `names` of a folder holding `occupied`."""
    fates = {} if fates is None else fates
    unseen: Iterable[str] = set(names).difference(fates)   # each name once per run
    delta = getattr(shift, "delta", None)
    if isinstance(delta, timedelta):
        unseen = _shift_plain_names(unseen, delta, fates)
    for name in unseen:
        parsed = naming.try_parse_name(name)
        fates[name] = _UNPARSED if parsed is None else _target(name, parsed, shift)
    if set(map(type, map(fates.__getitem__, names))) <= {str} and "".join(names).isascii():
        # The usual folder: every name moves, and its "YYYY-MM-DD_HH-MM-SS"
        # (ASCII) sorts as (timestamp, name) do. In C, no step per name.
        names.sort()
        return _plan_targets(dict(zip(names, map(fates.__getitem__, names))), occupied, batch_id, [], [], 0)
    decided, unparsed, stamped = [], [], True
    for name in names:
        if fates[name] is _UNPARSED:
            unparsed.append(name)
        else:
            decided.append(name)
            stamped = stamped and (name.isascii() or name[:19].isascii())
    del names
    if stamped:   # "YYYY-MM-DD_HH-MM-SS" in ASCII digits: the names sort as (timestamp, name) do
        decided.sort()
    else:
        decided.sort(key=lambda name: (naming.parse_name(name).timestamp, name))
    unparsed.sort()
    targets, skipped, unselected = _sort_fates((name, fates[name]) for name in decided)
    del decided
    return _plan_targets(targets, occupied, batch_id, skipped, unparsed, unselected)


def _shift_plain_names(names, delta, fates) -> list:
    """The fate of each of `names` whose time is plain ASCII (hour below
    24) under a shift of every name by `delta` (whole seconds): what
    _target makes of it, from the name's date and clock time, each
    worked out once per run (100,000 names hold a few hundred dates and
    a few thousand times), with no datetime, call or regex group per
    name. Returns the other names, for the general way."""
    if delta.microseconds:
        return list(names)
    rest = []
    plain = _PLAIN_STAMP.match
    clocks: dict = {}                  # "HH-MM-SS" -> seconds into the day, None (no such time), or _GENERAL
    dates: tuple = ({}, {})            # [carry]["YYYY-MM-DD"] -> the new date's text, _UNPARSED or a Skip reason
    texts: dict = {}                   # seconds into the day -> "HH-MM-SS"
    days, seconds = delta.days, delta.seconds
    for name in names:
        if not plain(name):
            rest.append(name)
            continue
        clock = name[11:19]
        at = clocks.get(clock, _UNSEEN)
        if at is _UNSEEN:
            at = clocks[clock] = _clock_seconds(clock)
        if at is _GENERAL:
            rest.append(name)
            continue
        if at is None:
            fates[name] = _UNPARSED   # an impossible time
            continue
        at += seconds
        carry = at >= 86400
        day = name[:10]
        new_day = dates[carry].get(day)
        if new_day is None:
            new_day = dates[carry][day] = _shifted_day(day, days + carry)
        if new_day is _UNPARSED:
            fates[name] = _UNPARSED   # an impossible date
            continue
        if new_day is _OUT_OF_RANGE:
            fates[name] = Skip(name, "", "the new time is out of range")
            continue
        if carry:
            at -= 86400
        text = texts.get(at)
        if text is None:
            text = texts[at] = f"{at // 3600:02d}-{at // 60 % 60:02d}-{at % 60:02d}"
        new = f"{new_day}_{text}_{name[20:]}"
        fates[name] = None if new == name else new
    return rest


def _clock_seconds(clock):
    """Seconds into the day of "HH-MM-SS" (ASCII digits); None when there
    is no such time; _GENERAL for hour 24 and up (naming decides those)."""
    if clock[:2] >= "24":
        return _GENERAL
    hours, minutes, seconds = int(clock[:2]), int(clock[3:5]), int(clock[6:8])
    if minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _shifted_day(day, days):
    """The text of the date `days` after "YYYY-MM-DD"; _UNPARSED when there
    is no such date, _OUT_OF_RANGE when the new one is outside the years
    1000-9999 a name can hold."""
    try:
        start = date.fromisoformat(day)
    except ValueError:
        return _UNPARSED
    try:
        new = start + timedelta(days=days)
    except OverflowError:
        return _OUT_OF_RANGE
    return new.isoformat() if 1000 <= new.year <= 9999 else _OUT_OF_RANGE


# naming's YYYY-MM-DD_HH-MM-SS_original in ASCII digits (naming reads other
# digits too: those names go the general way).
_PLAIN_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2}_.", re.DOTALL)


# An image's name as naming.is_image_name reads it, of a name not hidden:
# the extension after the last dot, in any ASCII case (no other letter
# lowers to one of these extensions' letters).
_IMAGE_NAME = re.compile(r"[^.].*\.(?:" + "|".join(sorted(ext[1:] for ext in naming.IMAGE_EXTENSIONS))
                         + r")\Z", re.DOTALL | re.IGNORECASE | re.ASCII)


def _image_files(folder, with_inodes=False) -> tuple[list, set, dict, list]:
    """(the names of the image files of `folder`, not hidden; every name in
    it; with_inodes: {image name: inode} and the hidden names, else {} and
    []). One listing, names only: no Path per file, no entry kept."""
    names: list[str] = []
    occupied: set[str] = set()
    inode_of: dict[str, int] = {}
    hidden: list[str] = []
    add, match = occupied.add, _IMAGE_NAME.match
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            add(name)
            try:
                if match(name):
                    if entry.is_file():
                        names.append(name)
                        if with_inodes:
                            inode_of[name] = entry.inode()
                elif with_inodes and name[:1] == ".":
                    hidden.append(name)
            except OSError:
                continue
    return names, occupied, inode_of, hidden


_UNSEEN, _UNPARSED, _GENERAL, _OUT_OF_RANGE = object(), object(), object(), object()

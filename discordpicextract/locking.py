"""One lock per folder, taken by every run that writes into it (download,
dedupe and one-per-day outputs, renames, undo, recover) and held for the
whole run, so that two runs never interleave their writes.

The lock is an OS file lock (`filelock`: flock on POSIX, msvcrt on Windows)
on a hidden file in the folder: the OS drops it when its process dies, so a
crashed or killed run leaves no stale lock. Who holds it (pid, since when,
which command) is written beside it, for the "busy" message; that note may
outlive its run, and is believed only while the lock is really held.

Within one process the lock is re-entrant (a script holding its folders may
call library code that takes them again), so a step run by main.py does not
lock itself out.
"""
import json
import os
import re
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

from filelock import FileLock, Timeout

import config
from discordpicextract.errors import BusyError, UsageError

# Leftover temp files of ours: fileops.temp_path_beside names them
# .<up to 40 chars of the target>.<mkstemp's 8 characters>.part
_OUR_PART = re.compile(r"\..+\.[a-z0-9_]{8}\.part\Z", re.DOTALL)   # any name, even with a newline


@dataclass(frozen=True)
class Holder:
    """Who holds a folder's lock."""

    pid: int
    since: str      # local time the run took the lock, ISO format
    command: str
    host: str = ""

    def describe(self) -> str:
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"pid {self.pid}{where}, {self.command}, since {self.since}"


def lock_path(folder) -> Path:
    return Path(folder) / config.LOCK_FILE


def _info_path(folder) -> Path:
    return Path(folder) / (config.LOCK_FILE + ".json")


_held: dict = {}   # real folder path -> [FileLock, depth]
_held_guard = threading.Lock()


def _key(folder) -> str:
    return os.path.realpath(folder)


def holds(folder) -> bool:
    """True when this process holds `folder`'s lock."""
    with _held_guard:
        return _key(folder) in _held


def hold_token(folder) -> Optional[object]:
    """An object that stands for this process's current hold of `folder`'s
    lock (the same object until that hold ends, a new one for the next),
    or None when this process does not hold it: what was seen of the
    folder under one hold stays true while no other run can write there."""
    with _held_guard:
        return _held.get(_key(folder))


def holder(folder) -> Optional[Holder]:
    """Who holds `folder`'s lock (this process included), or None when it is
    free: a journal's unfinished batch is live only while its folder's lock
    is held, and crashed otherwise."""
    if holds(folder):
        return _read_info(folder) or Holder(os.getpid(), "", _command())
    if not lock_path(folder).exists():
        return None
    probe = FileLock(str(lock_path(folder)), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return _read_info(folder) or Holder(0, "?", "another run")
    except OSError:
        return None  # cannot open the lock file: nobody could take it to write either
    probe.release()
    return None


def busy_message(folder, found: Optional[Holder]) -> str:
    who = f" ({found.describe()})" if found and found.pid else ""
    return f"another run is using {folder}{who}; wait for it to finish, or stop it, then run again"


@contextmanager
def hold(folder, command: str = "", leftovers: bool = True) -> Iterator[list]:
    """Hold `folder`'s lock for the `with` block, or raise BusyError when
    another run holds it (exit 2, nothing done). The folder must exist.

    Taking it first also removes our own leftover `.part` temp files there
    and yields their names: a run that held the lock before was killed
    mid-write, and no other run can be writing them now. Taken again by
    the process that holds it, it yields []. `leftovers=False`: the caller
    lists the folder under the hold anyway and removes them from that
    listing (`remove_leftovers_among`), before it writes there."""
    key = _key(folder)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield []
        finally:
            with _held_guard:
                entry[1] -= 1
        return
    lock = _acquire(folder)
    with _held_guard:
        _held[key] = [lock, 1]
    try:
        _write_info(folder, command)
        yield remove_our_leftovers(folder) if leftovers else []
    finally:
        with _held_guard:
            del _held[key]
        lock.release()


@contextmanager
def hold_all(folders, command: str = "", leftovers: bool = True) -> Iterator[list]:
    """Hold the locks of all `folders` (a rename batch spanning them), taken
    in one order so that two runs cannot each hold half; all or none.
    Yields the leftover temp files removed, as paths (see hold)."""
    removed: list = []
    with ExitStack() as stack:
        for folder in [f for _, f in sorted({_key(f): f for f in folders}.items())]:
            names = stack.enter_context(hold(folder, command, leftovers))
            removed.extend(Path(folder) / name for name in names)
        yield removed


def _acquire(folder) -> FileLock:
    lock = FileLock(str(lock_path(folder)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BusyError(busy_message(folder, _read_info(folder))) from None
    except OSError as exc:
        raise UsageError(f"cannot lock folder {folder}: {exc.strerror or exc}") from None
    return lock


def _command() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def _write_info(folder, command) -> None:
    info = {"pid": os.getpid(), "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": f"{_command()}: {command}" if command else _command(), "host": socket.gethostname()}
    temp = _info_path(folder).with_name(_info_path(folder).name + ".tmp")
    try:
        temp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(temp, _info_path(folder))
    except OSError:
        # the note only improves the busy message; the lock itself holds
        # (a full disk: no half-written note left behind either)
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass


def _read_info(folder) -> Optional[Holder]:
    try:
        info = json.loads(_info_path(folder).read_text(encoding="utf-8"))
        return Holder(int(info["pid"]), str(info["since"]), str(info["command"]), str(info.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_our_leftovers(folder) -> list:
    """Delete the `.part` temp files our writes leave when killed mid-file
    (call only while holding the folder's lock); returns their names."""
    try:
        # names matched in C (filter with the pattern's own match): no entry object
        # nor Python step per file of 100,000
        names = os.listdir(folder)
    except OSError:
        return []
    return remove_leftovers_among(folder, names)


def remove_leftovers_among(folder, names) -> list:
    """remove_our_leftovers of the `.part` files among `names` (a listing
    of the folder made under its lock; its hidden names are enough)."""
    removed: list = []
    for name in list(filter(_OUR_PART.match, names)):
        path = os.path.join(folder, name)
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):   # a file, not through a link
                os.unlink(path)
                removed.append(name)
        except OSError:
            pass
    return removed

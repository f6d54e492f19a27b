"""File writes that never clobber and never leave half a file behind."""
import ctypes
import errno
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

CHUNK = 1 << 20
# The call exists but this file system does not do it (some network and FUSE ones).
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _no_replace_rename():
    """The platform's rename that refuses an existing target in one system
    call, as f(src_bytes, dst_bytes) -> 0 or -1 (errno set), or None.
    Linux: renameat2(RENAME_NOREPLACE) (glibc 2.28+); macOS: renamex_np
    (RENAME_EXCL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_noreplace = -100, 1
        func = libc.renameat2
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return lambda src, dst: func(at_fdcwd, src, at_fdcwd, dst, rename_noreplace)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_excl = 0x4
        func = libc.renamex_np
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        return lambda src, dst: func(src, dst, rename_excl)
    return None


_RENAME_NOREPLACE = _no_replace_rename()


def _no_replace_rename_at():
    """As _no_replace_rename, inside one open folder: (f, flag) where
    f(dir_fd, src_bytes, dir_fd, dst_bytes, flag) -> 0 or -1 (errno set),
    or None. The kernel then looks up
    only the names, not the whole path, at every move."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    # No argtypes: renamer_at always passes (int, bytes, int, bytes, int),
    # which ctypes converts as they are (C int, char *), and the checks
    # argtypes adds cost a third of the call at 100,000s of moves.
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        return libc.renameat2, 1   # RENAME_NOREPLACE
    if sys.platform == "darwin" and hasattr(libc, "renameatx_np"):
        return libc.renameatx_np, 0x4  # RENAME_EXCL
    return None


_RENAME_AT_CALL = _no_replace_rename_at()
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def renames_at_supported() -> bool:
    """Whether renamer_at gives a renamer (never where the path form is
    off: one switch for both)."""
    return _RENAME_AT_CALL is not None and _RENAME_NOREPLACE is not None


def renamer_at(dir_fd: int):
    """rename_no_replace of two names inside the folder open as `dir_fd`,
    as f(source, target) -> bool (False when this file system has no such
    call: the caller falls back to move_no_clobber on paths); None where
    renames_at_supported() is not. A batch calls it 100,000s of times: one
    Python frame per move, not four."""
    if _RENAME_AT_CALL is None or not renames_at_supported():
        return None
    call, flag = _RENAME_AT_CALL
    encoding, errors, get_errno = _FS_ENCODING, _FS_ERRORS, ctypes.get_errno

    def rename(source: str, target: str) -> bool:
        if call(dir_fd, source.encode(encoding, errors), dir_fd, target.encode(encoding, errors), flag) == 0:
            return True
        code = get_errno()
        if code in _UNSUPPORTED:
            return False
        raise OSError(code, os.strerror(code), source, None, target)
    return rename


def rename_no_replace(source, target) -> bool:
    """Rename `source` to `target` in one atomic system call that refuses an
    existing target (FileExistsError; FileNotFoundError when `source` is
    gone). False when the platform or file system has no such call: the
    caller falls back to link + unlink."""
    if _RENAME_NOREPLACE is None:
        return False
    if _RENAME_NOREPLACE(os.fsencode(source), os.fsencode(target)) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    # OSError(errno, ...) becomes FileExistsError / FileNotFoundError itself.
    raise OSError(code, os.strerror(code), os.fsdecode(source), None, os.fsdecode(target))


def temp_path_beside(target: Path) -> Path:
    """A fresh hidden temp file in the target's folder (same file system, so
    the final rename is atomic); the caller fills it and publishes it."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(name)


def new_file_mode() -> int:
    """The mode a file the user creates gets (0o666 less the umask): a temp
    file from temp_path_beside is private (0o600) until chmod-ed to this.
    Reads the umask by setting it, so call it before starting threads."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish_no_clobber(temp: Path, target: Path) -> None:
    """Move a complete temp file to `target`, failing with FileExistsError
    (and removing the temp file) if `target` already exists.

    The no-replace rename (or else a hard link) is atomic and refuses an
    existing target, so two writers can never both win; where neither is
    supported we fall back to a checked rename.
    """
    try:
        if rename_no_replace(temp, target):
            return
        os.link(temp, target)
    except FileExistsError:
        temp.unlink(missing_ok=True)
        raise
    except OSError:
        if target.exists():
            temp.unlink(missing_ok=True)
            raise FileExistsError(target) from None
        os.replace(temp, target)
        return
    temp.unlink()


def atomic_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` (contents and modification time) through a
    temp file; FileExistsError if `target` exists."""
    if target.exists():
        raise FileExistsError(target)
    temp = temp_path_beside(target)
    try:
        shutil.copy2(source, temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    publish_no_clobber(temp, target)


def same_content(a: Path, b: Path) -> bool:
    """True when both files hold the same bytes."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk_a, chunk_b = fa.read(CHUNK), fb.read(CHUNK)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


def copy_no_clobber(source: Path, target: Path) -> str:
    """Copy unless the target exists. Returns "copied", "identical" (the
    same bytes are already there: a re-run) or "conflict" (a different file
    holds the name: left alone, the caller reports it)."""
    try:
        atomic_copy(source, target)
        return "copied"
    except FileExistsError:
        return "identical" if same_content(source, target) else "conflict"


def move_no_clobber(source: Union[str, Path], target: Union[str, Path]) -> None:
    """Rename `source` to `target` in the same folder, never replacing an
    existing `target` (FileExistsError, `source` left in place).

    One system call where the platform has one (`rename_no_replace`).
    Otherwise a hard link refuses an existing target atomically and the
    source name is removed only once the link exists; where links are
    unsupported too we fall back to check-then-rename.
    """
    if rename_no_replace(source, target):
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except FileNotFoundError:
        raise
    except OSError:
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.rename(source, target)
        return
    os.unlink(source)


@dataclass
class CopyResult:
    """What copying a batch of files into a folder did, by file name."""

    copied: list = field(default_factory=list)
    identical: list = field(default_factory=list)  # already there, same bytes
    conflicts: list = field(default_factory=list)  # a different file holds the name
    failed: list = field(default_factory=list)     # (name, reason)

    def error_lines(self, output) -> list:
        """One line per file not copied, worded alike in every copy step."""
        return ([f"error: {name}: a different file already has this name in {output}; not overwritten"
                 for name in self.conflicts]
                + [f"error: {name}: copy failed: {reason}" for name, reason in self.failed])


def copy_files_into(sources, output, result=None) -> CopyResult:
    """Copy each source file into `output` under its own name, never
    overwriting; one file failing does not stop the others."""
    result = result if result is not None else CopyResult()
    lists = {"copied": result.copied, "identical": result.identical, "conflict": result.conflicts}
    for name in sources:
        source = Path(name)
        try:
            lists[copy_no_clobber(source, Path(output) / source.name)].append(source.name)
        except OSError as exc:
            result.failed.append((source.name, exc.strerror or str(exc)))
    return result

"""Every error the library raises on purpose, each carrying the exit code a
script returns for it (`cli.run` maps them: one line on stderr, no traceback).

- 0: all fine; 1 (`EXIT_FAILED`): the run went, but something failed or needs
  a look; 2 (`EXIT_USAGE`): bad input, nothing was done; 130: Ctrl-C.
"""
import errno

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# errno values of writes that no retry can cure: the disk (or quota) is
# full, or the device failed or is read-only
DISK_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EIO", "EROFS", "EFBIG")
                        if hasattr(errno, name))


class DPEError(Exception):
    """Base of the suite's errors; `exit_code` says what the script returns."""

    exit_code = EXIT_FAILED


class UsageError(DPEError):
    """Bad input from the user (a flag, a folder, an answer): exit code 2."""

    exit_code = EXIT_USAGE


class RunError(DPEError):
    """The run started but could not go on (a server that refuses, a folder
    that turned unwritable, a worker that crashed): exit code 1."""

    exit_code = EXIT_FAILED


class BusyError(UsageError):
    """Another run holds what this run needs (a folder's lock, a live rename
    batch): exit code 2, nothing was changed."""

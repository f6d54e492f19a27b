"""-q/--quiet and -v/--verbose, through `logging`, for every script.

By default a script prints the report users know, unchanged. With --quiet
that report goes to the `discordpicextract.report` logger at INFO, which the
WARNING level drops: what is left are warnings, errors (stderr, as always)
and the final summary (the SUMMARY level, written to stdout). With
--verbose the library's debug records are shown too, on stderr.

A step notes a one-line summary of its run (`note`); under --quiet it is
what the script prints, and main.py --pipeline builds its table from them.
"""
import contextlib
import io
import logging
import sys
from dataclasses import dataclass
from typing import Optional, TextIO, cast

ROOT = "discordpicextract"
SUMMARY = 35   # above WARNING: shown at every level
logging.addLevelName(SUMMARY, "SUMMARY")
log = logging.getLogger(ROOT)
report_log = logging.getLogger(f"{ROOT}.report")


@dataclass
class Note:
    """What one step did and what needs a look, in a few words each."""

    step: str
    did: str
    look: str = ""


_last: list = [None, None]   # [Note or None, error text or None]


def verbose() -> bool:
    """True under --verbose: reports add their per-file lines."""
    return log.isEnabledFor(logging.DEBUG)


def quiet() -> bool:
    """True under --quiet: the report is dropped, warnings and errors are not."""
    return not log.isEnabledFor(logging.INFO)


def note(step: str, did: str, look: str = "") -> None:
    _last[0] = Note(step, did, look)


def note_error(text: str) -> None:
    _last[1] = text


def clear_notes() -> None:
    _last[0] = _last[1] = None


def last_note() -> Optional[Note]:
    return _last[0]


def last_error() -> Optional[str]:
    return _last[1]


def summary(text: str) -> None:
    """A final-summary line: printed at every verbosity."""
    log.log(SUMMARY, text)


class _Formatter(logging.Formatter):
    def format(self, record):
        message = record.getMessage()
        if record.levelno == SUMMARY:
            return message
        return f"{record.levelname.lower()}: {message}"


class _ReportStream(io.TextIOBase):
    """sys.stdout under --quiet: every line of the report becomes an INFO
    record of the report logger (and is dropped by the WARNING level)."""

    def __init__(self, real):
        super().__init__()
        self._real = real
        self._partial = ""

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            report_log.info(line)
        return len(text)

    def flush(self):
        if self._partial:
            report_log.info(self._partial)
            self._partial = ""


@contextlib.contextmanager
def configured(quiet=False, verbose=False):
    """Set the suite's logging (and, with `quiet`, sys.stdout) for one run;
    everything is put back afterwards (main.py runs steps in-process)."""
    saved = (log.level, list(log.handlers), log.propagate, sys.stdout)
    real_out = sys.stdout
    to_err = logging.StreamHandler(sys.stderr)
    to_err.addFilter(lambda record: record.levelno != SUMMARY)
    to_out = logging.StreamHandler(real_out)
    to_out.addFilter(lambda record: record.levelno == SUMMARY)
    for handler in (to_err, to_out):
        handler.setFormatter(_Formatter())
    log.handlers = [to_err, to_out]
    log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if quiet:
        sys.stdout = cast(TextIO, _ReportStream(real_out))
    try:
        yield
    finally:
        if quiet:
            sys.stdout.flush()
        log.setLevel(saved[0])
        log.handlers, log.propagate, sys.stdout = saved[1], saved[2], saved[3]

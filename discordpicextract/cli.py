"""What every script's command line shares: exit codes, an argparse that
does not exit, prompts that appear only on a terminal, and the wrapper that
turns expected failures into one-line errors instead of tracebacks."""
import argparse
import functools
import gc
import getpass
import os
import sys
from pathlib import Path

import config
from discordpicextract import __version__, logs, settings
from discordpicextract.errors import (
    DISK_ERRNOS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    DPEError,
    UsageError,
)

EXIT_ITEMS_FAILED = EXIT_FAILED
__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_ITEMS_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError"]

# Set to 1 to answer prompts from a pipe (scripted answers, tests); by
# default prompts are shown only when stdin is a terminal.
INTERACTIVE_ENV = "DISCORDPICEXTRACT_INTERACTIVE"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting,
    so that `main(argv)` can return an exit code. Every script answers
    `--version`, `--config`, `-q/--quiet` and `-v/--verbose` (which `run`
    has already acted on before the script parses its flags)."""

    def __init__(self, *args, **kwargs):
        # a script may give -v/--verbose a meaning of its own: its flag wins
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"discordpicextract {__version__}")
        add_common_arguments(self)

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def add_common_arguments(parser):
    parser.add_argument("--config", metavar="PATH",
                        help=f"settings file (default: {settings.DEFAULT_FILE} in the working folder, if any); "
                             "flags override it")
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument("-q", "--quiet", action="store_true",
                        help="print only warnings, errors and the final summary")
    volume.add_argument("-v", "--verbose", action="store_true", help="print details too")


class _Prescan(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def prescan(argv):
    """--config, --quiet and --verbose, read before the script's own parser
    runs: the settings file sets that parser's defaults. A malformed use
    is left for the script's parser to report."""
    parser = _Prescan(add_help=False)
    add_common_arguments(parser)
    try:
        options, _rest = parser.parse_known_args(argv)
    except UsageError:
        options = argparse.Namespace(config=None, quiet=False, verbose=False)
    return options


def is_interactive(stdin=None) -> bool:
    """True when prompts may be shown."""
    if os.environ.get(INTERACTIVE_ENV) == "1":
        return True
    stream = stdin or sys.stdin
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError):
        return False


def ask(prompt, *, flag, default=None, parse=None, secret=False):
    """Ask for a value on the terminal, again and again until `parse` accepts it.
    The prompt and any complaint go to stderr: a report redirected to a file
    never hides a question.

    `flag` names the option that supplies the value unattended: without a
    terminal, a missing value is a UsageError naming it. `parse` turns the
    answer into a value or raises ValueError with a message to show.
    Pressing Enter takes `default` when there is one.
    """
    if not is_interactive():
        raise UsageError(f"missing value for {flag} (no terminal to ask on; pass {flag})")
    while True:
        answer = _read(prompt, secret).strip()
        if not answer and default is not None:
            answer = str(default)
        if not answer:
            print("  A value is required.", file=sys.stderr)
            continue
        try:
            return parse(answer) if parse else answer
        except ValueError as exc:
            print(f"  {exc}", file=sys.stderr)


def _read(prompt, secret):
    try:
        if secret and sys.stdin.isatty():
            return getpass.getpass(prompt)
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
    except EOFError:  # Ctrl-D at the hidden prompt (getpass)
        print(file=sys.stderr)
        line = ""
    if not line:
        raise UsageError(f"no answer to prompt {prompt.strip()!r} (end of input)")
    if not line.endswith("\n"):
        print(file=sys.stderr)
    return line.rstrip("\n")


def without_gc_passes(func):
    """`func` with the cyclic garbage collector paused while it runs (on
    again after, if it was on). A rename batch, or dedupe's records, are
    100,000s of objects that live to the run's end and hold no cycles:
    every collection pass over them would find nothing, and the passes
    cost as much as planning the batch (dedupe's cached re-run: a sixth)."""
    @functools.wraps(func)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return func(*args, **kwargs)
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            gc.enable()
    return paused


def run(main_body, argv=None):
    """Call `main_body(argv)` and map expected failures to exit codes.

    Any DPEError -> one line on stderr and its exit code (2 for bad input,
    1 for a run that failed); Ctrl-C -> 130; `--help`/`--version` -> 0.
    """
    _printable_output()
    words = sys.argv[1:] if argv is None else [str(a) for a in argv]
    options = prescan(words)
    try:
        found = settings.find(options.config)
        loaded = settings.load(found) if found else None
        with logs.configured(options.quiet, options.verbose), settings.applied(loaded, config):
            if found:
                logs.log.debug("settings from %s", found)
            logs.clear_notes()
            code = main_body(argv)
            if options.quiet:
                _print_note(logs.last_note())
            return code
    except DPEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        logs.note_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        # `script | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ITEMS_FAILED
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        # a full or failing disk anywhere in a step: one line, not a traceback
        # (every write goes through a temp file, so no real name is half-written)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where}: {exc.strerror or exc}; free some space (or check the disk) "
              "and run again", file=sys.stderr)
        logs.note_error(f"cannot write{where}: {exc.strerror or exc}")
        return EXIT_FAILED


def _print_note(note):
    """Under --quiet, a step's one-line summary is its whole report."""
    if note is not None:
        logs.summary(f"{note.step}: {note.did}" + (f"; needs a look: {note.look}" if note.look else ""))


def show(report) -> int:
    """Print a report a library call returned (e.g. renames.report.Report):
    its warnings on stderr, then its lines on stdout; return its exit code."""
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for line in report.lines:
        print(line)
    return report.exit_code


def _printable_output():
    """A file name the output encoding cannot show (undecodable bytes on
    Linux, 图表 on a cp1252 Windows console) is printed escaped instead of
    ending the run with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                pass


def argparse_type(parse):
    """Wrap a ValueError-raising parser as an argparse `type=`, so a bad
    flag value becomes a one-line usage error."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__.replace("parse_", "")
    return convert


def check_folder(path, hint="") -> str:
    """A folder that must exist and be readable, else a UsageError; `hint`
    (which flag chooses it) is added to the not-found message. Opening the
    folder proves it readable without listing it."""
    if not os.path.isdir(path):
        raise UsageError(f"folder not found: {path}" + (f" ({hint})" if hint else ""))
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read folder {path}: {exc.strerror or exc}") from None
    return path


def existing_folder(path) -> str:
    """argparse `type=` for a folder that must exist."""
    try:
        return check_folder(path)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_output_folder(source, output) -> None:
    """A copy step's --output: a folder (or not there yet), and not --source."""
    if Path(output).resolve() == Path(source).resolve():
        raise UsageError("--output must be a different folder from --source")
    if Path(output).exists() and not Path(output).is_dir():
        raise UsageError(f"--output is not a folder: {output}")


def make_output_folder(path, flag="--output") -> str:
    """Create an output folder (and its parents) if needed; a path that
    cannot be one (under a file, read-only, no permission) is a UsageError
    naming `flag`."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {flag} folder {path}: {exc.strerror or exc}") from None
    return path

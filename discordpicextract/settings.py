"""The settings file: `discordpicextract.toml` in the working folder, or the
file `--config PATH` names.

It sets what `config.py` sets (which keeps the built-in defaults), and flags
override it. `load` reads and checks the file (an unknown key or a wrong type
is a SettingsError naming the key and its line); `applied` puts the values
into the `config` module for the time of one run, so that every script's
defaults follow the file without each script reading it.

    days = 14
    timezone = "America/New_York"
    workers = 8

    [market]
    start = "09:30:00"
    end = "16:00:00"
    timezone = "America/New_York"

    [folders]                       # the folder set of the single channel (--channel)
    download = "spx-realtime-aws"
    clean = "spx-realtime-aws-clean"
    one_per_day = "spx-clean-1perDay"

    [folder_template]               # each [[channel]]'s folder set
    download = "{folder}"
    clean = "{folder}-clean"
    one_per_day = "{folder}-1perDay"

    [[channel]]
    id = "123456789012345678"
    folder = "signals"

    [[channel]]
    name = "spx-realtime-aws"
    guild = "数学家炒美股"
    folder = "spx"
"""
import contextlib
import re
import sys
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Optional

from discordpicextract.errors import UsageError
from discordpicextract.timestamps.zone import check_zone_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10
    import tomli as tomllib

DEFAULT_FILE = "discordpicextract.toml"
DEFAULT_TEMPLATE = {"download": "{folder}", "clean": "{folder}-clean", "one_per_day": "{folder}-1perDay"}
FOLDER_ROLES = ("download", "clean", "one_per_day")
MAX_DAYS = 36500


class SettingsError(UsageError):
    """A settings file that cannot be used: exit 2, nothing was done."""


# --- value checks: each returns the value or raises ValueError(what is wrong) ---

def _number(value, low, high, whole=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        raise ValueError(f"expected {'a whole number' if whole else 'a number'}, got {_shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"expected a number from {low:g} to {high:g}, got {value!r}")
    return value


def _days(value):
    if not isinstance(value, bool) and isinstance(value, (int, float)) and value <= 0:
        raise ValueError(f"expected a number greater than 0, got {value!r}")
    return _number(value, 0, MAX_DAYS)


def _workers(value):
    return _number(value, 1, 64, whole=True)


def _max_wait(value):
    return _number(value, 0.001, 86400)


def _megabytes(value):
    return _number(value, 0.001, 1 << 20)


def _hours(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        raise ValueError("expected a number of hours other than 0")
    return _number(value, -24 * 366 * 100, 24 * 366 * 100)


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {_shown(value)}")
    return value.strip()


def _zone(value):
    return check_zone_name(_text(value))


def _clock(value):
    value = _text(value)
    try:
        if len(value) != 8:
            raise ValueError
        time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a time HH:MM:SS, got {value!r}") from None
    return value


def _folder(value):
    value = _text(value)
    if value in (".", "..") or "\0" in value:
        raise ValueError(f"not a usable folder name: {value!r}")
    return value


def _template(value):
    value = _folder(value)
    try:
        if value.format(folder="x") == value:
            raise ValueError
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"expected a folder name holding {{folder}} (and no other {{...}}), got {value!r}") from None
    return value


def _channel_id(value):
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"\d{15,21}", text.strip()):
        raise ValueError(f"expected a channel ID (15 to 21 digits, best quoted), got {_shown(value)}")
    return text.strip()


def _shown(value):
    kind = {bool: "a boolean", str: "a string", int: "a whole number", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})" if not isinstance(value, (list, dict)) else kind


# (table, key) -> (check, config attribute)
TOP = {"days": (_days, "DEFAULT_DAYS"), "timezone": (_zone, "TIMEZONE"),
       "workers": (_workers, "DEFAULT_WORKERS"), "max_wait": (_max_wait, "MAX_RATE_LIMIT_WAIT"),
       "adjust_hours": (_hours, "DEFAULT_ADJUST_HOURS"), "max_image_mb": (_megabytes, "MAX_IMAGE_MB")}
TABLES: dict = {
    "market": {"start": (_clock, "TRADING_START"), "end": (_clock, "TRADING_END"),
               "timezone": (_zone, "MARKET_TIMEZONE")},
    "folders": {"download": (_folder, "DEFAULT_OUTPUT_DIR"), "clean": (_folder, "CLEAN_OUTPUT_DIR"),
                "one_per_day": (_folder, "ONE_PER_DAY_DIR")},
    "folder_template": {role: (_template, None) for role in FOLDER_ROLES},
}
CHANNEL_KEYS = {"id": _channel_id, "name": _text, "guild": _text, "folder": _folder, "days": _days}


@dataclass(frozen=True)
class Channel:
    """A configured channel: an ID, or a name and its server; its folder."""

    folder: str
    id: str = ""
    name: str = ""
    guild: str = ""
    days: Optional[float] = None
    line: Optional[int] = None

    @property
    def target(self) -> str:
        return self.id or self.name


@dataclass
class Settings:
    path: Optional[Path] = None
    values: dict = field(default_factory=dict)      # config attribute -> value
    template: dict = field(default_factory=lambda: dict(DEFAULT_TEMPLATE))
    channels: list = field(default_factory=list)    # [Channel]

    def folder_set(self, channel: Channel) -> tuple:
        """(download, clean, one per day) folders of a configured channel."""
        return tuple(self.template[role].format(folder=channel.folder) for role in FOLDER_ROLES)


# --- reading ---------------------------------------------------------------------

def find(path=None, cwd=None) -> Optional[Path]:
    """The settings file to use: `path` (it must exist), else DEFAULT_FILE in
    the working folder when there is one, else None."""
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise SettingsError(f"--config file not found: {path}")
        return candidate
    candidate = Path(cwd or ".") / DEFAULT_FILE
    return candidate if candidate.is_file() else None


def load(path) -> Settings:
    """Read and check a settings file; SettingsError for anything wrong."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, text, path)


def parse(data: dict, text: str = "", path=None) -> Settings:
    """Settings from parsed TOML (`text` is the source, for line numbers)."""
    where = _Locator(text, path)
    settings = Settings(Path(path) if path else None)
    for key, value in data.items():
        if key in TOP:
            check, attribute = TOP[key]
            settings.values[attribute] = where.checked(check, value, key)
        elif key in TABLES:
            _parse_table(settings, key, value, where)
        elif key == "channel":
            settings.channels = _parse_channels(value, where)
        else:
            where.fail(key, f"unknown key {key!r} (known: {', '.join([*TOP, *TABLES, 'channel'])})")
    _check_folders(settings, where)
    return settings


def _parse_table(settings, name, value, where):
    if not isinstance(value, dict):
        where.fail(name, f"{name} must be a table ([{name}]), got {_shown(value)}")
    known = TABLES[name]
    for key, item in value.items():
        if key not in known:
            where.fail(f"{name}.{key}", f"unknown key {key!r} in [{name}] (known: {', '.join(known)})")
        check, attribute = known[key]
        checked = where.checked(check, item, f"{name}.{key}")
        if name == "folder_template":
            settings.template[key] = checked
        else:
            settings.values[attribute] = checked


def _parse_channels(value, where):
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        where.fail("channel", "channel must be [[channel]] tables")
    channels = []
    for index, table in enumerate(value):
        line = where.line_of("channel", index=index)
        label = f"[[channel]] number {index + 1}"
        fields = {}
        for key, item in table.items():
            if key not in CHANNEL_KEYS:
                where.fail(f"channel.{key}", f"unknown key {key!r} in {label} (known: {', '.join(CHANNEL_KEYS)})",
                           index=index)
            fields[key] = where.checked(CHANNEL_KEYS[key], item, f"channel.{key}", index=index)
        if "folder" not in fields:
            where.fail("channel", f"{label} has no folder = \"...\"", index=index)
        if ("id" in fields) == ("name" in fields):
            where.fail("channel", f"{label} needs either id, or name and guild", index=index)
        if "name" in fields and "guild" not in fields:
            where.fail("channel", f"{label} names a channel without its guild (guild = \"server name\")",
                       index=index)
        channels.append(Channel(line=line, **fields))
    return channels


def _check_folders(settings, where):
    """No two channels may share a folder: their images would mix."""
    seen: dict[str, Channel] = {}
    for channel in settings.channels:
        for folder in settings.folder_set(channel):
            key = folder.casefold()
            if key in seen and seen[key] is channel:
                raise SettingsError(where.prefix(channel.line) +
                                    f"[folder_template] gives two folders of this channel the same name "
                                    f"{folder!r} (download, clean and one_per_day must differ)")
            if key in seen:
                raise SettingsError(where.prefix(channel.line) +
                                    f"channel folder {folder!r} is also used by the channel at line "
                                    f"{seen[key].line} (each channel needs its own folders)")
            seen[key] = channel


class _Locator:
    """Finds the line of a key in the TOML source, for error messages
    (tomllib gives values, not positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text, path):
        self.lines = text.splitlines()
        self.path = path

    def prefix(self, line):
        name = str(self.path) if self.path else "settings"
        return f"{name}:{line}: " if line else f"{name}: "

    def line_of(self, dotted, index=None):
        """The line of `dotted` ("key", "table.key", "channel.key" within
        the index-th [[channel]]), else its table header's, else None."""
        parts = dotted.split(".")
        table, key = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        current, count, header_line = "", -1, None
        for number, raw in enumerate(self.lines, 1):
            header = self._HEADER.match(raw)
            if header:
                current = header.group(2).strip().strip("\"'")
                if table and current == f"{table}.{key}":   # [folders.sub]: a table where a value belongs
                    return number
                if current == (table or key):
                    count += 1 if header.group(1) == "[[" else 0
                    if index is None or count == index:
                        header_line = header_line or number
                continue
            in_place = (current == table and (index is None or count == index)) if table else current == ""
            if in_place and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", raw):
                return number
            if not table and current == "" and re.match(rf"^\s*{re.escape(key)}\s*\.", raw):
                return number
            if table and current == "" and re.match(rf"^\s*{re.escape(table)}\s*\.\s*{re.escape(key)}\s*=", raw):
                return number
        return header_line

    def fail(self, dotted, message, index=None):
        raise SettingsError(self.prefix(self.line_of(dotted, index)) + message)

    def checked(self, check, value, dotted, index=None):
        try:
            return check(value)
        except ValueError as exc:
            self.fail(dotted, f"{dotted}: {exc}", index)
            raise  # unreachable: fail raises


# --- applying ----------------------------------------------------------------------

@contextlib.contextmanager
def applied(settings: Optional[Settings], module):
    """Set `module`'s (config's) attributes from `settings` for the time of
    the block, then restore them: a test, or main.py running several
    steps, must not carry one run's file into the next."""
    if settings is None or not settings.values:
        yield
        return
    saved = {name: getattr(module, name) for name in [*settings.values, "PIPELINE_FOLDERS"]}
    try:
        for name, value in settings.values.items():
            setattr(module, name, value)
        module.PIPELINE_FOLDERS = (module.DEFAULT_OUTPUT_DIR, module.CLEAN_OUTPUT_DIR, module.ONE_PER_DAY_DIR)
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)

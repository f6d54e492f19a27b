"""The zone a folder's names are written in, recorded beside them.

A name says `2025-03-10_14-30-00`; in which zone is known only to the tool
that wrote it. The downloader records it in `config.FOLDER_INFO_FILE`
(`{"names_zone": "America/New_York"}`), the copy steps carry it to their
outputs, a zone conversion updates it, and every step reads names in it.
A folder without a record is read in `config.TIMEZONE` (what every folder
written before the record existed was named in, unless told otherwise).
"""
import json
import os
import re
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import config
from discordpicextract import fileops
from discordpicextract.errors import UsageError

KEY = "names_zone"


def info_path(folder) -> Path:
    return Path(folder) / config.FOLDER_INFO_FILE


# Names zoneinfo reads on some machines that do not mean one zone everywhere:
# the machine's own zone, and the leap-second ("right/") and bare "posix"
# copies of the database. Recorded in a folder, they would read the same
# names differently on the next machine.
_MACHINE_ZONES = ("localtime", "posixrules")
_MACHINE_PREFIXES = ("right/", "posix/")


def check_zone_name(name) -> str:
    """`name` if it is an IANA zone zoneinfo knows; ValueError otherwise
    (every place that takes a zone, flag or settings file, asks this)."""
    text = str(name)
    if text in _MACHINE_ZONES:
        raise ValueError(f"{text!r} is this machine's setting, not a time zone name; use an IANA name "
                         "like America/New_York")
    if text.startswith(_MACHINE_PREFIXES):
        raise ValueError(f"{text!r} is a variant copy of the zone database, not a plain zone name; "
                         f"use {text.split('/', 1)[1]!r}")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {text!r} (use an IANA name like America/New_York)") from None
    return text


def _read_info(folder) -> dict:
    path = info_path(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc} "
                         f"(fix or remove it; it records the zone of the names)") from None
    if not isinstance(data, dict):
        raise UsageError(f"cannot read {path}: not a JSON object (fix or remove it)")
    return data


def read_zone(folder) -> Optional[str]:
    """The zone recorded for `folder`'s names, or None when none is."""
    recorded = _read_info(folder).get(KEY)
    if recorded is None:
        return None
    try:
        return check_zone_name(recorded)
    except ValueError as exc:
        raise UsageError(f"{info_path(folder)}: {exc}") from None


def record_zone(folder, zone) -> None:
    """Record `zone` for `folder`'s names (other keys kept), written through
    a temp file so a crash never leaves half a record."""
    zone = check_zone_name(zone)
    data = _read_info(folder)
    if data.get(KEY) == zone:
        return
    data[KEY] = zone
    path = info_path(folder)
    temp = fileops.temp_path_beside(path)
    try:
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.chmod(temp, fileops.new_file_mode())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def folder_zone(folder, override=None) -> str:
    """The zone to read `folder`'s names in: `override` (a --timezone flag),
    else the recorded one, else config.TIMEZONE."""
    return override or read_zone(folder) or config.TIMEZONE


def common_zone(folders, override=None) -> str:
    """The one zone the names of every folder in `folders` are in. A rename
    batch over folders named in different zones would shift one of them
    wrongly: a UsageError naming each folder and its zone."""
    if override:
        return override
    zones = {str(folder): folder_zone(folder) for folder in folders}
    distinct = sorted(set(zones.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{folder} ({zone})" for folder, zone in zones.items())
        raise UsageError(f"the folders' names are recorded in different zones: {listed}; convert them to "
                         f"one zone first (adjust_timestamps.py --folders F --from-zone Z) or pass --timezone")
    return distinct[0] if distinct else config.TIMEZONE


def has_named_images(folder) -> bool:
    """Whether `folder` already holds a pipeline-named image (a zone record
    may then only confirm what those names are in)."""
    from discordpicextract import naming

    try:
        with os.scandir(folder) as entries:
            return any(not entry.name.startswith(".") and naming.is_image_name(entry.name)
                       and naming.try_parse_name(entry.name) is not None for entry in entries)
    except FileNotFoundError:
        return False


def claim_zone(folder, zone, *, source="") -> None:
    """Record `zone` for a folder about to receive names in it (a download,
    a copy step's output). A folder whose names are in another zone (its
    record, or config.TIMEZONE for unrecorded names) would end with two
    zones under one record: a UsageError, nothing written."""
    zone = check_zone_name(zone)
    present = read_zone(folder)
    if present is None and has_named_images(folder):
        present = config.TIMEZONE
    if present is not None and present != zone:
        origin = f" ({source})" if source else ""
        raise UsageError(f"{folder} holds names written in {present}; adding names in {zone}{origin} would "
                         f"mix two zones in one folder. Convert it first (adjust_timestamps.py --folders "
                         f"{folder} --from-zone {present} --to-zone {zone}) or use another folder")
    record_zone(folder, zone)


def market_date_reader(names_zone):
    """A function giving the market date (config.MARKET_TIMEZONE) of a name
    time written in `names_zone`: a trading day is the market's date, not
    the names' (a Friday afternoon in New York is Saturday in Shanghai)."""
    from discordpicextract.market import market_reader

    if str(names_zone) == config.MARKET_TIMEZONE:
        return lambda stamp: stamp.date()
    market_of = market_reader(names_zone)  # the zones looked up once, not per file
    return lambda stamp: market_of(stamp).date()


def add_timezone_argument(parser, what="the names"):
    """--timezone ZONE: read names in ZONE instead of the recorded zone."""
    parser.add_argument("--timezone", type=_argparse_zone, metavar="ZONE",
                        help=f"read {what} in ZONE (default: the folder's recorded zone, else {config.TIMEZONE})")


def _argparse_zone(text):
    import argparse

    try:
        return check_zone_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# A rename batch that rewrites names into another zone says so in its label,
# so that reverting it (--undo, --recover revert) puts the record back: the
# zone the folders were read in before (when it was not the from-zone).
_CHANGE = re.compile(r"\[names zone (\S+) -> (\S+)\]")
_BEFORE = re.compile(r"\[zone before (\S+)\]")


def change_label(old, new, before=None) -> str:
    return f"[names zone {old} -> {new}]" + (f" [zone before {before}]" if before and before != old else "")


def restore_after_revert(folder, label) -> None:
    found = _CHANGE.search(label or "")
    if found:
        before = _BEFORE.search(label or "")
        record_zone(folder, before.group(1) if before else found.group(1))


def last_conversion(folder):
    """(old, new) zones of the newest zone conversion that renamed in
    `folder` and was not undone or reverted since, or None."""
    from discordpicextract.renames.journal import older_batches, read_journal

    for batches in (read_journal(folder), *older_batches(folder)):
        undone = {batch.undoes for batch in batches if batch.undoes}
        for batch in reversed(batches):
            found = _CHANGE.search(batch.label or "")
            if found and batch.status != "reverted" and batch.id not in undone and batch.done_moves():
                return found.group(1), found.group(2)
    return None


def refuse_second_conversion(folder, from_zone) -> None:
    """A folder whose names a conversion already moved out of `from_zone`
    (the recorded zone is still that conversion's) would be shifted a
    second time by reading them as `from_zone` again (a rerun of the same
    command): a UsageError, nothing renamed."""
    last = last_conversion(folder)
    if last and last[0] == from_zone and read_zone(folder) == last[1]:
        raise UsageError(f"{folder}: its names were already converted from {from_zone} to {last[1]} (recorded "
                         f"in {config.FOLDER_INFO_FILE}); converting again would shift them twice. To redo it, "
                         f"undo first: adjust_timestamps.py --folders {folder} --undo")

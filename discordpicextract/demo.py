"""The demo's pieces (no printing: main.py prints): its folders, which a
later demo may replace only when they hold nothing but what a demo wrote,
and a local emulated Discord with a generated channel."""
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import config
from discordpicextract.errors import UsageError

DEMO_ROOT = "demo-output"
DEMO_DAYS = 30
# Written into every folder the demo fills, so that a later demo may replace
# them; a folder without it is never deleted. While the demo runs it says
# UNFINISHED; at the end it lists what the demo wrote.
DEMO_MARKER = ".discordpicextract-demo"
UNFINISHED = {"unfinished": True}


@dataclass(frozen=True)
class DemoDiscord:
    """A running emulator's address, its made-up token and the generated channel."""

    api_base: str
    token: str = field(repr=False)
    guild: str
    channel: str


@contextmanager
def demo_discord(days=DEMO_DAYS) -> Iterator[DemoDiscord]:
    """A local Discord emulator on 127.0.0.1 with a channel of `days` of
    generated posts, stopped on exit. No account, no network."""
    from discordpicextract.emulator import DiscordEmulator, build_demo_channel

    token = "demo-" + secrets.token_hex(16)  # made up at run time, valid only for this emulator
    # a bot token: the way README recommends (and no user-token warning)
    with DiscordEmulator(token=token, token_kind="bot") as emu:
        generated = build_demo_channel(emu, days=days)
        yield DemoDiscord(emu.api_base, token, generated.guild["name"], generated.channel["name"])


def demo_folders(root):
    """The demo's download, clean and one-per-day folders, inside `root`."""
    return [Path(root) / name for name in config.PIPELINE_FOLDERS]


def prepare_demo_folders(folders):
    """Each demo generates a new channel (new IDs, times up to now): mixed
    with an earlier demo's files it would look like a channel posting every
    image twice. So an earlier demo's folder is replaced, but only when it
    holds nothing but what that demo wrote (its DEMO_MARKER lists it); any
    other non-empty folder is refused, never deleted. Returns the folders
    replaced."""
    for folder in folders:
        if folder.is_file() or (folder.is_dir() and not _only_demo_files(folder)):
            raise UsageError(f"{folder} holds files the demo did not make: "
                             f"pass --output NEW_FOLDER for the demo's files (or delete it yourself)")
    replaced = []
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)
            replaced.append(folder)
        folder.mkdir(parents=True)
        (folder / DEMO_MARKER).write_text(json.dumps(UNFINISHED) + "\n")
    return replaced


def record_demo_files(folders):
    """After a demo: list in each folder's marker what the demo wrote there."""
    for folder in folders:
        names = sorted(name for name in os.listdir(folder) if name != DEMO_MARKER)
        (folder / DEMO_MARKER).write_text(json.dumps(names, ensure_ascii=False, indent=0) + "\n")


def _only_demo_files(folder):
    present = set(os.listdir(folder)) - {DEMO_MARKER}
    if not present:
        return True
    try:
        recorded = json.loads((folder / DEMO_MARKER).read_text())
    except (OSError, ValueError):
        return False  # no marker, or a foreign one
    if recorded == UNFINISHED:
        # a demo stopped mid-run (killed, Ctrl-C) in the folder it had
        # emptied: what is there is what a demo writes
        return all(_demo_like(name) for name in present)
    return isinstance(recorded, list) and present <= set(recorded)


def _demo_like(name) -> bool:
    from discordpicextract import naming

    return name.startswith(".") or naming.is_image_name(name) or name == "messages.csv"


# The stretch of trading dates (first index, count) whose names the demo
# rewrites in UTC, as the old tool wrote them, for verify to find.
OLD_TOOL_STRETCH = (12, 3)


def plan_old_tool_stretch(folder, stretch=OLD_TOOL_STRETCH, names_zone=None):
    """(plan, dates): renames that put the names of `stretch` trading dates
    of `folder` in UTC, as the old tool named files (the archive follows,
    as it does for every rename of ours). Nothing is touched."""
    from discordpicextract import naming
    from discordpicextract.renames.plan import plan_mapping
    from discordpicextract.timestamps import convert

    names_zone = names_zone or config.TIMEZONE
    listing = naming.list_images(folder)
    dates = sorted({image.date for image in listing.images})
    first, count = stretch
    chosen = set(dates[first:first + count])
    picked = [image for image in listing.images if image.date in chosen]
    names = {image.name for image in picked}
    staying = [name for name in os.listdir(folder) if name not in names]
    conversion = convert.plan_conversion(picked, staying, names_zone, "UTC")
    return plan_mapping(conversion.targets.mapping, set(os.listdir(folder))), sorted(chosen)

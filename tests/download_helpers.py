"""Plain helpers shared by the download tests (test_download_*.py, test_main_*.py): a started
emulator with a guild and a channel (start_world; the `world` fixture in conftest.py wraps it),
and a way to run main.py in-process."""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers import image_bytes

import main
from discordpicextract.emulator import DiscordEmulator

UTC = timezone.utc
GUILD = "数学家炒美股"
CHANNEL = "spx-realtime-aws"


@dataclass
class World:
    emu: DiscordEmulator
    guild: dict
    channel: dict
    token: str

    def post(self, when, *names, channel=None, seed=None, **kwargs):
        """A message at `when` with one PNG attachment per name (distinct images)."""
        attachments = []
        for number, name in enumerate(names):
            pixels = image_bytes(seed=(seed if seed is not None else _next_seed()) + number * 7919, size=(64, 48))
            attachments.append((name, pixels, "image/png"))
        return self.emu.add_message((channel or self.channel)["id"], when,
                                    attachments=attachments, **kwargs)


_SEED = [1000]


def _next_seed():
    _SEED[0] += 1
    return _SEED[0]


def start_world(monkeypatch, *, kind="user", route_limit=(50, 1.0), **options):
    token = "tok-" + secrets.token_hex(8)
    emu = DiscordEmulator(token=token, token_kind=kind, route_limit=route_limit, **options).start()
    guild = emu.add_guild(GUILD)
    channel = emu.add_channel(guild["id"], CHANNEL)
    monkeypatch.setenv("DISCORD_API_BASE", emu.api_base)
    monkeypatch.setenv("DISCORD_BOT_TOKEN" if kind == "bot" else "DISCORD_USER_TOKEN", token)
    return World(emu, guild, channel, token)


def run_main(capsys, *argv):
    """(exit code, stdout, stderr) of main.main(argv)."""
    code = main.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def now():
    return datetime.now(UTC)


def ago(**delta):
    return now() - timedelta(**delta)


def images_in(folder):
    """Sorted names of the image files in `folder` (hidden files and the
    messages.csv beside the images excluded)."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and p.name != "messages.csv")


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def digests(folder):
    return {name: sha256_of(Path(folder) / name) for name in images_in(folder)}


def api_requests(emu, path_part=""):
    return [r for r in emu.requests if r.server == "api" and path_part in r.path]


def cdn_requests(emu):
    return [r for r in emu.requests if r.server == "cdn"]


ROOT = Path(__file__).resolve().parent.parent

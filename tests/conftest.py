"""Shared test fixtures, found by pytest without an import: `make_image`, the
isolated environment every test runs in, `emulator`, `world` and `fast_retries`.
Plain helper functions live in helpers.py and download_helpers.py."""
import secrets

import pytest
from download_helpers import start_world
from helpers import write_image

from discordpicextract.discord import client as discord_client
from discordpicextract.emulator import DiscordEmulator


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's token, .env or prompts."""
    for name in ("DISCORD_USER_TOKEN", "DISCORD_BOT_TOKEN", "DISCORD_API_BASE",
                 "DISCORDPICEXTRACT_INTERACTIVE"):
        # setenv first so that the original state is restored even when a
        # test (load_dotenv) sets the variable behind monkeypatch's back.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emulator():
    """A started DiscordEmulator with a random fake user token (`emulator.token`, built
    at run time, never a real-looking token); rate limits on with the default bucket."""
    emu = DiscordEmulator(token="tok-" + secrets.token_hex(8), token_kind="user")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def world(monkeypatch):
    """An emulator (generous rate limit) with 数学家炒美股 / #spx-realtime-aws, env pointing at it."""
    w = start_world(monkeypatch)
    try:
        yield w
    finally:
        w.emu.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(discord_client, "BACKOFF_BASE", 0.01)

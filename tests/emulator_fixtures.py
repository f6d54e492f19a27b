"""Pytest fixture `emulator`: a started DiscordEmulator with a random fake user token.

Imported by tests/conftest.py, so every test module can ask for `emulator`.
Its token is `emulator.token` (built at run time, never a real-looking token);
rate limits are on with the contract's default bucket (5 per second).
"""
import secrets

import pytest

from discordpicextract.emulator import DiscordEmulator


@pytest.fixture
def emulator():
    emu = DiscordEmulator(token="tok-" + secrets.token_hex(8), token_kind="user")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()

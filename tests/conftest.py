"""Shared test fixtures: real image files written with Pillow in tmp_path."""
import random
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_SPEC = ROOT.parent / "shared" / "discord-api-spec" / "openapi.json"

# Fixture `emulator`: a started DiscordEmulator with a random fake user token.
from emulator_fixtures import emulator


def chart_image(seed: int, size=(160, 100)) -> Image.Image:
    """A small chart-like picture: a random walk line on a white ground.
    Different seeds give visually different images (different pHash)."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    y = height / 2
    points = []
    for x in range(0, width, 4):
        y = min(height - 5, max(5, y + rng.uniform(-12, 12)))
        points.append((x, y))
    draw.line(points, fill=(rng.randrange(200), rng.randrange(200), 255), width=3)
    for _ in range(3):
        x0, y0 = rng.randrange(width - 20), rng.randrange(height - 20)
        draw.rectangle([x0, y0, x0 + 15, y0 + 15], fill=(255, rng.randrange(255), 0))
    return image


def write_image(path, seed=0, size=(160, 100), fmt=None) -> Path:
    """Write a real image file (format from the extension unless `fmt`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = chart_image(seed, size)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, fmt or "JPEG", quality=90)
    else:
        image.save(path, fmt)
    return path


def image_bytes(seed=0, size=(160, 100), fmt="PNG") -> bytes:
    import io

    buffer = io.BytesIO()
    image = chart_image(seed, size)
    image.save(buffer, fmt)
    return buffer.getvalue()


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


def fill(folder, names):
    """Write a small distinct real image under each name in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        write_image(folder / name, seed=seed, size=(40, 30))
    return folder


def contents(folder):
    """{name: sha256} of the visible files (hidden bookkeeping excluded):
    equal before and after a rename batch means nothing was lost or merged."""
    import hashlib

    return {entry.name: hashlib.sha256(entry.read_bytes()).hexdigest()
            for entry in folder.iterdir() if not entry.name.startswith(".") and entry.is_file()}


def n(stamp, original="chart.png"):
    """A pipeline name from an ISO time: n("2025-03-10T08:00:00")."""
    from datetime import datetime

    from discordpicextract import naming

    return naming.format_name(datetime.fromisoformat(stamp), original)

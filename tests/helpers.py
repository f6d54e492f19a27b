"""Plain helpers shared by the tests (imported normally: `from helpers import ...`).
Fixtures live in conftest.py, where pytest finds them without an import."""
import random
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEC = ROOT.parent / "shared" / "discord-api-spec" / "openapi.json"


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

"""Chart screenshot look-alikes: the images the generated channels post."""
from __future__ import annotations

import functools
import io
import random
from typing import Any, Optional

Candle = tuple[float, float, float, float]      # open, high, low, close
UP, DOWN, AVERAGE = (38, 166, 154), (239, 83, 80), (255, 183, 77)
DARK = ((19, 23, 34), (42, 46, 57), (200, 204, 214))          # background, grid, text
LIGHT = ((255, 255, 255), (226, 229, 236), (40, 44, 52))


def _random_candles(rng: random.Random) -> list[Candle]:
    """A random walk of 28-64 candles around an S&P-like price."""
    count = rng.randint(28, 64)
    price = rng.uniform(3800, 6000)
    vol = price * rng.uniform(0.0008, 0.0025)
    drift = rng.uniform(-0.4, 0.4) * vol
    candles = []
    for _ in range(count):
        close = price + rng.gauss(drift, vol)
        high = max(price, close) + abs(rng.gauss(0, vol * 0.6))
        low = min(price, close) - abs(rng.gauss(0, vol * 0.6))
        candles.append((price, high, low, close))
        price = close
    return candles


class _Plot:
    """The chart's drawing area, price scale and Pillow drawing context."""

    def __init__(self, draw: Any, width: int, height: int, candles: list[Candle]):
        self.draw, self.width = draw, width
        self.top, self.bottom, self.left, self.right = 18, height - 12, 4, width - 48
        self.lo = min(c[2] for c in candles)
        self.span = (max(c[1] for c in candles) - self.lo) or 1.0

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / self.span * (self.bottom - self.top)

    def grid(self, colour: tuple[int, int, int]) -> None:
        for gy in range(self.top, self.bottom, 28):
            self.draw.line([(self.left, gy), (self.right, gy)], fill=colour)
        for gx in range(self.left, self.right, 56):
            self.draw.line([(gx, self.top), (gx, self.bottom)], fill=colour)

    def candles(self, candles: list[Candle]) -> None:
        """The candles and a moving average line over them."""
        step = (self.right - self.left) / len(candles)
        body = max(1.0, step * 0.6)
        average: Optional[float] = None
        line = []
        for i, (o, h, low, c) in enumerate(candles):
            x = self.left + step * (i + 0.5)
            colour = UP if c >= o else DOWN
            self.draw.line([(x, self.y(h)), (x, self.y(low))], fill=colour)
            y0, y1 = sorted((self.y(o), self.y(c)))
            self.draw.rectangle([x - body / 2, y0, x + body / 2, max(y1, y0 + 1)], fill=colour)
            average = c if average is None else average * 0.85 + c * 0.15
            line.append((x, self.y(average)))
        self.draw.line(line, fill=AVERAGE, width=2)

    def price_scale(self, candles: list[Candle], text: tuple[int, int, int]) -> None:
        last = candles[-1][3]
        self.draw.rectangle([self.right + 2, self.y(last) - 6, self.width - 2, self.y(last) + 6],
                            fill=UP if last >= candles[0][0] else DOWN)
        self.draw.text((self.right + 4, self.y(last) - 5), f"{last:.1f}", fill=(255, 255, 255))
        for gy in range(self.top, self.bottom, 56):
            price = self.lo + (self.bottom - gy) / (self.bottom - self.top) * self.span
            self.draw.text((self.right + 4, gy - 5), f"{price:.0f}", fill=text)


@functools.lru_cache(maxsize=8192)
def chart_image_bytes(key: int, width: int = 400, height: int = 250, label: str = "",
                      fmt: str = "PNG") -> bytes:
    """A candlestick chart screenshot look-alike; distinct per `key` (cached)."""
    from PIL import Image, ImageDraw

    rng = random.Random(key)
    background, grid, text = DARK if rng.random() < 0.7 else LIGHT
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    candles = _random_candles(rng)
    plot = _Plot(draw, width, height, candles)
    plot.grid(grid)
    plot.candles(candles)
    plot.price_scale(candles, text)
    draw.text((6, 3), label or f"SPX 5m  #{key % 100000}", fill=text)
    buffer = io.BytesIO()
    if fmt.upper() == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()

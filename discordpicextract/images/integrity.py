"""One integrity check for every image the suite reads or saves: the
downloader refuses a body that fails it, dedupe and extract report a file
that fails it.

`verify_image(data)` is cheap where the format allows: a PNG's chunk CRCs
up to IEND (far cheaper than decoding the pixels); formats without
checksums (JPEG, GIF, WebP, BMP...) get a check of their tail (a truncated
file decodes "fine" in Pillow, padded with grey) and are decoded, a JPEG at
1/8 scale (its entropy data is still read to the end).

Limit: a PNG whose chunks carry correct CRCs over bad compressed data (a
broken encoder, not transfer or disk damage) passes; only decoding every
pixel (dedupe's --no-fast-path) finds it.
"""
import hashlib
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


class DamagedImage(ValueError):
    """The bytes are not a complete, decodable image; str() says why in one
    short line."""


def verify_image(data: bytes) -> str:
    """Pillow's format name of the image in `data` (e.g. "PNG", "JPEG"), or
    DamagedImage when it is cut, damaged or no image at all."""
    try:
        return _verify_structure(data)
    except Exception as exc:  # Pillow raises many kinds for bad files
        raise DamagedImage(describe(exc)) from None


@dataclass(frozen=True)
class FileCheck:
    """Digest and integrity verdict of one file (error is None when sound)."""

    digest: Optional[str]
    error: Optional[str]

    @property
    def ok(self) -> bool:
        return self.error is None


def check_file(path) -> FileCheck:
    """Read the file once: its blake2b digest (dedupe's exact-copy key)
    plus `verify_image`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileCheck(None, f"cannot read: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        verify_image(data)
    except DamagedImage as exc:
        return FileCheck(digest, f"corrupt image: {exc}")
    return FileCheck(digest, None)


def _verify_structure(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format or ""
        image.verify()  # PNG: every chunk's CRC; other formats: header only
    extra = _TAIL_CHECKS.get(fmt)
    if extra:
        extra(data)
    if fmt != "PNG":
        # Without a checksum damaged data can pass the checks above and
        # still fail to decode; decoding here keeps the fast path's answer
        # equal to hashing every file.
        with Image.open(io.BytesIO(data)) as image:
            if fmt in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    return fmt


def _jpeg_tail(data: bytes) -> None:
    # A truncated JPEG has no end-of-image marker after its last scan.
    if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ValueError("JPEG data truncated (no end-of-image marker)")


def _gif_tail(data: bytes) -> None:
    if not data.rstrip(b"\x00").endswith(b"\x3b"):
        raise ValueError("GIF data truncated (no trailer)")


def _webp_tail(data: bytes) -> None:
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if len(data) < declared:
        raise ValueError(f"WebP data truncated ({len(data)} of {declared} bytes)")


def _bmp_tail(data: bytes) -> None:
    declared = struct.unpack("<I", data[2:6])[0]
    if len(data) < declared:
        raise ValueError(f"BMP data truncated ({len(data)} of {declared} bytes)")


_TAIL_CHECKS = {"JPEG": _jpeg_tail, "MPO": _jpeg_tail, "GIF": _gif_tail,
                "WEBP": _webp_tail, "BMP": _bmp_tail}

# Pillow names the file object it could not read: "<_io.BytesIO object at 0x...>".
_FILE_REPR = re.compile(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>")


def describe(exc: Exception) -> str:
    """One short line for an error a decoder raised."""
    text = _FILE_REPR.sub("", str(exc)).strip() or type(exc).__name__
    return text.splitlines()[0][:200]

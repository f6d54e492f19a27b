"""One integrity check for every image the suite reads or saves: the
downloader refuses a body that fails it, dedupe and extract report a file
that fails it.

`verify_image(data)` (bytes in memory) and `verify_file(path)` (a file on
disk, mapped rather than read into memory) are cheap where the format
allows. A PNG's chunk CRCs are checked up to IEND (far cheaper than
decoding the pixels). Every format's tail is checked: a file cut short can
decode "fine" in Pillow (a GIF without its trailer, a PNG without its end
chunk's CRC). Formats without checksums (JPEG, GIF, WebP, BMP...) are also
decoded, a JPEG at 1/8 scale (its entropy data is still read to the end).

Limit: a PNG whose chunks carry correct CRCs over bad compressed data (a
broken encoder, not transfer or disk damage) passes; only decoding every
pixel (dedupe's --no-fast-path) finds it.
"""
import hashlib
import io
import mmap
import os
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Optional


class DamagedImage(ValueError):
    """The bytes are not a complete, decodable image; str() says why in one
    short line."""


def verify_image(data: bytes) -> str:
    """Pillow's format name of the image in `data` (e.g. "PNG", "JPEG"), or
    DamagedImage when it is cut, damaged or no image at all."""
    try:
        return _verify_structure(lambda: io.BytesIO(data), data)
    except Exception as exc:  # Pillow raises many kinds for bad files
        raise DamagedImage(describe(exc)) from None


def verify_file(path) -> str:
    """`verify_image` for a file on disk (the downloader's temp file): the
    tail checks read a memory map and Pillow reads the file, so a big image
    does not cost its size in memory. OSError when the file cannot be read."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise DamagedImage("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            try:
                return _verify_structure(lambda: open(path, "rb"), mapped)
            except Exception as exc:  # Pillow raises many kinds for bad files
                raise DamagedImage(describe(exc, path)) from None


class FileCheck(NamedTuple):
    """Digest and integrity verdict of one file (error is None when sound).
    A tuple: a run checks 100,000 of them across processes."""

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


def _verify_structure(opener, data) -> str:
    """`opener()` gives a fresh binary stream of the image for Pillow;
    `data` is its bytes (or a memory map of them) for the tail checks."""
    from PIL import Image

    if png_sound_by_chunks(data):
        fmt = "PNG"   # what Pillow's open + verify would find, without them
    else:
        with opener() as stream, Image.open(stream) as image:
            fmt = image.format or ""
            image.verify()  # PNG: every chunk's CRC; other formats: header only
    extra = _TAIL_CHECKS.get(fmt)
    if extra:
        extra(data)
    if fmt != "PNG":
        # Without a checksum damaged data can pass the checks above and
        # still fail to decode; decoding here keeps the fast path's answer
        # equal to hashing every file.
        with opener() as stream, Image.open(stream) as image:
            if fmt in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    return fmt


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pillow's PNG (bit depth, colour type) pairs (PngImagePlugin._MODES).
_PNG_MODES = frozenset({(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3),
                        (8, 3), (8, 4), (16, 4), (8, 6), (16, 6)})
# Chunks before the image data that Pillow parses with no way to fail, or
# (length) whose only failure is being shorter than this; any other named
# chunk there (tRNS, iCCP, zTXt, iTXt, eXIf, APNG's) is left to Pillow.
_PNG_PLAIN_CHUNKS = {b"PLTE": 0, b"tEXt": 0, b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9,
                     b"bKGD": 0, b"tIME": 0, b"sBIT": 0, b"hIST": 0, b"sPLT": 0}
_PNG_CHUNK_NAME = re.compile(rb"\w{4}\Z")
_PNG_TEXT_MEMORY = 64 * 1024 * 1024   # PngImagePlugin.MAX_TEXT_MEMORY


def png_sound_by_chunks(data) -> bool:
    """True only when Pillow's open + verify of this PNG would pass: every
    chunk complete with a right CRC, IHDR first and one Pillow reads, only
    plain chunks before the first IDAT, an empty IEND with its CRC. A
    hundred times cheaper than Pillow (one crc32 per chunk, no objects per
    chunk); False (Pillow decides, and words the error) for anything else."""
    view = memoryview(data)
    if bytes(view[:8]) != _PNG_MAGIC or len(view) < 33:
        return False
    size = len(view)
    pos, seen_idat, text = 8, False, 0
    while pos + 12 <= size:
        length = int.from_bytes(view[pos:pos + 4], "big")
        name = bytes(view[pos + 4:pos + 8])
        end = pos + 8 + length
        if end + 4 > size or zlib.crc32(view[pos + 4:end]) != int.from_bytes(view[end:end + 4], "big"):
            return False
        if name == b"IEND":
            return seen_idat and length == 0
        if pos == 8:
            if name != b"IHDR" or length != 13 or not _png_header_read(view[16:29]):
                return False
        elif name == b"IDAT":
            seen_idat = True
        elif not _PNG_CHUNK_NAME.match(name):
            return False
        elif not seen_idat:
            if name not in _PNG_PLAIN_CHUNKS or length < _PNG_PLAIN_CHUNKS[name]:
                return False
            if name == b"tEXt":
                text += length
                if text > _PNG_TEXT_MEMORY:
                    return False
        pos = end + 4
    return False


def _png_header_read(header) -> bool:
    """Pillow opens this IHDR: a known mode, a size, filter method 0, no
    decompression-bomb warning."""
    from PIL import Image

    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    limit = Image.MAX_IMAGE_PIXELS
    return ((header[8], header[9]) in _PNG_MODES and width > 0 and height > 0 and header[11] == 0
            and (limit is None or width * height <= limit))


def _png_tail(data) -> None:
    # verify() stops at the IEND chunk's name: its CRC (constant, the chunk
    # is empty) must be there too, or the file lost its last bytes.
    end = data.rfind(b"IEND")
    if end < 0 or data[end + 4:end + 8] != b"\xaeB`\x82":
        raise ValueError("PNG data truncated (incomplete end chunk)")


def _jpeg_tail(data) -> None:
    # A truncated JPEG has no end-of-image marker after its last scan.
    if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ValueError("JPEG data truncated (no end-of-image marker)")


def _gif_tail(data) -> None:
    # The trailer byte, possibly followed by zero padding.
    end = len(data)
    while end > 0:
        chunk = data[max(0, end - 65536):end].rstrip(b"\x00")
        if chunk:
            if chunk.endswith(b"\x3b"):
                return
            break
        end -= 65536
    raise ValueError("GIF data truncated (no trailer)")


def _webp_tail(data) -> None:
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if len(data) < declared:
        raise ValueError(f"WebP data truncated ({len(data)} of {declared} bytes)")


def _bmp_tail(data) -> None:
    declared = struct.unpack("<I", data[2:6])[0]
    if len(data) < declared:
        raise ValueError(f"BMP data truncated ({len(data)} of {declared} bytes)")


_TAIL_CHECKS = {"PNG": _png_tail, "JPEG": _jpeg_tail, "MPO": _jpeg_tail, "GIF": _gif_tail,
                "WEBP": _webp_tail, "BMP": _bmp_tail}

# Pillow names the file object it could not read: "<_io.BytesIO object at 0x...>".
_FILE_REPR = re.compile(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>")


def describe(exc: Exception, path=None) -> str:
    """One short line for an error a decoder raised (`path`, which Pillow
    may quote, said as "file")."""
    text = _FILE_REPR.sub("", str(exc))
    if path is not None:
        text = text.replace(f" '{path}'", "").replace(str(path), "file")
    text = text.strip() or type(exc).__name__
    return text.splitlines()[0][:200]

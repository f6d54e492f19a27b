"""images.integrity: one verdict whether the image is in memory (dedupe)
or a file on disk (the downloader's temp file)."""
import pytest
from helpers import image_bytes

from discordpicextract.images.integrity import DamagedImage, verify_file, verify_image


def verdicts(tmp_path, data):
    path = tmp_path / "x.part"
    path.write_bytes(data)
    answers = []
    for check in (lambda: verify_image(data), lambda: verify_file(path)):
        try:
            answers.append(check())
        except DamagedImage as exc:
            assert str(path) not in str(exc) and "BytesIO" not in str(exc)
            answers.append("damaged")
    return answers


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_memory_and_file_agree_on_whole_cut_and_padded_images(tmp_path, fmt):
    whole = image_bytes(seed=5, size=(90, 60), fmt=fmt)
    assert verdicts(tmp_path, whole) == [fmt, fmt]
    for cut in (1, 2, len(whole) // 3):
        assert verdicts(tmp_path, whole[:-cut]) == ["damaged", "damaged"], cut
    if fmt == "GIF":  # zero padding after the trailer (some encoders write it) is not damage
        assert verdicts(tmp_path, whole + b"\0" * 70000) == ["GIF", "GIF"]


def test_an_empty_or_foreign_file_is_damaged(tmp_path):
    assert verdicts(tmp_path, b"") == ["damaged", "damaged"]
    assert verdicts(tmp_path, b"<!DOCTYPE html><html>Something went wrong</html>") == ["damaged", "damaged"]


def _pillow_verifies(data) -> bool:
    import io

    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        return True
    except Exception:
        return False


def _png_chunk(name: bytes, body: bytes) -> bytes:
    import struct
    import zlib
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def test_the_png_chunk_walk_passes_only_what_pillow_passes():
    """png_sound_by_chunks is the PNG fast path of every check: wherever it
    says sound, Pillow's open + verify passes too. Over cuts, flipped bytes
    (with and without a CRC made right again) and chunks Pillow may refuse."""
    import random
    import struct
    import zlib

    from PIL import Image, PngImagePlugin

    from discordpicextract.images.integrity import png_sound_by_chunks

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a chart")
    buffer = __import__("io").BytesIO()
    Image.new("RGB", (40, 30), "white").save(buffer, "PNG", pnginfo=info)
    whole = buffer.getvalue()
    assert png_sound_by_chunks(whole) and _pillow_verifies(whole)

    header_end = 8 + 25
    variants = [whole[:cut] for cut in range(0, len(whole), 3)]
    rng = random.Random(7)
    for _ in range(300):
        data = bytearray(whole)
        spot = rng.randrange(len(data))
        data[spot] ^= 1 << rng.randrange(8)
        variants.append(bytes(data))
        # the same flip with the CRC of the chunk that holds it made right again
        pos = 8
        while pos < len(data):
            length = struct.unpack(">I", data[pos:pos + 4])[0]
            end = pos + 8 + length
            if end + 4 > len(data):
                break
            if pos <= spot < end + 4:
                data[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(data[pos + 4:end])))
                variants.append(bytes(data))
                break
            pos = end + 4
    ihdr = struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0)
    bad_ihdrs = [struct.pack(">IIBBBBB", 40, 30, 8, 5, 0, 0, 0), struct.pack(">IIBBBBB", 0, 30, 8, 2, 0, 0, 0),
                 struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 1, 0), ihdr[:12]]
    rest = whole[header_end:]
    for bad in bad_ihdrs:
        variants.append(whole[:8] + _png_chunk(b"IHDR", bad) + rest)
    for name, body in ((b"tRNS", b"\0"), (b"gAMA", b"\0\0"), (b"zTXt", b"k\0\0garbage"),
                       (b"iCCP", b"p\0\0nonsense"), (b"acTL", b"\0"), (b"IEND", b""), (b"IHDR", ihdr)):
        variants.append(whole[:header_end] + _png_chunk(name, body) + rest)
    variants.append(whole[:header_end] + _png_chunk(b"IEND", b""))          # no image data
    variants.append(whole[:-12] + _png_chunk(b"IEND", b"x"))                 # IEND with a body
    assert sum(map(png_sound_by_chunks, variants)) > 10      # some variants are still sound
    for data in variants:
        if png_sound_by_chunks(data):
            assert _pillow_verifies(data), data

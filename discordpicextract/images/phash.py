"""Perceptual hashes (imagehash.phash) for dedupe's near-duplicate search."""
from typing import NamedTuple, Optional

from discordpicextract.images.integrity import describe


class HashResult(NamedTuple):
    phash: Optional[str]
    error: Optional[str]


def compute_phash(path) -> HashResult:
    """imagehash.phash of the decoded image, as a hex string."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(path) as image:
            return HashResult(str(imagehash.phash(image)), None)
    except Exception as exc:  # Pillow raises many kinds for bad files
        return HashResult(None, f"cannot decode: {describe(exc)}")


def hamming(hex_a: str, hex_b: str) -> int:
    return bin(int(hex_a, 16) ^ int(hex_b, 16)).count("1")

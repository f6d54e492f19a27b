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

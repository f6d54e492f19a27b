"""No-clobber, atomic file writes."""
import os

import pytest

from discordpicextract import fileops


def test_atomic_copy_keeps_content_and_mtime(tmp_path, make_image):
    source = make_image(tmp_path / "src.png", seed=1)
    os.utime(source, (1_700_000_000, 1_700_000_000))
    target = tmp_path / "out" / "dst.png"
    target.parent.mkdir()

    fileops.atomic_copy(source, target)

    assert target.read_bytes() == source.read_bytes()
    assert int(target.stat().st_mtime) == 1_700_000_000
    assert [p.name for p in target.parent.iterdir()] == ["dst.png"]  # no temp file left


def test_never_overwrites(tmp_path, make_image):
    source = make_image(tmp_path / "src.png", seed=1)
    other = make_image(tmp_path / "other.png", seed=2)
    before = other.read_bytes()

    with pytest.raises(FileExistsError):
        fileops.atomic_copy(source, other)
    assert other.read_bytes() == before
    assert fileops.copy_no_clobber(source, other) == "conflict"
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.png", "src.png"]


def test_copy_no_clobber_identical_is_a_rerun(tmp_path, make_image):
    source = make_image(tmp_path / "src.png", seed=1)
    target = tmp_path / "copy.png"
    assert fileops.copy_no_clobber(source, target) == "copied"
    assert fileops.copy_no_clobber(source, target) == "identical"


def test_publish_no_clobber_removes_temp_on_conflict(tmp_path):
    target = tmp_path / "t.png"
    target.write_bytes(b"old")
    temp = fileops.temp_path_beside(target)
    temp.write_bytes(b"new")
    with pytest.raises(FileExistsError):
        fileops.publish_no_clobber(temp, target)
    assert target.read_bytes() == b"old"
    assert not temp.exists()

"""No-clobber, atomic file writes."""
import os
import sys

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


@pytest.mark.skipif(not (sys.platform.startswith("linux") or sys.platform == "darwin"),
                    reason="renameat2 / renamex_np are Linux and macOS calls")
def test_rename_no_replace_is_one_call_that_refuses_a_taken_name(tmp_path):
    """The timestamp tools' move: one system call (the inode and the link
    count never change: no second name ever exists), never over a file."""
    source, target, taken = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    source.write_bytes(b"a")
    taken.write_bytes(b"c")
    inode = source.stat().st_ino

    assert fileops.rename_no_replace(source, target) is True
    assert not source.exists() and target.read_bytes() == b"a"
    assert target.stat().st_ino == inode and target.stat().st_nlink == 1
    with pytest.raises(FileExistsError):
        fileops.rename_no_replace(target, taken)
    assert target.read_bytes() == b"a" and taken.read_bytes() == b"c"
    with pytest.raises(FileNotFoundError):
        fileops.rename_no_replace(source, tmp_path / "d.png")
    fileops.move_no_clobber(target, source)            # the engine's move takes the same path
    assert source.read_bytes() == b"a" and not target.exists()
    with pytest.raises(FileExistsError):
        fileops.move_no_clobber(source, taken)
    assert source.read_bytes() == b"a" and taken.read_bytes() == b"c"


def test_move_no_clobber_falls_back_to_link_and_unlink(tmp_path, monkeypatch):
    """Where the system has no such call, link + unlink does the same."""
    monkeypatch.setattr(fileops, "_RENAME_NOREPLACE", None)
    source, taken = tmp_path / "a.png", tmp_path / "c.png"
    source.write_bytes(b"a")
    taken.write_bytes(b"c")
    fileops.move_no_clobber(source, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes() == b"a" and not source.exists()
    with pytest.raises(FileExistsError):
        fileops.move_no_clobber(tmp_path / "b.png", taken)
    assert taken.read_bytes() == b"c"

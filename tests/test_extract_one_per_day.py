"""extract_one_per_day.py on real image files written with Pillow."""
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, write_image

import extract_one_per_day as extract


def run(capsys, *args):
    code = extract.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def names(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def test_latest_image_of_each_day_is_copied(tmp_path, capsys):
    src = tmp_path / "src"
    for seed, name in enumerate(["2025-02-14_09-31-00_a.png", "2025-02-14_15-59-00_b.png",
                                 "2025-02-14_12-00-00_c.jpg", "2025-02-18_10-00-00_d.png"]):
        write_image(src / name, seed=seed)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.iterdir()}

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0, err
    assert names(tmp_path / "out") == ["2025-02-14_15-59-00_b.png", "2025-02-18_10-00-00_d.png"]
    assert out == (
        f"Scanning images in: {src}\n"
        "Found 4 image files\n"
        "Grouped images into 2 dates\n"
        "Extracting last image per day...\n"
        "  Processing 2025-02-14: 3 images, selected 2025-02-14_15-59-00_b.png\n"
        "  Processing 2025-02-18: 1 images, selected 2025-02-18_10-00-00_d.png\n"
        "Extracted 2 images (one per day)\n"
        f"Results saved to: {tmp_path / 'out'}\n")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.iterdir()} == before
    copied = tmp_path / "out" / "2025-02-14_15-59-00_b.png"
    assert copied.stat().st_mtime_ns == before[copied.name][1]


def test_equal_timestamps_pick_the_last_name(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_16-00-00_b.png", seed=1)
    write_image(src / "2025-02-14_16-00-00_a.png", seed=2)
    write_image(src / "2025-02-14_16-00-00_c.jpg", seed=3)

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0 and names(tmp_path / "out") == ["2025-02-14_16-00-00_c.jpg"]


def test_dry_run_copies_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--dry-run")

    assert code == 0 and not (tmp_path / "out").exists()
    assert "selected 2025-02-14_10-00-00_a.png" in out and "Would extract 1 images" in out


def test_rerun_is_idempotent_and_conflicts_never_overwritten(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(src / "2025-02-18_10-00-00_b.png", seed=2)
    out_dir = tmp_path / "out"
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0

    code, out, _ = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 0 and "Extracted 2 images (one per day) (2 already in output, identical)" in out

    stranger = out_dir / "2025-02-18_10-00-00_b.png"
    stranger.unlink()
    write_image(stranger, seed=99)
    before = stranger.read_bytes()
    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 1
    assert stranger.read_bytes() == before
    assert "error: 2025-02-18_10-00-00_b.png: a different file already has this name" in err


def test_an_earlier_pick_is_replaced_by_the_day_s_latest_a_user_file_is_not(tmp_path, capsys):
    src, out_dir = tmp_path / "src", tmp_path / "out"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    write_image(src / "2025-02-14_15-00-00_later.png", seed=2)   # the day went on
    mine = write_image(out_dir / "2025-02-16_09-00-00_mine.png", seed=3)

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 0, err
    assert "Removed 2025-02-14_10-00-00_a.png: an earlier pick of ours" in out
    assert "Left alone: 2025-02-16_09-00-00_mine.png (not written by this step)" in out
    assert names(out_dir) == ["2025-02-14_15-00-00_later.png", mine.name]


def test_a_user_image_of_a_picked_date_is_reported_not_removed(tmp_path, capsys):
    src, out_dir = tmp_path / "src", tmp_path / "out"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    mine = write_image(out_dir / "2025-02-14_09-00-00_mine.png", seed=3)

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 1
    assert f"also holds {mine.name} for 2025-02-14 (not written by this step; not removed)" in err
    assert names(out_dir) == [mine.name, "2025-02-14_10-00-00_a.png"]


def test_unparsed_names_reported_and_exit_1(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(src / "scan 2025.png", seed=2)
    (src / ".discordpicextract-archive.sqlite3").write_bytes(b"hidden, ignored")

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 1
    assert "warning: skipped scan 2025.png" in err
    assert "Skipped 1 file(s) whose name does not parse" in out
    assert names(tmp_path / "out") == ["2025-02-14_10-00-00_a.png"]


def test_damaged_pick_is_copied_with_a_warning(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    cut = write_image(src / "2025-02-14_15-00-00_cut.png", seed=2)
    cut.write_bytes(cut.read_bytes()[:300])

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 1
    assert names(tmp_path / "out") == ["2025-02-14_15-00-00_cut.png"]
    assert "warning: 2025-02-14_15-00-00_cut.png: corrupt image" in err


def test_missing_source_is_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "--source", "missing", "--output", "out")
    assert code == 2 and "folder not found: missing" in err and "Traceback" not in err


def test_output_that_cannot_be_a_folder_is_exit_2(tmp_path, capsys):
    write_image(tmp_path / "src" / "2025-02-14_10-00-00_a.png", seed=1)
    (tmp_path / "afile").write_text("a file, not a folder")
    code, _, err = run(capsys, "--source", "src", "--output", "afile/out")
    assert code == 2 and err == "error: cannot create --output folder afile/out: Not a directory\n"


def test_subprocess_run(tmp_path):
    write_image(tmp_path / "clean" / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(tmp_path / "clean" / "2025-02-14_11-00-00_b.png", seed=2)
    done = subprocess.run([sys.executable, str(ROOT / "extract_one_per_day.py"), "--source", "clean",
                           "--output", "daily"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "  Processing 2025-02-14: 2 images, selected 2025-02-14_11-00-00_b.png" in done.stdout
    assert names(tmp_path / "daily") == ["2025-02-14_11-00-00_b.png"]

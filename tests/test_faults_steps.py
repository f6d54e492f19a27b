"""The copy steps and the demo under faults, through their main(argv): a
second writer into a busy output refused, names that are not UTF-8 through
dedupe (cache, report), one per day, the coverage check and a rename, a
link to a file outside the folder never followed, dedupe's workers ending
with their parent killed by kill -9, a demo killed mid-run run again."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import ROOT, lock_held_elsewhere
from helpers import fill, n, write_image

import adjust_timestamps
import check_unique_dates
import config
import deduplicate_images
import extract_one_per_day
from discordpicextract.images.cache import CACHE_FILE


def test_a_second_writer_into_a_busy_output_is_refused(tmp_path, capsys):
    fill(tmp_path / "src", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00")])
    (tmp_path / "out").mkdir()
    with lock_held_elsewhere(tmp_path / "out") as (pid,):
        assert deduplicate_images.main(["--source", "src", "--output", "out"]) == 2
        assert extract_one_per_day.main(["--source", "src", "--output", "out"]) == 2
        err = capsys.readouterr().err
        assert err.count(f"another run is using out (pid {pid}") == 2
        assert deduplicate_images.main(["--source", "src", "--output", "out", "--dry-run"]) == 0  # reads only
    assert [name for name in os.listdir(tmp_path / "out") if not name.startswith(".")] == []
    assert deduplicate_images.main(["--source", "src", "--output", "out"]) == 0


def test_names_that_are_not_utf8_work_in_every_step(tmp_path, capsys):
    odd = os.fsdecode(b"2025-01-02_10-00-00_\xff\xfe.png")  # not UTF-8: kept as surrogate escapes
    again = os.fsdecode(b"2025-01-02_10-00-30_\xff\xfe.png")
    write_image(tmp_path / "src" / odd, seed=1)
    write_image(tmp_path / "src" / again, seed=1)    # a duplicate of it
    write_image(tmp_path / "src" / n("2025-01-03T10:00:00"), seed=2)
    for report in ("r.csv", "r.json"):
        assert deduplicate_images.main(["--source", "src", "--output", "out", "--report", report]) == 0
    assert (tmp_path / "out" / CACHE_FILE).exists()
    assert b"\xff\xfe.png" in (tmp_path / "r.csv").read_bytes()
    assert json.loads((tmp_path / "r.json").read_text())["groups"][0]["kept"] == odd
    assert deduplicate_images.main(["--source", "src", "--output", "out"]) == 0  # the cache reads it back
    assert "hash cache" not in capsys.readouterr().err  # saved and read back, no warning
    assert extract_one_per_day.main(["--source", "out", "--output", "day"]) == 0
    assert check_unique_dates.main(["--folders", "out", "day"]) == 0
    assert adjust_timestamps.main(["--folders", "src", "out", "day", "--hours", "1"]) == 0
    assert adjust_timestamps.main(["--folders", "src", "out", "day", "--undo"]) == 0
    assert sorted(os.listdir(os.fsencode(tmp_path / "day")))[-2:] == [
        b"2025-01-02_10-00-00_\xff\xfe.png", b"2025-01-03_10-00-00_chart.png"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_link_to_a_file_outside_the_folder_is_reported_and_never_followed(tmp_path, capsys):
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    write_image(tmp_path / "elsewhere.png", seed=5)
    src = fill(tmp_path / "src", [n("2025-01-02T10:00:00")])
    (src / n("2025-01-03T10:00:00", "passwd.png")).symlink_to(tmp_path / "secret.txt")
    (src / n("2025-01-04T10:00:00", "out.png")).symlink_to(tmp_path / "elsewhere.png")
    (src / n("2025-01-05T10:00:00", "in.png")).symlink_to(src / n("2025-01-02T10:00:00"))  # inside: fine
    assert deduplicate_images.main(["--source", "src", "--output", "out"]) == 1
    err = capsys.readouterr().err
    assert err.count("a link to a file outside the folder (not followed)") == 2
    copied = sorted(name for name in os.listdir(tmp_path / "out") if not name.startswith("."))
    assert copied == [n("2025-01-02T10:00:00"), n("2025-01-05T10:00:00", "in.png")]  # a link inside is followed
    assert extract_one_per_day.main(["--source", "src", "--output", "day"]) == 1
    assert not any("passwd" in name or "out.png" in name for name in os.listdir(tmp_path / "day"))


DEDUPE = """
import sys
import deduplicate_images
sys.exit(deduplicate_images.main(sys.argv[1:]))
"""


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def test_dedupe_workers_end_when_their_parent_is_killed(tmp_path):
    if not os.path.exists("/proc/self/task"):
        import pytest
        pytest.skip("needs /proc to find the workers")
    src = tmp_path / "src"
    for k in range(900):  # enough for the process pool (400+ checks)
        write_image(src / n(f"2025-01-{1 + k // 40:02d}T{9 + k % 40 // 8:02d}:{k % 8:02d}:00"), seed=k, size=(96, 64))
    proc = subprocess.Popen([sys.executable, "-c", DEDUPE, "--source", "src", "--output", "out", "--workers", "2",
                             "--no-cache"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 30, []
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = _children(proc.pid)
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(workers) >= 2, "the pool never started"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)


DEMO = """
import sys
import main
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_demo_killed_mid_run_can_be_run_again_into_its_folder(tmp_path, capsys):
    from download_helpers import run_main

    demo = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-c", DEMO, "--demo", "--no-progress", "--output", str(demo)],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    download = demo / config.DEFAULT_OUTPUT_DIR
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not download.is_dir() or len(os.listdir(download)) < 20):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -9 and len(os.listdir(download)) >= 20
    code, out, err = run_main(capsys, "--demo", "--no-progress", "--output", demo)
    assert code == 0, err
    assert "replacing the earlier demo run" in out
    assert Path(download / ".discordpicextract-demo").read_text().startswith("[")


def _disk_full_after(monkeypatch, copies):
    """ENOSPC from the copy steps' writes after `copies` copies (where no
    small tmpfs can be mounted); returns a switch to free the space."""
    from discordpicextract import records

    real, done, full = records._write_copy, [0], [True]

    def write_copy(*args, **kwargs):
        done[0] += 1
        if full[0] and done[0] > copies:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)
    monkeypatch.setattr(records, "_write_copy", write_copy)
    return lambda: full.__setitem__(0, False)


def test_a_full_disk_stops_a_copy_step_with_one_line_and_a_rerun_finishes(tmp_path, capsys, monkeypatch):
    """Dedupe and one per day on a full disk: the report so far, one error
    line, no retry file after file, no temp file; the record holds what was
    copied, so the run after space was freed completes the folder."""
    from fault_helpers import fill_disk, leftovers, noise_png, small_disk

    names = [n(f"2025-01-{1 + k:02d}T10:00:00", f"x{k}.png") for k in range(20)]   # 20 dates: all kept
    src = tmp_path / "src"
    src.mkdir()
    for k, name in enumerate(names):
        (src / name).write_bytes(noise_png(k, (150, 150)))    # ~68 KB each, in threads (16 and more)
    for script, step in ((deduplicate_images, "clean"), (extract_one_per_day, "day")):
        with small_disk(3) as disk:
            out = (disk or tmp_path) / step
            out.mkdir()
            if disk is not None:
                filler = fill_disk(disk)
                filler.write_bytes(b"\0" * (filler.stat().st_size - 600 * 1024))   # room for a few copies
                free = filler.unlink
            else:
                free = _disk_full_after(monkeypatch, 5)
            code = script.main(["--source", str(src), "--output", str(out)])
            captured = capsys.readouterr()
            errors = [line for line in captured.err.splitlines() if line.strip()]
            assert code == 1 and len(errors) == 1, captured.err
            assert errors[0].startswith(f"error: cannot write {out}{os.sep}2025-01-") and \
                "No space left on device; free some space" in errors[0]
            assert "Traceback" not in captured.err and leftovers(out) == []
            copied = {name for name in os.listdir(out) if name.endswith(".png")}
            assert 0 < len(copied) < 20 and copied <= set(names)
            assert all((out / name).read_bytes() == (src / name).read_bytes() for name in copied)
            free()
            code = script.main(["--source", str(src), "--output", str(out)])
            captured = capsys.readouterr()
            assert code == 0, captured.out + captured.err
            assert sorted(name for name in os.listdir(out) if name.endswith(".png")) == sorted(names)
            assert "changed" not in captured.out + captured.err and leftovers(out) == []


def test_a_hash_cache_that_is_a_link_is_not_written_through(tmp_path, capsys):
    fill(tmp_path / "src", [n("2025-01-02T10:00:00"), n("2025-01-03T10:00:00")])
    (tmp_path / "out").mkdir()
    (tmp_path / "outside.db").write_bytes(b"the user's")
    (tmp_path / "out" / CACHE_FILE).symlink_to(tmp_path / "outside.db")
    assert deduplicate_images.main(["--source", "src", "--output", "out"]) == 0
    assert "is a link (not followed)" in capsys.readouterr().err
    assert (tmp_path / "outside.db").read_bytes() == b"the user's"

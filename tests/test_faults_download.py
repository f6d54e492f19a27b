"""The download under faults, through discord_downloader.main(argv): a second
run into a busy folder, bodies that trickle or never end, a full disk, a run
killed with kill -9 (re-run: no image twice, none missing, no leftovers),
archive rows lost and files renamed since, our own .part leftovers."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from download_helpers import ROOT, ago, cdn_requests, digests, images_in, sha256_of
from fault_helpers import fill_disk, leftovers, lock_held_elsewhere, noise_png, small_disk

import config
import discord_downloader
from discordpicextract.discord import transfer


def _run(capsys, *argv, output="out"):
    code = discord_downloader.main(["--channel", "spx-realtime-aws", "--guild", "数学家炒美股", "--days", "1",
                                    "--output", str(output), "--no-progress", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _post_noise(world, count, hours=3):
    for k in range(count):
        world.emu.add_message(world.channel["id"], ago(hours=hours, minutes=k),
                              attachments=[(f"noise{k}.png", noise_png(k), "image/png")])


def test_a_second_download_into_a_busy_folder_is_refused_with_who_holds_it(world, capsys, tmp_path):
    world.post(ago(hours=1), "one.png")
    (tmp_path / "out").mkdir()
    with lock_held_elsewhere(tmp_path / "out") as (pid,):
        code, out, err = _run(capsys)
        assert code == 2
        assert f"another run is using out (pid {pid}, -c: holder.py, since" in err
        assert "Traceback" not in err and images_in("out") == []
    code, out, err = _run(capsys)  # the holder is gone: the folder is free again
    assert code == 0 and "Downloaded: 1" in out


def test_a_trickling_body_is_cut_at_the_transfer_limit_and_counted(world, capsys, monkeypatch):
    monkeypatch.setattr(config, "MAX_TRANSFER_SECONDS", 0.6)
    world.emu.add_message(world.channel["id"], ago(hours=2), attachments=[("slow.png", noise_png(2, (60, 60)),
                                                                          "image/png")])
    world.post(ago(hours=1), "fine.png")
    world.emu.inject("trickle", "slow.png", times=5, interval=0.05)  # 16 bytes per 50 ms: 11 KB in 35 s
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 5
    assert code == 1 and "Errors: 1" in out and "Downloaded: 1" in out
    assert "transfer took longer than 0.6 s" in out
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["fine.png"]
    assert sum("slow.png" in r.path for r in cdn_requests(world.emu)) == 1  # no retry of a limit
    assert leftovers("out") == []


def test_an_image_whose_headers_trickle_is_cut_at_the_transfer_limit(world, capsys, monkeypatch):
    monkeypatch.setattr(config, "MAX_TRANSFER_SECONDS", 0.5)
    world.post(ago(hours=2), "slow.png")
    world.post(ago(hours=1), "fine.png")
    world.emu.inject("trickle", "slow.png", times=5, interval=0.4, headers=True)  # 200+ bytes of headers: 6 s
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 4
    assert code == 1 and "Errors: 1" in out and "transfer took longer than 0.5 s; stopped" in out, out
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["fine.png"]
    assert sum("slow.png" in r.path for r in cdn_requests(world.emu)) == 1
    assert leftovers("out") == []


def test_a_trickling_api_answer_is_cut_at_the_api_limit_and_retried(world, capsys, monkeypatch, fast_retries):
    """A page of messages whose body trickles (every read well inside the
    30 s read timeout) is cut at config.API_REQUEST_SECONDS and asked again."""
    monkeypatch.setattr(config, "API_REQUEST_SECONDS", 0.5)
    for k in range(3):
        world.post(ago(hours=1, minutes=k), f"img{k}.png")
    world.emu.inject("trickle", "/messages", times=1, interval=0.05)   # 16 bytes per 50 ms: a page in ~10 s
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 5
    assert code == 0 and "Downloaded: 3" in out, out + err
    pages = [r for r in world.emu.requests if r.server == "api" and r.path.endswith("/messages")]
    assert len(pages) == 2   # the trickled one, then the same page again


def test_an_api_answer_trickling_every_time_ends_with_one_line_and_the_summary(world, capsys, monkeypatch,
                                                                              fast_retries):
    monkeypatch.setattr(config, "API_REQUEST_SECONDS", 0.2)
    world.post(ago(hours=1), "one.png")
    world.emu.inject("trickle", "/messages", times=50, interval=0.05)
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 4
    assert code == 1 and "Download Summary:" in out and "Errors: 1" in out, out + err
    assert (f"GET /channels/{world.channel['id']}/messages: no complete answer within 0.2 s, "
            f"{config.MAX_RETRIES + 1} attempts") in out
    assert "Traceback" not in err and world.token not in out + err
    assert images_in("out") == []


def test_trickled_headers_are_cut_at_the_api_limit_too(world, capsys, monkeypatch, fast_retries):
    """The limit counts from the connect: a status line and headers sent a
    few bytes at a time are cut as a trickled body is."""
    monkeypatch.setattr(config, "API_REQUEST_SECONDS", 0.5)
    world.post(ago(hours=1), "one.png")
    world.emu.inject("trickle", "/users/@me", times=1, interval=0.4, headers=True)  # ~300 bytes: 8 s of headers
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 5
    assert code == 0 and "Downloaded: 1" in out, out + err
    assert sum(r.server == "api" and r.path == "/api/v10/users/@me" for r in world.emu.requests) == 2


def test_an_endless_api_answer_stops_at_the_answer_cap_not_in_memory(world, capsys, monkeypatch):
    """No Content-Length, bytes without end: stopped at config.MAX_API_ANSWER_MB,
    not retried, one line. (rate= keeps a broken cap from filling the memory
    before the time limit cuts it.)"""
    monkeypatch.setattr(config, "MAX_API_ANSWER_MB", 0.5)
    monkeypatch.setattr(config, "API_REQUEST_SECONDS", 2)
    world.post(ago(hours=1), "one.png")
    world.emu.inject("endless", "/messages", times=10, rate=20e6)
    started = time.monotonic()
    code, out, err = _run(capsys)
    assert time.monotonic() - started < 5   # without the cap: 4 attempts cut at 2 s each
    assert code == 1 and "Download Summary:" in out and "Errors: 1" in out, out + err
    assert (f"GET /channels/{world.channel['id']}/messages: the answer is larger than 0.5 MiB "
            "(config.MAX_API_ANSWER_MB); not Discord's, the transfer was stopped") in out
    pages = [r for r in world.emu.requests if r.server == "api" and r.path.endswith("/messages")]
    assert len(pages) == 1 and images_in("out") == []


def test_an_endless_body_stops_at_the_size_cap_without_a_huge_temp_file(world, capsys):
    world.post(ago(hours=2), "endless.png")
    world.post(ago(hours=1), "fine.png")
    world.emu.inject("endless", "endless.png", times=5)
    code, out, err = _run(capsys, "--max-image-mb", "0.5")
    assert code == 1 and "Errors: 1" in out
    assert "image larger than the 0.5 MiB cap" in out and "the transfer was stopped" in out
    assert [n.split("_", 2)[2] for n in images_in("out")] == ["fine.png"]
    assert sum("endless.png" in r.path for r in cdn_requests(world.emu)) == 1
    assert leftovers("out") == []


def test_a_declared_length_over_the_cap_is_refused_before_fetching(world, capsys):
    world.emu.add_message(world.channel["id"], ago(hours=1), attachments=[("big.png", noise_png(1), "image/png")])
    code, out, err = _run(capsys, "--max-image-mb", "0.1")
    assert code == 1 and "(Content-Length 270" in out and "not fetched" in out
    assert images_in("out") == [] and leftovers("out") == []


def test_a_full_disk_ends_the_run_with_one_line_the_summary_and_the_archive(world, capsys, monkeypatch):
    _post_noise(world, 14)   # 14 x 270 KB: far more than the 3 MiB disk holds
    with small_disk(3) as mounted:
        disk = mounted or Path("disk")
        if mounted is None:  # no tmpfs here: every write after the 4th file fails as a full disk would
            _inject_enospc_after(monkeypatch, 4)
        code, out, err = _run(capsys, "--workers", "2", output=disk / "out")
        saved = images_in(disk / "out")
        assert code == 1
        assert "Download Summary:" in out and f"Downloaded: {len(saved)}" in out
        lines = [line for line in err.splitlines() if line.strip() and line != discord_downloader.USER_TOKEN_WARNING]
        assert len(lines) == 1 and lines[0].startswith("error: download stopped: cannot write ")
        # the image's temp file or the archive's commit: whichever found the disk full first
        assert "No space left on device" in lines[0] or "disk is full" in lines[0]
        assert "recorded in the archive" in lines[0] and "Traceback" not in err
        assert 0 < len(saved) < 14 and leftovers(disk / "out") == []
        with sqlite3.connect(disk / "out" / config.ARCHIVE_FILE) as db:
            rows = dict(db.execute("SELECT filename, sha256 FROM downloads"))
        assert rows == {name: sha256_of(disk / "out" / name) for name in saved}
        requests_before = len(cdn_requests(world.emu))
        assert requests_before <= 14 + 2  # no retry loop on a full disk


def _inject_enospc_after(monkeypatch, saved):
    real = transfer.Transfer._fetch
    calls = [0]

    def fetch(self, url, temp):
        calls[0] += 1
        if calls[0] > saved:
            raise OSError(28, "No space left on device")
        return real(self, url, temp)
    monkeypatch.setattr(transfer.Transfer, "_fetch", fetch)


def test_our_part_leftovers_are_removed_at_start_and_nothing_else(world, capsys, tmp_path):
    world.post(ago(hours=1), "one.png")
    out = tmp_path / "out"
    out.mkdir()
    ours = out / ".2025-01-02_10-00-00_chart.png.k3j_x9a2.part"
    ours.write_bytes(b"half an image")
    odd = out / ".a file\nof two lines.png.abcd1234.part"   # any name a copy step may be given
    odd.write_bytes(b"half a copy")
    users = out / "notes.part"
    users.write_bytes(b"the user's")
    code, text, err = _run(capsys)
    assert code == 0 and "Leftovers of an interrupted run removed: 2 .part files" in text
    assert not ours.exists() and not odd.exists() and users.exists()


def test_lost_archive_rows_of_renamed_files_are_found_by_content(world, capsys, tmp_path):
    for k in range(4):
        world.post(ago(hours=5 - k), f"c{k}.png")
    assert _run(capsys)[0] == 0
    before = digests("out")
    # a crash lost every row; since then the timestamp tools moved each file 5 hours back
    (tmp_path / "out" / config.ARCHIVE_FILE).unlink()
    for name in images_in("out"):
        shifted = f"{int(name[:4]) - 1}{name[4:]}"  # another second, another family
        os.rename(tmp_path / "out" / name, tmp_path / "out" / shifted)
    code, out, err = _run(capsys)
    assert code == 0 and "Downloaded: 0" in out and "already on disk: 4" in out
    assert sorted(digests("out").values()) == sorted(before.values())


def test_a_file_whose_name_is_not_utf8_is_matched_back_and_followed_through_renames(world, capsys, tmp_path):
    """Its row is stored (as the name's bytes): the run neither crashes
    nor saves that image twice, now or after a rename of the folder."""
    import adjust_timestamps

    for k in range(3):
        world.post(ago(hours=5 - k), f"c{k}.png")
    assert _run(capsys)[0] == 0
    first = images_in("out")[0]
    odd = os.fsdecode(b"2025-01-02_10-00-00_\xff\xfe.png")     # renamed by hand, its row lost
    os.rename(tmp_path / "out" / first, tmp_path / "out" / odd)
    (tmp_path / "out" / config.ARCHIVE_FILE).unlink()
    before = sorted(digests("out").values())
    code, out, err = _run(capsys)
    assert code == 0 and "Downloaded: 0" in out and "already on disk: 3" in out, out + err
    assert adjust_timestamps.main(["--folders", "out", "--hours", "1"]) == 0
    code, out, err = _run(capsys)
    assert code == 0 and "Downloaded: 0" in out and "Traceback" not in err, out + err
    assert sorted(digests("out").values()) == before
    with sqlite3.connect(tmp_path / "out" / config.ARCHIVE_FILE) as db:
        stored = {row[0] for row in db.execute("SELECT filename FROM downloads")}
    assert b"2025-01-02_11-00-00_\xff\xfe.png" in stored


def test_an_archive_that_is_a_link_is_not_written_through(world, capsys, tmp_path):
    world.post(ago(hours=1), "one.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere.sqlite3").write_bytes(b"")    # empty: SQLite would happily fill it
    (tmp_path / "out" / config.ARCHIVE_FILE).symlink_to(tmp_path / "elsewhere.sqlite3")
    code, out, err = _run(capsys)
    assert code == 2 and "is a link; not followed" in err and "Traceback" not in err
    assert (tmp_path / "elsewhere.sqlite3").read_bytes() == b"" and images_in("out") == []


KILLED_RUN = """
import sys
import discord_downloader
sys.exit(discord_downloader.main(sys.argv[1:]))
"""


def test_a_download_killed_mid_run_is_completed_by_a_rerun_without_duplicates(world, capsys, tmp_path):
    for k in range(40):
        world.post(ago(hours=3, minutes=k), f"k{k}.png")
    world.emu.latency = 0.02
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = ["--channel", world.channel["id"], "--days", "1", "--output", str(tmp_path / "out"),
            "--no-progress", "--workers", "4"]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_images(tmp_path / "out")) < 12:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 12 <= len(_images(tmp_path / "out")) < 40  # killed mid-run
    world.emu.latency = 0
    code, out, err = _run(capsys)
    assert code == 0, out + err
    names = images_in("out")
    assert len(names) == 40 and len(set(digests("out").values())) == 40
    assert leftovers("out") == []


def _images(folder):
    try:
        return [n for n in os.listdir(folder) if n.endswith(".png") and not n.startswith(".")]
    except FileNotFoundError:
        return []


def test_a_disk_too_full_for_the_archive_says_so_in_one_line(world, capsys):
    world.post(ago(hours=1), "one.png")
    with small_disk(1) as disk:
        if disk is None:
            pytest.skip("needs a small tmpfs (mount as root)")
        (disk / "out").mkdir()
        filler = fill_disk(disk)
        code, out, err = _run(capsys, output=disk / "out")
        assert code == 1 and "Traceback" not in err
        assert "No space left on device" in err and "free some space" in err and "move that file away" not in err
        filler.unlink()
        code, out, err = _run(capsys, output=disk / "out")
        assert code == 0 and "Downloaded: 1" in out


def test_a_bit_flipped_archive_is_one_line_not_a_traceback(world, capsys, tmp_path):
    for k in range(30):
        world.post(ago(hours=3, minutes=k), f"b{k}.png")
    assert _run(capsys)[0] == 0
    path = tmp_path / "out" / config.ARCHIVE_FILE
    data = bytearray(path.read_bytes())
    for offset in range(4096 + 16, len(data), 97):  # past the header page: it opens, then reads garbage
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, err = _run(capsys)
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "download archive" in errors[0] and "move that file away" in errors[0]

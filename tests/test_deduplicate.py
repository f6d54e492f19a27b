"""deduplicate_images.py on real PNG/JPEG files written with Pillow."""
import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import imagehash
import pytest
from helpers import ROOT, chart_image, image_bytes, write_image
from PIL import Image, ImageDraw, PngImagePlugin

import deduplicate_images as dedupe
from discordpicextract import naming
from discordpicextract.images.cache import CACHE_FILE, NoCache
from discordpicextract.images.integrity import check_file
from discordpicextract.images.phash import hamming
from discordpicextract.images.workers import WorkerDied, Workers


def copy_as(source, name):
    target = Path(source).parent / name
    shutil.copy2(source, target)
    return target


def save_retagged(path, seed, text):
    """Same pixels and, for equally long `text`, the same size; other bytes."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    chart_image(seed).save(path, "PNG", pnginfo=info)
    return Path(path)


def run(capsys, *args):
    code = dedupe.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def names(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in Path(folder).iterdir()}


def test_same_date_duplicates_removed_other_dates_kept(tmp_path, capsys):
    src = tmp_path / "src"
    first = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(first, "2025-02-14_10-01-00_a.png")
    copy_as(first, "2025-02-15_10-00-00_a.png")
    write_image(src / "2025-02-14_11-00-00_b.jpg", seed=2)
    before = snapshot(src)

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0, err
    assert names(tmp_path / "out") == ["2025-02-14_10-00-00_a.png", "2025-02-14_11-00-00_b.jpg",
                                       "2025-02-15_10-00-00_a.png"]
    assert "  Total images scanned: 4\n  Unique images copied: 3\n  Duplicates skipped: 1\n" \
           "  Duplicate groups found: 1\n" in out
    assert snapshot(src) == before  # sources untouched
    kept = tmp_path / "out" / "2025-02-14_10-00-00_a.png"
    assert kept.stat().st_mtime_ns == first.stat().st_mtime_ns


def test_the_earliest_copy_is_kept_where_name_order_says_otherwise(tmp_path, capsys):
    """A stamp in Arabic-Indic digits names the earliest of two identical
    files but sorts after the other's name: the time decides, on the first
    run and on a cached re-run."""
    src, out = tmp_path / "src", tmp_path / "out"
    arabic = "\u0662\u0660\u0662\u0664-01-02_03-04-05_a.png"   # 2024-01-02 03:04:05
    first = write_image(src / arabic, seed=1)
    copy_as(first, "2024-01-02_03-04-06_b.png")

    for _ in range(2):
        code, stdout, err = run(capsys, "--source", str(src), "--output", str(out))
        assert code == 0, err
        assert names(out) == [arabic]
        assert "Duplicates skipped: 1" in stdout
    assert "Files read: 0," in stdout


def test_same_hash_different_size_kept_unless_ignore_size(tmp_path, capsys):
    src = tmp_path / "src"
    a = src / "2025-02-14_10-00-00_a.png"
    b = src / "2025-02-14_10-01-00_b.png"
    src.mkdir()
    chart_image(3).save(a, "PNG", compress_level=9)
    chart_image(3).save(b, "PNG", compress_level=0)
    assert a.stat().st_size != b.stat().st_size
    assert str(imagehash.phash(Image.open(a))) == str(imagehash.phash(Image.open(b)))

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))
    assert code == 0 and names(tmp_path / "out") == [a.name, b.name]
    assert "No duplicates found" in out

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out2"),
                       "--ignore-size")
    assert code == 0 and names(tmp_path / "out2") == [a.name]


def test_earliest_kept_ties_by_name(tmp_path, capsys):
    src = tmp_path / "src"
    first = write_image(src / "2025-02-14_10-00-00_b.png", seed=4)
    copy_as(first, "2025-02-14_10-00-00_a.png")
    copy_as(first, "2025-02-14_09-59-00_z.png")
    copy_as(first, "2025-02-14_10-02-00_c.png")

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0
    assert names(tmp_path / "out") == ["2025-02-14_09-59-00_z.png"]
    assert "Duplicates skipped: 3" in out and "Duplicate groups found: 1" in out


def make_pairs(src, seconds_list, start_seed=100):
    """One kept image and one byte-identical re-post `seconds` later per value."""
    for index, seconds in enumerate(seconds_list):
        hour, minute = divmod(index * 10, 60)
        kept = write_image(src / f"2025-03-03_{9 + hour:02d}-{minute:02d}-00_k{index}.png",
                           seed=start_seed + index)
        later = minute * 60 + seconds
        copy_as(kept, f"2025-03-03_{9 + hour + later // 3600:02d}-{later // 60 % 60:02d}-"
                      f"{later % 60:02d}_k{index}.png")


def test_statistics_match_hand_computed_values(tmp_path, capsys):
    # Differences 30, 60, 60, 90, 200 s. Mean 88; median 60; population std
    # sqrt((58^2 + 28^2 + 28^2 + 2^2 + 112^2) / 5) = sqrt(3496) = 59.13;
    # linear percentiles, rank (n - 1) * p / 100: 25th -> rank 1 = 60,
    # 75th -> rank 3 = 90, 90th -> rank 3.6 = 90 + 0.6 * 110 = 156,
    # 95th -> rank 3.8 = 90 + 0.8 * 110 = 178.
    src = tmp_path / "src"
    make_pairs(src, [30, 60, 60, 90, 200])

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0
    expected = """\
======================================================================
Timestamp Difference Statistics (Removed vs Kept Duplicates)
======================================================================
Total pairs calculated:     5
Mean difference:            1.5m (88.0s)
Median difference:          1.0m (60.0s)
Standard deviation:         59.1s
Minimum difference:         30.0s
Maximum difference:         3.3m (200.0s)
25th percentile:           1.0m (60.0s)
75th percentile:           1.5m (90.0s)
90th percentile:           2.6m (156.0s)
95th percentile:           3.0m (178.0s)
======================================================================

Files with timestamp difference above 95th percentile (3.0m (178.0s)):
Total: 1 files
  2025-03-03_09-43-20_k4.png  (+3.3m (200.0s) after kept 2025-03-03_09-40-00_k4.png)
"""
    assert expected in out


def test_percentile_and_std_helpers_against_hand_values():
    values = [1, 2, 3, 4, 10]
    # rank 0.25 * 4 = 1 -> 2; 0.9 * 4 = 3.6 -> 4 + 0.6 * 6 = 7.6
    assert dedupe.percentile(values, 25) == 2
    assert dedupe.percentile(values, 90) == pytest.approx(7.6)
    stats = dedupe.difference_stats([2, 4, 4, 4, 5, 5, 7, 9])
    assert stats.std == pytest.approx(2.0)          # population, not sample (2.138)
    assert stats.median == 4.5 and stats.mean == 5
    assert dedupe.format_seconds(60) == "1.0m (60.0s)"
    assert dedupe.format_seconds(36) == "36.0s"


def test_outliers_listed_largest_first_with_kept_file(tmp_path, capsys):
    # 41 pairs: 39 at 60 s, one at 90 s, one at 150 s. The 95th percentile
    # is rank 40 * 0.95 = 38 -> 60 s, so exactly the 150 s and 90 s pairs are
    # above it, in that order.
    src = tmp_path / "src"
    make_pairs(src, [60] * 20 + [90] + [60] * 19 + [150])

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 0
    tail = out.split("above 95th percentile (1.0m (60.0s)):\n")[1].splitlines()
    assert tail[0] == "Total: 2 files"
    assert tail[1].startswith("  2025-03-03_") and "k40.png  (+2.5m (150.0s) after kept" in tail[1]
    assert "k20.png  (+1.5m (90.0s) after kept 2025-03-03_" in tail[2]


def test_corrupt_images_copied_reported_and_exit_1(tmp_path, capsys):
    src = tmp_path / "src"
    good = write_image(src / "2025-02-14_10-00-00_good.png", seed=5)
    png = (src / "2025-02-14_10-01-00_cut.png")
    png.write_bytes(good.read_bytes()[:-40])       # lost its end: same size as nothing else
    copy_as(png, "2025-02-14_10-02-00_cut.png")     # two byte-identical corrupt files
    jpg = write_image(src / "2025-02-14_11-00-00_photo.jpg", seed=6)
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    (src / "2025-02-14_12-00-00_text.png").write_bytes(b"not an image at all")

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 1
    assert names(tmp_path / "out") == names(src)   # nothing dropped
    for name in ("10-01-00_cut.png", "10-02-00_cut.png", "11-00-00_photo.jpg", "12-00-00_text.png"):
        assert f"warning: 2025-02-14_{name}: " in err
    assert "Unreadable/corrupt images (kept as unique): 4" in out
    assert "Traceback" not in err


def test_conflicting_output_never_overwritten(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(src / "2025-02-14_10-05-00_b.png", seed=2)
    other = write_image(tmp_path / "out" / "2025-02-14_10-00-00_a.png", seed=9)
    before = other.read_bytes()

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 1
    assert other.read_bytes() == before
    assert "error: 2025-02-14_10-00-00_a.png: a different file already has this name" in err
    assert "Not copied, errors: 1" in out
    assert names(tmp_path / "out") == ["2025-02-14_10-00-00_a.png", "2025-02-14_10-05-00_b.png"]


def test_rerun_is_idempotent_and_uses_the_cache(tmp_path, capsys):
    src = tmp_path / "src"
    first = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(first, "2025-02-14_10-01-00_a.png")
    save_retagged(src / "2025-02-14_10-03-00_t1.png", 2, "aaaa")
    save_retagged(src / "2025-02-14_10-04-00_t2.png", 2, "bbbb")
    out_dir = tmp_path / "out"
    source_before = snapshot(src)

    code, out1, _ = run(capsys, "--source", str(src), "--output", str(out_dir))
    output_before = {k: v for k, v in snapshot(out_dir).items() if not k.startswith(".")}
    code2, out2, _ = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == code2 == 0
    assert "Files read: 4, decoded for pHash: 2, answered from cache: 0" in out1
    assert "Files read: 0, decoded for pHash: 0, answered from cache: 4" in out2
    assert "Unique images copied: 0\n  Already in output (identical, skipped): 2" in out2
    assert {k: v for k, v in snapshot(out_dir).items() if not k.startswith(".")} == output_before
    assert (out_dir / CACHE_FILE).exists()
    assert snapshot(src) == source_before
    assert naming.list_images(out_dir).unparsed == []     # the cache is invisible downstream

    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    code3, out3, _ = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code3 == 0 and "Files read: 1," in out3          # a changed file is read again
    code4, out4, _ = run(capsys, "--source", str(src), "--output", str(out_dir), "--no-cache")
    assert "Files read: 4," in out4 and code4 == 0


def build_mixed_folder(src):
    """Everything the fast path shortcuts, and everything it must not."""
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(a, "2025-02-14_10-01-00_a.png")                  # identical re-post
    copy_as(a, "2025-02-14_10-02-30_a.png")
    copy_as(a, "2025-02-17_10-00-00_a.png")                  # other date
    save_retagged(src / "2025-02-14_11-00-00_t.png", 2, "first")     # same size,
    save_retagged(src / "2025-02-14_11-01-00_t.png", 2, "again")     # other bytes
    chart_image(2).save(src / "2025-02-14_11-02-00_t.png", "PNG", compress_level=1)  # other size
    write_image(src / "2025-02-14_12-00-00_j.jpg", seed=3)
    image = chart_image(4)
    image.save(src / "2025-02-14_13-00-00_v.png")
    ImageDraw.Draw(image).rectangle([40, 20, 60, 40], fill=(0, 0, 0))
    image.save(src / "2025-02-14_13-01-00_v.png")             # a look-alike, pHash near
    cut = src / "2025-02-14_14-00-00_cut.png"
    cut.write_bytes(a.read_bytes()[:200])
    copy_as(cut, "2025-02-14_14-01-00_cut.png")
    for seed in range(10, 14):
        write_image(src / f"2025-02-18_09-3{seed - 10}-00_s.png", seed=seed)


@pytest.mark.parametrize("max_distance, ignore_size", [(0, False), (0, True), (12, False), (20, True)])
def test_fast_path_gives_the_same_plan_as_hashing_every_file(tmp_path, max_distance, ignore_size):
    src = tmp_path / "src"
    build_mixed_folder(src)
    images = naming.list_images(src).images

    with Workers(1) as workers:
        fast, fast_stats = dedupe.fetch_records(images, NoCache(), workers,
                                                fast=True, ignore_size=ignore_size)
        full, full_stats = dedupe.fetch_records(images, NoCache(), workers,
                                                fast=False, ignore_size=ignore_size)
    fast_plan = dedupe.plan_dedupe(fast, max_distance, ignore_size)
    full_plan = dedupe.plan_dedupe(full, max_distance, ignore_size)

    assert fast_plan.signature() == full_plan.signature()
    assert full_stats.decoded == len(images) - 2        # every sound file
    assert fast_stats.decoded < full_stats.decoded
    removed = {item.record.name for item in fast_plan.removed}
    # the same-size, other-bytes look-alike was decoded and caught
    assert "2025-02-14_11-01-00_t.png" in removed
    assert "2025-02-14_11-02-00_t.png" in removed if ignore_size else \
        "2025-02-14_11-02-00_t.png" not in removed
    assert {"2025-02-14_14-00-00_cut.png", "2025-02-14_14-01-00_cut.png"} == \
        {r.name for r in fast_plan.corrupt}


def write_damaged_behind_checksums(path, seed):
    """A PNG whose compressed pixels are damaged but whose chunk CRCs are right
    (what a broken encoder writes): the structure check passes it, only a
    decode finds it."""
    data = bytearray(image_bytes(seed=seed, size=(64, 48)))
    offset = 8
    while data[offset + 4:offset + 8] != b"IDAT":
        offset += 12 + struct.unpack(">I", data[offset:offset + 4])[0]
    length = struct.unpack(">I", data[offset:offset + 4])[0]
    body = bytearray(data[offset + 8:offset + 8 + length])
    middle = len(body) // 2
    body[middle:middle + 16] = bytes(byte ^ 0xFF for byte in body[middle:middle + 16])
    data[offset + 8:offset + 8 + length] = body
    data[offset + 8 + length:offset + 12 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
    Path(path).write_bytes(bytes(data))
    return Path(path)


def test_no_fast_path_decodes_every_file_and_finds_damage_behind_checksums(tmp_path, capsys):
    src = tmp_path / "src"
    build_mixed_folder(src)
    write_damaged_behind_checksums(src / "2025-02-19_10-00-00_crc.png", seed=21)
    listed = len(naming.list_images(src).images)

    fast_code, fast_out, fast_err = run(capsys, "--source", str(src), "--output", str(tmp_path / "fast"),
                                        "--workers", "2")
    full_code, full_out, full_err = run(capsys, "--source", str(src), "--output", str(tmp_path / "full"),
                                        "--no-fast-path", "--workers", "2")

    assert fast_code == full_code == 1                  # the cut PNGs are corrupt either way
    # the fast path decodes only what a comparison needs and trusts the CRCs ...
    assert "Unreadable/corrupt images (kept as unique): 2" in fast_out
    assert "crc.png" not in fast_err
    assert f"decoded for pHash: {listed - 2}," not in fast_out
    # ... --no-fast-path decodes every file that passed the check, and so finds it
    assert f"Files read: {listed}, decoded for pHash: {listed - 2}, answered from cache: 0" in full_out
    assert "Unreadable/corrupt images (kept as unique): 3" in full_out
    assert "warning: 2025-02-19_10-00-00_crc.png: cannot decode: broken data stream" in full_err
    assert names(tmp_path / "fast") == names(tmp_path / "full")   # corrupt images are copied too


def test_max_distance_groups_near_images_to_the_earliest_kept(tmp_path, capsys):
    src = tmp_path / "src"
    image = chart_image(4)
    near = src / "2025-02-14_13-01-00_v.png"
    src.mkdir()
    image.save(src / "2025-02-14_13-00-00_v.png")
    ImageDraw.Draw(image).rectangle([40, 20, 60, 40], fill=(0, 0, 0))
    image.save(near)
    distance = hamming(str(imagehash.phash(Image.open(src / "2025-02-14_13-00-00_v.png"))),
                                    str(imagehash.phash(Image.open(near))))
    assert 0 < distance <= 20

    assert run(capsys, "--source", str(src), "--output", str(tmp_path / "o1"), "--ignore-size",
               "--max-distance", str(distance - 1))[0] == 0
    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "o2"),
                       "--ignore-size", "--max-distance", str(distance))

    assert names(tmp_path / "o1") == names(src)
    assert names(tmp_path / "o2") == ["2025-02-14_13-00-00_v.png"] and code == 0


def test_report_files_csv_and_json(tmp_path, capsys):
    src = tmp_path / "src"
    make_pairs(src, [45, 75])

    assert run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--report", "r.csv")[0] == 0
    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"),
                       "--report", "r.json", "--dry-run")

    with open("r.csv", newline="") as report:
        rows = list(csv.DictReader(report))
    assert [(r["kept"], r["removed"], float(r["difference_seconds"])) for r in rows] == [
        ("2025-03-03_09-00-00_k0.png", "2025-03-03_09-00-45_k0.png", 45.0),
        ("2025-03-03_09-10-00_k1.png", "2025-03-03_09-11-15_k1.png", 75.0)]
    groups = json.loads(Path("r.json").read_text())["groups"]
    assert [(g["kept"], [(r["name"], r["difference_seconds"]) for r in g["removed"]]) for g in groups] \
        == [(r["kept"], [(r["removed"], float(r["difference_seconds"]))]) for r in rows]
    assert code == 0


def test_dry_run_changes_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    first = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(first, "2025-02-14_10-01-00_a.png")

    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--dry-run")

    assert code == 0
    assert not (tmp_path / "out").exists()
    assert "  2025-02-14_10-01-00_a.png duplicates 2025-02-14_10-00-00_a.png (+1.0m (60.0s)" in out
    assert "Unique images to copy: 1" in out

    assert run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))[0] == 0
    cache = tmp_path / "out" / CACHE_FILE
    first.touch()                                   # the cache row is now stale
    before = (cache.read_bytes(), cache.stat().st_mtime_ns)
    code, out, _ = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--dry-run")
    assert code == 0
    assert "Files read: 1, decoded for pHash: 0, answered from cache: 1" in out
    assert (cache.read_bytes(), cache.stat().st_mtime_ns) == before   # read, never written


def test_unparsed_names_reported_counted_and_exit_1(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(src / "holiday photo.png", seed=2)

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))

    assert code == 1
    assert "warning: skipped holiday photo.png: name is not" in err
    assert "Skipped, name not parsed: 1" in out
    assert names(tmp_path / "out") == ["2025-02-14_10-00-00_a.png"]


@pytest.mark.parametrize("args, message", [
    (["--source", "nowhere"], "folder not found: nowhere"),
    (["--source", "src", "--report", "r.txt"], "--report must end in .csv or .json"),
    (["--source", "src", "--output", "src"], "different folder"),
    (["--source", "src", "--max-distance", "x"], "expected a whole number"),
    (["--source", "src", "--output", "afile/out"], "cannot create --output folder afile/out"),
    (["--source", "src", "--output", "out", "--report", "src"], "--report must end in"),
    (["--source", "src", "--output", "out", "--report", "dir.csv"], "--report is a folder: dir.csv"),
])
def test_bad_input_is_a_one_line_error_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "src").mkdir()
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "afile").write_text("a file, not a folder")
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_subprocess_run(tmp_path):
    src = tmp_path / "src"
    first = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(first, "2025-02-14_10-01-03_a.png")
    done = subprocess.run([sys.executable, str(ROOT / "deduplicate_images.py"), "--source", "src",
                           "--output", "clean"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Deduplication Summary:" in done.stdout and "Mean difference:            1.1m (63.0s)" \
        in done.stdout
    assert names(tmp_path / "clean") == ["2025-02-14_10-00-00_a.png"]


def test_damage_only_a_decode_finds_is_caught_by_the_fast_path(tmp_path, capsys):
    # GIF and JPEG carry no checksum: these pass a header/trailer check and
    # fail only when decoded. Byte-identical copies must not be collapsed by
    # the fast path when hashing every file would keep them as corrupt.
    from helpers import image_bytes

    src = tmp_path / "src"
    src.mkdir()
    gif = bytearray(image_bytes(seed=5, fmt="GIF"))
    middle = int(len(gif) * 0.4)
    gif[middle:middle + 32] = bytes(32)                  # LZW data zeroed
    jpeg = bytearray(image_bytes(seed=5, fmt="JPEG"))
    jpeg[90] = 0                                         # a quantisation table entry
    for stamp in ("10-00-00", "10-01-00"):
        (src / f"2025-02-14_{stamp}_g.gif").write_bytes(bytes(gif))
        (src / f"2025-02-14_{stamp}_j.jpg").write_bytes(bytes(jpeg))
    images = naming.list_images(src).images

    with Workers(1) as workers:
        fast, _ = dedupe.fetch_records(images, NoCache(), workers, fast=True)
        full, _ = dedupe.fetch_records(images, NoCache(), workers, fast=False)
    assert dedupe.plan_dedupe(fast).signature() == dedupe.plan_dedupe(full).signature()

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))
    assert code == 1
    assert names(tmp_path / "out") == names(src)       # all four kept
    assert "Unreadable/corrupt images (kept as unique): 4" in out


def test_a_file_gone_after_the_listing_is_reported_not_a_traceback(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    gone = write_image(src / "2025-02-14_11-00-00_b.png", seed=2)
    images = naming.list_images(src).images
    gone.unlink()

    with Workers(1) as workers:
        records, _ = dedupe.fetch_records(images, NoCache(), workers)
    plan = dedupe.plan_dedupe(records)

    assert [r.name for r in plan.corrupt] == ["2025-02-14_11-00-00_b.png"]
    assert plan.corrupt[0].error.startswith("cannot read")
    (tmp_path / "out").mkdir()
    result = dedupe.apply_copies(plan.keep, tmp_path / "out")
    assert result.copied == ["2025-02-14_10-00-00_a.png"]
    assert [name for name, _ in result.failed] == ["2025-02-14_11-00-00_b.png"]


def test_an_earlier_copy_that_is_now_a_duplicate_is_removed_a_user_file_is_not(tmp_path, capsys):
    # A first download window began mid-day: the 10:01 re-post was kept.
    # A wider download then brought the 10:00 original.
    src, out_dir = tmp_path / "src", tmp_path / "out"
    repost = write_image(src / "2025-02-14_10-01-00_a.png", seed=1)
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    copy_as(repost, "2025-02-14_10-00-00_a.png")
    mine = write_image(out_dir / "2025-02-14_09-00-00_mine.png", seed=7)
    before = mine.read_bytes()

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir), "--dry-run")
    assert code == 0 and "would be removed" in out and "  2025-02-14_10-01-00_a.png" in out
    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 0, err
    assert "Earlier copies removed (now duplicates, or source gone): 1" in out
    assert "Left alone: 2025-02-14_09-00-00_mine.png (not written by this step)" in out
    assert names(out_dir) == ["2025-02-14_09-00-00_mine.png", "2025-02-14_10-00-00_a.png"]
    assert mine.read_bytes() == before


def test_an_earlier_copy_changed_since_is_left_alone(tmp_path, capsys):
    src, out_dir = tmp_path / "src", tmp_path / "out"
    repost = write_image(src / "2025-02-14_10-01-00_a.png", seed=1)
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    write_image(out_dir / repost.name, seed=8)           # the user edited our copy
    copy_as(repost, "2025-02-14_10-00-00_a.png")

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 1
    assert f"{repost.name} was copied here earlier but has changed since; left alone" in err
    assert names(out_dir) == ["2025-02-14_10-00-00_a.png", repost.name]


def without_root_file_powers():
    """A command prefix under which chmod applies even to root, or None."""
    if os.name != "posix":
        return None
    if os.geteuid() != 0:
        return []                     # permissions already apply
    if not shutil.which("setpriv"):
        return None
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize("script", ["deduplicate_images.py", "extract_one_per_day.py"])
def test_unreadable_source_folder_is_a_one_line_error(tmp_path, script):
    prefix = without_root_file_powers()
    if prefix is None:
        pytest.skip("no way to make a folder unreadable here")
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    src.chmod(0)
    try:
        done = subprocess.run([*prefix, sys.executable, str(ROOT / script), "--source", "src", "--output", "out"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        src.chmod(0o755)
    assert done.returncode == 2
    assert done.stderr.endswith("cannot read folder src: Permission denied\n")
    assert len(done.stderr.splitlines()) == 1


def test_cache_works_in_a_folder_named_with_uri_characters(tmp_path, capsys):
    src = tmp_path / "src"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    out_dir = "clean #2?x%41"
    assert run(capsys, "--source", str(src), "--output", out_dir)[0] == 0
    before = sorted(os.listdir(tmp_path))

    code, out, err = run(capsys, "--source", str(src), "--output", out_dir)

    assert code == 0 and err == ""
    assert "Files read: 0, decoded for pHash: 0, answered from cache: 1" in out
    assert sorted(os.listdir(tmp_path)) == before == ["clean #2?x%41", "src"]


def test_report_never_overwrites_a_different_file(tmp_path, capsys):
    src = tmp_path / "src"
    make_pairs(src, [45])
    Path("r.json").write_text("someone else's notes\n")

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"),
                         "--report", "r.json")

    assert code == 1
    assert Path("r.json").read_text() == "someone else's notes\n"
    assert "error: report not written: r.json exists with different content" in err
    assert names(tmp_path / "out") == ["2025-03-03_09-00-00_k0.png"]   # the copy still ran
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


_REAL_CHECK_FILE = check_file


def _check_file_in_a_worker(path):
    """images.integrity.check_file as the --workers tests run it (set up by
    watch_workers, settings in a file beside the source folder: a worker
    started by a fork server sees no environment variable set by the test).
    A file named *crash* ends the worker process that checks it (os._exit: a
    real crash). Every other call leaves the id of its process in pids/ and
    waits (up to the deadline) for `wanted` processes to have taken a file
    each: a busy worker takes no other file, so every worker of the pool is seen."""
    watch = Path(path).parent.parent / "watch"
    settings = json.loads((watch / "settings.json").read_text())
    if "crash" in Path(path).name:
        if os.getpid() == settings["test_pid"]:
            raise RuntimeError("asked to crash a worker, but the file is checked in the test's own process")
        os._exit(3)
    (watch / "pids" / str(os.getpid())).touch()
    while len(os.listdir(watch / "pids")) < settings["wanted"] and time.time() < settings["deadline"]:
        time.sleep(0.005)
    return _REAL_CHECK_FILE(path)


def watch_workers(monkeypatch, tmp_path, wanted):
    """Run every file check of images in tmp_path/src through _check_file_in_a_worker,
    in the pool from the first file. Returns the folder of the pid files."""
    (tmp_path / "watch" / "pids").mkdir(parents=True)
    (tmp_path / "watch" / "settings.json").write_text(json.dumps(
        {"wanted": wanted, "deadline": time.time() + 10, "test_pid": os.getpid()}))
    monkeypatch.setattr(dedupe, "check_file", _check_file_in_a_worker)
    monkeypatch.setattr(dedupe, "PARALLEL_MIN_CHECKS", 1)
    return tmp_path / "watch" / "pids"


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_flag_sets_how_many_processes_read_the_files(tmp_path, capsys, monkeypatch, workers):
    pids = watch_workers(monkeypatch, tmp_path, wanted=workers)
    src = tmp_path / "src"
    for seed in range(12):
        write_image(src / f"2025-02-14_10-{seed:02d}-00_w.png", seed=seed, size=(40, 30))

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"),
                         "--workers", str(workers))

    assert code == 0, err
    assert "Files read: 12," in out
    seen = {int(entry.name) for entry in pids.iterdir()}
    if workers == 1:
        assert seen == {os.getpid()}                    # no pool: read in this process
    else:
        assert len(seen) == workers and os.getpid() not in seen


def test_a_worker_that_dies_ends_the_run_with_a_one_line_error(tmp_path, capsys, monkeypatch):
    watch_workers(monkeypatch, tmp_path, wanted=1)
    src = tmp_path / "src"
    for seed in range(6):
        write_image(src / f"2025-02-14_10-{seed:02d}-00_w.png", seed=seed, size=(40, 30))
    write_image(src / "2025-02-14_11-00-00_crash.png", seed=9, size=(40, 30))

    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--workers", "2")

    assert code == 1
    assert err == ("error: a worker process stopped without an answer (out of memory?); "
                   "try again with fewer --workers; nothing was copied\n")
    assert names(tmp_path / "out") == []


def test_a_worker_process_that_dies_is_a_clear_error():
    # os._exit ends the worker process itself: a real crash, no mock.
    with Workers(2) as workers, pytest.raises(WorkerDied, match="fewer --workers"):
        workers.map(os._exit, [3, 3], minimum=1)
    err = dedupe.RunError("x")
    assert err.exit_code == 1 and not isinstance(err, dedupe.cli.UsageError)


def test_a_cached_path_taken_over_by_another_image_is_hashed_again(tmp_path, capsys):
    """Two different pasted images of the same size and mtime; a rename chain
    (as adjust_timestamps makes) moves the second onto the first's old path.
    The cache must not answer for it with the first image's hash."""
    src = tmp_path / "src"
    # BMP: same dimensions, same file size, different pictures
    first = write_image(src / "2026-11-20_10-00-00_image.bmp", seed=1)
    second = write_image(src / "2026-11-20_15-00-00_image.bmp", seed=2)
    assert first.stat().st_size == second.stat().st_size
    for path in (first, second):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert run(capsys, "--source", str(src), "--output", str(tmp_path / "out"))[0] == 0

    # the chain: 10:00 -> 05:00, then 15:00 -> 10:00 (a different image now at the cached path)
    os.rename(first, src / "2026-11-20_05-00-00_image.bmp")
    os.rename(second, first)
    code, out, err = run(capsys, "--source", str(src), "--output", str(tmp_path / "out"), "--dry-run")
    assert code == 0, err
    assert "Duplicates skipped: 0" in out


def test_the_cache_follows_renames_adjust_and_undo_read_nothing_again(tmp_path, capsys):
    """The cache is keyed by the file's identity, not its name: after the
    timestamp tools rename every file (and after their undo), a re-run
    reads none of them again, and still gives the same answer."""
    import adjust_timestamps

    src, out_dir = tmp_path / "src", tmp_path / "out"
    first = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(first, "2025-02-14_10-01-00_a.png")
    write_image(src / "2025-02-14_11-00-00_b.png", seed=2)
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0

    assert adjust_timestamps.main(["--folders", str(src), "--hours", "-1", "--yes"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "--source", str(src), "--output", str(out_dir), "--dry-run")
    assert code == 0
    assert "Files read: 0, decoded for pHash: 0, answered from cache: 3" in out
    assert "2025-02-14_09-01-00_a.png duplicates 2025-02-14_09-00-00_a.png" in out

    assert adjust_timestamps.main(["--folders", str(src), "--undo"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 0
    assert "Files read: 0, decoded for pHash: 0, answered from cache: 3" in out
    assert names(out_dir) == ["2025-02-14_10-00-00_a.png", "2025-02-14_11-00-00_b.png"]


def test_many_copies_made_in_worker_processes_are_exact_and_reported_in_order(tmp_path, capsys):
    """From PARALLEL_MIN_COPIES on, the copies run in the worker processes:
    every copy has its source's bytes and mtime and is in the record; a
    name held by the user's file is a conflict, never overwritten."""
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    count = records.PARALLEL_MIN_COPIES * 3
    sources = [write_image(src / f"2025-02-{1 + i % 20:02d}_10-{i:02d}-00_c.png", seed=i) for i in range(count)]
    for i, path in enumerate(sources):
        os.utime(path, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i))
    out_dir.mkdir()
    mine = out_dir / sources[7].name
    mine.write_bytes(b"the user's own file")

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 1
    assert f"Unique images copied: {count - 1}" in out
    assert f"error: {mine.name}: a different file already has this name" in err
    assert mine.read_bytes() == b"the user's own file"
    record = records.read_record(out_dir)
    for path in sources:
        if path.name == mine.name:
            assert path.name not in record
            continue
        copy = out_dir / path.name
        assert copy.read_bytes() == path.read_bytes()
        assert copy.stat().st_mtime_ns == path.stat().st_mtime_ns
        assert record[path.name].digest == records.digest_of(path)
        assert record[path.name].key == records.file_key(copy.stat())
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".part")]


def test_a_worker_killed_mid_copy_leaves_every_copy_made_and_recorded(tmp_path, capsys, monkeypatch):
    """A copy worker killed (kill -9, out of memory) after writing a copy:
    the run copies the rest itself, takes the copy the dead worker wrote
    (its source's bytes) as its own, leaves no half-written temp file, and
    the record holds every copy, so a re-run has nothing to do."""
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    count = records.PARALLEL_MIN_COPIES * 3
    sources = [write_image(src / f"2025-03-{1 + i % 20:02d}_10-{i:02d}-00_k.png", seed=i) for i in range(count)]
    parent, real = os.getpid(), records.copy_new

    def dies_in_a_worker(job):
        outcome = real(job)
        if os.getpid() != parent and job[-1] == sources[20].name:
            open(os.path.join(os.path.dirname(job[1]), ".half.abcdefgh.part"), "wb").close()
            (tmp_path / "died").touch()
            os._exit(1)   # after writing this copy, before telling anyone
        return outcome
    # pickled by name, as the real one is: the forked workers find this one there too
    dies_in_a_worker.__module__, dies_in_a_worker.__qualname__ = records.__name__, "copy_new"
    monkeypatch.setattr(records, "copy_new", dies_in_a_worker)

    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))

    assert code == 0, err
    assert (tmp_path / "died").exists()   # the copies did run in a worker, and it died
    assert f"Unique images copied: {count}" in out
    record = records.read_record(out_dir)
    assert sorted(record) == sorted(p.name for p in sources) == names(out_dir)
    for path in sources:
        assert (out_dir / path.name).read_bytes() == path.read_bytes()
        assert record[path.name].key == records.file_key((out_dir / path.name).stat())
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".part")]
    monkeypatch.setattr(records, "copy_new", real)
    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 0 and "Unique images copied: 0" in out and f"Already in output (identical, skipped): {count}" in out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_copy_that_fails_unexpectedly_ends_the_run_instead_of_retrying_forever(tmp_path, capsys, monkeypatch,
                                                                                   workers):
    """A copy raising what is no OSError (a bug, not the disk nor a killed
    worker) raises again on every retry: the run stops with it (after one
    fall back from the pool to this process), it does not copy the same
    file over and over holding the folder's lock, and nothing is lost."""
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    count = records.PARALLEL_MIN_COPIES * 2
    sources = [write_image(src / f"2025-04-{1 + i % 20:02d}_10-{i:02d}-00_u.png", seed=i) for i in range(count)]
    calls = []

    def fails(job):
        calls.append(job[-1])
        if len(calls) > 50:
            raise KeyboardInterrupt   # the endless retry, cut short for the test
        raise ValueError("not a disk error")
    fails.__module__, fails.__qualname__ = records.__name__, "copy_new"   # pickled by name, as the real one
    monkeypatch.setattr(records, "copy_new", fails)

    with pytest.raises(ValueError, match="not a disk error"):
        dedupe.main(["--source", str(src), "--output", str(out_dir), "--workers", workers])
    assert len(calls) <= 2   # in this process: once through the pool's mapper, once more at most
    assert all(p.exists() for p in sources) and names(out_dir) == []
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".part")]


def reads_update_atime(folder) -> bool:
    """Whether reading a file here updates an access time older than its
    mtime (relatime, strictatime; not noatime)."""
    probe = Path(folder) / "atime-probe"
    probe.write_bytes(b"x" * 100)
    os.utime(probe, ns=(0, probe.stat().st_mtime_ns))
    probe.read_bytes()
    updated = probe.stat().st_atime_ns > 0
    probe.unlink()
    return updated


def test_a_recorded_copy_is_accepted_unread_and_read_only_on_a_mismatch(tmp_path, capsys):
    """An output file its record vouches for (written from this source, with
    the recorded size, mtime and inode, and the digest the cache holds) is
    accepted without reading it; a mismatch is read; a source whose digest
    this run knows to differ from the record's is copied again."""
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    b = save_retagged(src / "2025-02-14_11-00-00_b.png", 2, "aaaa")
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    copy_a, copy_b = out_dir / a.name, out_dir / b.name

    # Bytes changed in place, size and mtime put back: the identity vouches, nothing reads it
    # (where reading updates the access time, that shows it: set to 0, it stays 0).
    stat = copy_a.stat()
    with open(copy_a, "r+b") as handle:
        handle.seek(60)
        byte = handle.read(1)
        handle.seek(60)
        handle.write(bytes([byte[0] ^ 0xFF]))
    for copy in (copy_a, copy_b):
        os.utime(copy, ns=(0, stat.st_mtime_ns if copy == copy_a else copy.stat().st_mtime_ns))
    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 0, err
    assert "Already in output (identical, skipped): 2" in out and "Files read: 0," in out
    atime_shows_reads = reads_update_atime(tmp_path)
    if atime_shows_reads:
        assert copy_a.stat().st_atime_ns == copy_b.stat().st_atime_ns == 0

    # Another mtime: now it is read, found changed, left alone and reported.
    os.utime(copy_a, ns=(0, stat.st_mtime_ns + 10**9))
    code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert code == 1 and f"{a.name} was copied here earlier but has changed since" in err
    if atime_shows_reads:
        assert copy_a.stat().st_atime_ns > 0 and copy_b.stat().st_atime_ns == 0

    # Touched with its bytes intact: read once, found ours, its new identity recorded.
    os.utime(copy_b, ns=(stat.st_atime_ns, copy_b.stat().st_mtime_ns + 10**9))
    run(capsys, "--source", str(src), "--output", str(out_dir))
    assert records.read_record(out_dir)[b.name].key == records.file_key(copy_b.stat())

    # The source rewritten in place (same size, inode and mtime): the cache
    # trusts its identity as the record does; read again (--no-cache), its
    # digest differs from the one recorded, so the copy is made again.
    stat = b.stat()
    save_retagged(b, 2, "bbbb")
    os.utime(b, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (b.stat().st_ino, b.stat().st_size) == (stat.st_ino, stat.st_size)
    code, out, _ = run(capsys, "--source", str(src), "--output", str(out_dir))
    assert copy_b.read_bytes() != b.read_bytes()
    code, out, _ = run(capsys, "--source", str(src), "--output", str(out_dir), "--no-cache")
    assert "Unique images copied: 1" in out
    assert copy_b.read_bytes() == b.read_bytes()


def test_the_pool_gives_every_result_once_and_in_order_from_a_list_or_a_generator():
    """Workers.imap keeps a few chunks in flight (not the whole batch);
    every item is answered once, in order, whichever kind of iterable."""
    with Workers(2) as workers:
        assert workers.map(abs, list(range(-300, 0)), minimum=1) == list(range(300, 0, -1))
        assert list(workers.imap(abs, (n for n in range(-301, 0)), 301, 1)) == list(range(301, 0, -1))


def test_the_run_pauses_the_cyclic_collector_and_restores_it(tmp_path, capsys, monkeypatch):
    """100,000 long-lived records hold no cycles: a run makes no collector
    passes over them (a sixth of a cached re-run), and leaves gc as it was."""
    import gc

    seen = []
    real_plan = dedupe.plan_dedupe

    def plan_noting_gc(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(dedupe, "plan_dedupe", plan_noting_gc)
    write_image(tmp_path / "src" / "2025-02-14_10-00-00_a.png", seed=1)
    assert gc.isenabled()
    assert run(capsys, "--source", str(tmp_path / "src"), "--output", str(tmp_path / "out"))[0] == 0
    assert seen == [False] and gc.isenabled()


def test_days_of_splits_at_each_midnight_as_dates_do():
    """days_of finds a date's end by bisecting for the next midnight: the
    same groups as grouping by date, midnight itself on its own date, and
    the last representable date too."""
    import datetime as dt
    import itertools
    import types

    stamps = [dt.datetime(2025, 2, 14, 0, 0), dt.datetime(2025, 2, 14, 23, 59, 59),
              dt.datetime(2025, 2, 15, 0, 0), dt.datetime(2025, 2, 15, 0, 0), dt.datetime(2025, 2, 17, 8),
              dt.datetime(9999, 12, 31, 0, 0), dt.datetime(9999, 12, 31, 23, 59, 59)]
    records = [types.SimpleNamespace(timestamp=t) for t in stamps]
    expected = [list(day) for _, day in itertools.groupby(records, key=lambda r: r.timestamp.date())]
    assert list(dedupe.days_of(records)) == expected
    assert [len(day) for day in expected] == [2, 2, 1, 2]


def test_a_rerun_with_nothing_to_do_reads_no_image_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A re-run where the output holds exactly the kept copies as their
    record vouches for them (records.fetch_unchanged) answers without
    planning: no image read, no record written. Anything else is planned
    in full: a record row whose digest or source identity is not the
    source's now, a copy with another identity, a copy gone, a file of the
    user's beside them, or a record written by an older version."""
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    a = write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    copy_as(a, "2025-02-14_10-01-00_a.png")
    b = write_image(src / "2025-02-14_11-00-00_b.png", seed=2)
    write_image(src / "2025-02-15_09-00-00_caf\u00e9 \"\u56fe\".png", seed=3)   # escaped in the record
    if sys.platform.startswith("linux"):   # a name that is not UTF-8, as surrogate escapes
        write_image(src / os.fsdecode(b"2025-02-16_09-00-00_\xff\xfe.png"), seed=4)
    ours = len(names(src)) - 1
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    record_file = records.record_path(out_dir)

    def rerun(*extra):
        code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir), *extra)
        assert code in (0, 1), err
        return out + err

    planned = []
    real_fetch_state = records.fetch_state
    monkeypatch.setattr(records, "fetch_state", lambda *a, **k: planned.append(1) or real_fetch_state(*a, **k))

    def quiet_rerun():
        """A re-run that must find nothing to do, and not plan it in full."""
        before, planned_before = record_file.stat(), len(planned)
        out = rerun()
        assert len(planned) == planned_before
        assert f"Already in output (identical, skipped): {ours}" in out and "Files read: 0," in out
        assert "Unique images copied: 0" in out
        assert (record_file.stat().st_mtime_ns, record_file.stat().st_ino) == (before.st_mtime_ns, before.st_ino)

    (out_dir / "notes.txt").write_text("no image: not the step's business")
    quiet_rerun()
    assert records.fetch_unchanged(out_dir, []) is None   # the folder holds more than that

    # The record's digest of b edited: not vouched for; the copy does not hold those
    # bytes, so it is the user's now; the next run finds it identical and adopts it.
    text = record_file.read_text()
    digest = records.read_record(out_dir)[b.name].digest
    record_file.write_text(text.replace(digest, "0" * len(digest)))
    assert f"{b.name} was copied here earlier but has changed since" in rerun()
    assert f"Already in output (identical, skipped): {ours}" in rerun()
    quiet_rerun()

    # The source's identity in the record edited (another mtime): copied again.
    entry = records.read_record(out_dir)[b.name]
    record_file.write_text(record_file.read_text().replace(
        f",{entry.source_key[1]},{entry.source_key[2]},", f",{entry.source_key[1] + 1},{entry.source_key[2]},", 1))
    assert "Unique images copied: 1" in rerun()
    quiet_rerun()

    # The copy touched (its bytes intact): read, found ours, its new identity recorded.
    copy_b = out_dir / b.name
    os.utime(copy_b, ns=(copy_b.stat().st_atime_ns, copy_b.stat().st_mtime_ns + 10**9))
    out = rerun()
    assert f"Already in output (identical, skipped): {ours}" in out
    assert records.read_record(out_dir)[b.name].key == records.file_key(copy_b.stat())
    quiet_rerun()

    # A copy gone: made again.
    copy_b.unlink()
    assert "Unique images copied: 1" in rerun() and copy_b.read_bytes() == b.read_bytes()
    quiet_rerun()

    # A file of the user's beside the copies: reported, left alone.
    mine = write_image(out_dir / "2025-02-14_09-00-00_mine.png", seed=7)
    assert "Left alone: 2025-02-14_09-00-00_mine.png (not written by this step)" in rerun()
    mine.unlink()
    quiet_rerun()

    # The same rows in another layout (an older version's record): planned in full, still no copy.
    record = records.read_record(out_dir)
    record_file.write_text(json.dumps({"version": 2, "files": {
        name: [e.source, list(e.source_key), list(e.key), e.digest] for name, e in record.items()}}))
    out = rerun()
    assert f"Already in output (identical, skipped): {ours}" in out and "Unique images copied: 0" in out


def test_renames_that_reorder_the_record_leave_the_next_rerun_nothing_to_do(tmp_path, capsys, monkeypatch):
    """A shift that moves one date's names past another's leaves the
    record's renamed rows where they were, naming their source by its old
    name (record_renames): the first re-run plans in full and writes the
    rows again, in order; the next has nothing to do. After adjust + undo
    of every name, the record is as it was: nothing to do at once."""
    import adjust_specific_timestamp
    import adjust_timestamps
    from discordpicextract import records

    src, out_dir = tmp_path / "src", tmp_path / "out"
    write_image(src / "2025-02-14_10-00-00_a.png", seed=1)
    write_image(src / "2025-02-15_10-00-00_b.png", seed=2)
    assert run(capsys, "--source", str(src), "--output", str(out_dir))[0] == 0
    planned = []
    real_fetch_state = records.fetch_state
    monkeypatch.setattr(records, "fetch_state", lambda *a, **k: planned.append(1) or real_fetch_state(*a, **k))

    def rerun():
        before = len(planned)
        code, out, err = run(capsys, "--source", str(src), "--output", str(out_dir))
        assert code == 0, err
        assert "Already in output (identical, skipped): 2" in out and "Files read: 0," in out
        return len(planned) > before

    assert not rerun()
    folders = ["--folders", str(src), str(out_dir)]
    assert adjust_timestamps.main([*folders, "--hours", "-1", "--yes"]) == 0
    assert adjust_timestamps.main([*folders, "--undo"]) == 0
    assert not rerun()

    assert adjust_specific_timestamp.main([*folders, "--date", "2025-02-14", "--hours", "48", "--yes"]) == 0
    capsys.readouterr()
    assert list(records.read_record(out_dir)) == ["2025-02-16_10-00-00_a.png", "2025-02-15_10-00-00_b.png"]
    assert rerun()                        # planned in full; the rows written in order
    assert list(records.read_record(out_dir)) == ["2025-02-15_10-00-00_b.png", "2025-02-16_10-00-00_a.png"]
    assert not rerun()

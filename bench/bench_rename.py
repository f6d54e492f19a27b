"""Benchmark: shift every name in three folders by -5 hours through
adjust_timestamps.main (plan, journal, rename, report), then undo it; then
the truth: quality_check_timestamps --verify (names against the post times
the archive's message IDs encode; by name, and by content through --archive)
and adjust_timestamps --to-post-time, at --truth-sizes.

Files are empty, with valid pipeline names: a rename never reads contents,
so the size of the images does not matter here. Names are 30 minutes apart,
so a -5 h shift lands on the names of other files of the batch: every file
is part of a long chain, the engine's hardest ordering case.

    python bench/bench_rename.py [--sizes 2000 20000] [--truth-sizes 10000 100000] [--dir /tmp]

Prints seconds per 1,000 files at each size and the ratio between the
largest and smallest size (about 1.0 means linear), and peak memory.
"""
import argparse
import contextlib
import hashlib
import io
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

import adjust_timestamps
import quality_check_timestamps
from discordpicextract import naming
from discordpicextract.archive import DownloadArchive
from discordpicextract.emulator import snowflake_for

FOLDERS = ("raw", "clean", "one-per-day")
ZONE = ZoneInfo("America/New_York")


def make_folders(base: Path, total: int):
    """`total` empty files split over three folders (the clean folders hold
    a subset of the raw names, as in the pipeline)."""
    shares = (total // 2, total * 3 // 10, total - total // 2 - total * 3 // 10)
    start = datetime(2025, 1, 2, 9, 30)
    folders = []
    for name, count in zip(FOLDERS, shares):
        folder = base / name
        folder.mkdir()
        for i in range(count):
            stamp = start + timedelta(minutes=30 * i)
            (folder / naming.format_name(stamp, f"img{i % 7}.png")).touch()
        folders.append(str(folder))
    return folders


def timed_main(argv, script=adjust_timestamps, expect=0):
    sink = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = script.main(argv)
    elapsed = time.perf_counter() - began
    if code != expect:
        raise SystemExit(f"{script.__name__} exited {code}: {sink.getvalue()[-2000:]}")
    return elapsed, sink.getvalue()


def make_truth_folders(base: Path, total: int):
    """A downloaded folder of `total` small distinct files whose names are
    one hour late, its archive naming each file's message (posted at the
    right time), and a copy of it without an archive (matched by content)."""
    from datetime import timezone

    start = datetime(2025, 1, 2, 14, 30, tzinfo=timezone.utc)
    down, copy = base / "download", base / "copy"
    down.mkdir()
    copy.mkdir()
    rows = []
    for i in range(total):
        posted = start + timedelta(minutes=7 * i)
        name = naming.format_name(posted.astimezone(ZONE).replace(tzinfo=None) + timedelta(hours=1),
                                  f"img{i % 7}.png")
        data = b"%d" % i
        (down / name).write_bytes(data)
        (copy / name).write_bytes(data)
        rows.append((f"{i}/attachment/{i}", snowflake_for(posted, i), name, len(data),
                     hashlib.sha256(data).hexdigest()))
    with DownloadArchive(down) as archive:
        archive.add_many(rows)
    return down, copy


def bench_truth(size, base_dir):
    """Seconds of: verify by name, verify by content, --to-post-time."""
    base = Path(tempfile.mkdtemp(prefix="bench-truth-", dir=base_dir))
    try:
        down, copy = make_truth_folders(base, size)
        plot = str(base / "plot.png")
        by_name, out = timed_main(["--folder", str(down), "--verify", "--no-adjust", "--plot", plot],
                                  quality_check_timestamps, expect=1)
        assert f"Differ:  {size}" in out, out[-800:]
        by_content, out = timed_main(["--folder", str(copy), "--verify", "--archive", str(down), "--no-adjust",
                                      "--plot", plot], quality_check_timestamps, expect=1)
        assert f"Differ:  {size}" in out, out[-800:]
        fix, out = timed_main(["--folders", str(down), "--to-post-time"])
        assert f"Total renamed: {size}" in out, out[-800:]
        return by_name, by_content, fix
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_truth(sizes, base_dir):
    print("\nThe truth: N files one hour late; verify (by name / by content), then --to-post-time")
    print(f"{'files':>8} {'verify s':>9} {'s/1000':>8} {'content s':>10} {'s/1000':>8} {'fix s':>8} {'s/1000':>8}")
    bench_truth(300, base_dir)  # warm-up: matplotlib, zone data
    per_k = {}
    for size in sizes:
        times = bench_truth(size, base_dir)
        per_k[size] = [t / size * 1000 for t in times]
        print(f"{size:>8} {times[0]:>9.3f} {per_k[size][0]:>8.4f} {times[1]:>10.3f} {per_k[size][1]:>8.4f} "
              f"{times[2]:>8.3f} {per_k[size][2]:>8.4f}")
    small, large = min(sizes), max(sizes)
    if small != large:
        ratios = ", ".join(f"{label} {per_k[large][i] / per_k[small][i]:.2f}"
                           for i, label in enumerate(("verify", "by content", "to-post-time")))
        print(f"ratio s/1000 at {large} vs {small}: {ratios} (1.0 = linear)")


def bench(size, base_dir):
    base = Path(tempfile.mkdtemp(prefix="bench-rename-", dir=base_dir))
    try:
        folders = make_folders(base, size)
        shift, out = timed_main(["--folders", *folders, "--hours", "-5", "--yes"])
        assert f"Total renamed: {size}" in out, out[-500:]
        undo, _ = timed_main(["--folders", *folders, "--undo"])
        return shift, undo
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--truth-sizes", type=int, nargs="*", default=[10000, 100000],
                        help="sizes for verify and --to-post-time (none: skip them)")
    parser.add_argument("--dir", default=None, help="where to create the temp folders (default: system temp)")
    args = parser.parse_args(argv)
    print(f"Renaming N empty files across {len(FOLDERS)} folders, -5 h shift (chains), then --undo")
    print(f"{'files':>8} {'shift s':>9} {'s/1000':>8} {'undo s':>8} {'s/1000':>8}")
    per_k = {}
    bench(300, args.dir)  # warm-up: imports, regex compilation, file system caches
    for size in args.sizes:
        shift, undo = bench(size, args.dir)
        per_k[size] = (shift / size * 1000, undo / size * 1000)
        print(f"{size:>8} {shift:>9.3f} {per_k[size][0]:>8.4f} {undo:>8.3f} {per_k[size][1]:>8.4f}")
    small, large = min(args.sizes), max(args.sizes)
    if small != large:
        print(f"ratio s/1000 at {large} vs {small}: shift {per_k[large][0] / per_k[small][0]:.2f}, "
              f"undo {per_k[large][1] / per_k[small][1]:.2f} (1.0 = linear)")
    if args.truth_sizes:
        run_truth(args.truth_sizes, args.dir)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory (ru_maxrss): {peak / 1024:.1f} MiB" if sys.platform != "darwin"
          else f"peak memory (ru_maxrss): {peak / 1024 / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

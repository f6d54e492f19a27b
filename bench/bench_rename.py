"""Benchmark: shift every name in three folders by -5 hours through
adjust_timestamps.main (plan, journal, rename, report), then undo it.

Files are empty, with valid pipeline names: a rename never reads contents,
so the size of the images does not matter here. Names are 30 minutes apart,
so a -5 h shift lands on the names of other files of the batch: every file
is part of a long chain, the engine's hardest ordering case.

    python bench/bench_rename.py [--sizes 2000 20000] [--dir /tmp]

Prints seconds per 1,000 files at each size and the ratio between the
largest and smallest size (about 1.0 means linear), and peak memory.
"""
import argparse
import contextlib
import io
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

import adjust_timestamps
from discordpicextract import naming

FOLDERS = ("raw", "clean", "one-per-day")


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


def timed_main(argv):
    sink = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = adjust_timestamps.main(argv)
    elapsed = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"adjust_timestamps exited {code}: {sink.getvalue()[-2000:]}")
    return elapsed, sink.getvalue()


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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory (ru_maxrss): {peak / 1024:.1f} MiB" if sys.platform != "darwin"
          else f"peak memory (ru_maxrss): {peak / 1024 / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

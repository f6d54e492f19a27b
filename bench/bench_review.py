"""Benchmark: review_archive.py on the dedupe benchmark's collection.

    python bench/bench_review.py              # 4,000 images (the issue's size)
    python bench/bench_review.py --count 600  # a quick trial

Builds bench_dedupe's realistic 1200x800 chart PNGs over ~200 dates, runs
dedupe and one-per-day on them (not measured), then measures:

  first      review_archive.py into an empty folder (every thumbnail made)
  cached     the same command again (nothing new: no file is read)
  open       headless Chromium loading the page (--dump-dom, then a
             screenshot) against the same browser on an empty page: the
             difference is the page's own cost

and prints each run's own breakdown (listing, pairs, thumbnails, page).
"""
import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--window-size=1280,1800"]


def quiet(main, argv):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(argv)
    if code not in (0, 1):
        raise SystemExit(f"{main.__module__} exited {code}:\n{buffer.getvalue()}")
    return buffer.getvalue()


def review(folders, output, workers):
    import review_archive

    started = time.perf_counter()
    out = quiet(review_archive.main, ["--folders", *map(str, folders), "--output", str(output),
                                      "--workers", str(workers)])
    elapsed = time.perf_counter() - started
    line = re.search(r"Thumbnails: .*", out).group(0)
    return elapsed, line


def open_in_browser(page: Path, scratch: Path, action: str) -> float:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        raise SystemExit("no chromium: apt-get install chromium")
    profile = Path(tempfile.mkdtemp(dir=scratch))
    what = ["--dump-dom"] if action == "dom" else [f"--screenshot={scratch / 'shot.png'}"]
    started = time.perf_counter()
    subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", *what, page.resolve().as_uri()],
                   capture_output=True, check=True, timeout=120)
    return time.perf_counter() - started


def main(argv=None):
    import bench_dedupe

    import deduplicate_images
    import extract_one_per_day

    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        download, clean, daily, out = temp / "dl", temp / "clean", temp / "daily", temp / "review"
        made = bench_dedupe.build(download, args.count, args.workers)
        quiet(deduplicate_images.main, ["--source", str(download), "--output", str(clean)])
        quiet(extract_one_per_day.main, ["--source", str(clean), "--output", str(daily)])
        print(f"{made} images ({len(os.listdir(clean)) - 1} kept by dedupe), {os.cpu_count()} CPUs, "
              f"--workers {args.workers}")
        for label in ("first", "cached"):
            elapsed, line = review((download, clean, daily), out, args.workers)
            print(f"  {label:<7} {elapsed:6.2f} s   {line}")
        page = out / "index.html"
        empty = temp / "empty.html"
        empty.write_text("<!DOCTYPE html><title>empty</title>")
        print(f"  page    {page.stat().st_size / 1e6:.1f} MB, {len(os.listdir(out / 'thumbs'))} thumbnails "
              f"({sum(p.stat().st_size for p in (out / 'thumbs').iterdir()) / 1e6:.1f} MB)")
        for action in ("dom", "screenshot"):
            base = min(open_in_browser(empty, temp, action) for _ in range(3))
            full = min(open_in_browser(page, temp, action) for _ in range(3))
            print(f"  open    chromium --{action:<10} page {full:5.2f} s, empty page {base:5.2f} s: "
                  f"the page's own {full - base:5.2f} s")


if __name__ == "__main__":
    main()

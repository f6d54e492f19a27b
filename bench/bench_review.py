"""Benchmark: review_archive.py on the dedupe benchmark's collection.

    python bench/bench_review.py              # 4,000 images (the issue's size)
    python bench/bench_review.py --count 600  # a quick trial

Builds bench_dedupe's realistic 1200x800 chart PNGs over ~200 dates, runs
dedupe and one-per-day on them (not measured), then measures:

  first      review_archive.py into an empty folder (every thumbnail made)
  cached     the same command again (nothing new: no file is read)
  open       headless Chromium loading the page: first contentful paint,
             DOMContentLoaded and load (every image in), read with the
             Performance API from a copy of the page with a timing script
             (the page itself has none, and its CSP forbids one); and the
             wall time of `--screenshot` against an empty page. Headless
             Chromium loads every lazy image at once, so `load` is the worst
             case; a desktop browser loads only those near the viewport.

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


TIMING = """<script>
document.addEventListener("DOMContentLoaded", () => { window.dcl = performance.now(); });
window.addEventListener("load", () => {
  const paint = performance.getEntriesByType("paint").find(e => e.name === "first-contentful-paint");
  document.body.insertAdjacentHTML("afterbegin", `<p id="timing">fcp=${paint ? paint.startTime : -1} ` +
    `dcl=${window.dcl} load=${performance.now()}</p>`);
});
</script>"""


def timed_copy(page: Path) -> Path:
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text(encoding="utf-8"))
    copy = page.with_name("timed.html")
    copy.write_text(html.replace("<title>", TIMING + "<title>", 1), encoding="utf-8")
    return copy


def page_timings(page: Path, scratch: Path) -> dict:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    profile = Path(tempfile.mkdtemp(dir=scratch))
    result = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                             timed_copy(page).resolve().as_uri()], capture_output=True, text=True, check=True,
                            timeout=120)
    found = re.search(r'<p id="timing">fcp=([\d.-]+) dcl=([\d.]+) load=([\d.]+)', result.stdout)
    return {"fcp": float(found.group(1)) / 1000, "dcl": float(found.group(2)) / 1000,
            "load": float(found.group(3)) / 1000}


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
    with tempfile.TemporaryDirectory() as scratch:
        temp = Path(scratch)
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
        runs = [page_timings(page, temp) for _ in range(3)]
        best = {key: min(run[key] for run in runs) for key in runs[0]}
        fcp = f"{best['fcp']:.2f} s" if best["fcp"] >= 0 else "after load"
        print(f"  open    first contentful paint {fcp}, DOMContentLoaded {best['dcl']:.2f} s, "
              f"load with every image {best['load']:.2f} s (best of 3)")
        base = min(open_in_browser(empty, temp, "screenshot") for _ in range(3))
        full = min(open_in_browser(page, temp, "screenshot") for _ in range(3))
        print(f"  open    chromium --screenshot: page {full:.2f} s, empty page {base:.2f} s "
              f"(browser start-up included)")


if __name__ == "__main__":
    main()

"""Benchmark: deduplicate_images.py against a plain one-by-one pHash loop.

    python bench/bench_dedupe.py              # 4,000 images (the issue's size)
    python bench/bench_dedupe.py --count 600  # a quick trial

Builds realistic 1200x800 chart PNGs over ~200 dates in a temp folder (build
time not measured): two thirds distinct charts, one third byte-identical
re-posts about a minute later on the same date, plus a few re-encoded
look-alikes (same pixels re-compressed: other size; same pixels with other
metadata: same size, other bytes, equal pHash). Then, each measured phase in
its own process so that peak memory is its own:

  plain      open every file, imagehash.phash one by one, same rule
  first      deduplicate_images.py into an empty output folder
  cached     the same command again (hash cache warm, outputs present)
  solo       first runs in one process (--workers 1) on all the files and
             on a quarter of them: peak memory is flat in the number of files
             (one decoded image and the libraries, plus a few hundred bytes
             per file; a tiny trial run may decode nothing and so stay lower)

Asserts that the tool and the plain loop select the same files.
"""
import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = (1200, 800)
DATES = 200


# ------------------------------------------------------------------ build
def chart(seed):
    """A trading-chart-like screenshot: dark ground, grid, candles, an
    average line, labels."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = SIZE
    image = Image.new("RGB", SIZE, (19, 23, 34))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 100):
        draw.line([(x, 0), (x, height)], fill=(42, 46, 57))
    for y in range(0, height, 80):
        draw.line([(0, y), (width, y)], fill=(42, 46, 57))
        draw.text((width - 60, y + 4), f"{5800 + (height - y) // 4 + rng.randrange(9)}",
                  fill=(180, 180, 190))
    price, average, points = height / 2, height / 2, []
    for i in range(110):
        x = 20 + i * 10
        move = rng.gauss(0, 9)
        open_, close = price, min(height - 40, max(40, price + move))
        high, low = min(open_, close) - rng.uniform(1, 12), max(open_, close) + rng.uniform(1, 12)
        colour = (38, 166, 154) if close < open_ else (239, 83, 80)
        draw.line([(x, high), (x, low)], fill=colour)
        draw.rectangle([x - 3, min(open_, close), x + 3, max(open_, close) + 1], fill=colour)
        price = close
        average = average * 0.9 + close * 0.1
        points.append((x, average))
        if rng.random() < 0.03:
            draw.text((x - 10, low + 8), "BUY" if move > 0 else "SELL", fill=(255, 235, 59))
    draw.line(points, fill=(41, 98, 255), width=2)
    draw.text((12, 10), f"SPX 1m  chart #{seed}  liqtest", fill=(230, 230, 230))
    return image


def _build_one(job):
    seed, paths, lookalikes = job
    image = chart(seed)
    kinds = {kind for kind, _ in lookalikes}
    # A re-tagged look-alike differs from the original only in an equally
    # long text chunk: same pixels, same size, other bytes.
    image.save(paths[0], "PNG", pnginfo=_comment("original") if "retagged" in kinds else None)
    for path in paths[1:]:
        shutil.copyfile(paths[0], path)
    for kind, path in lookalikes:
        if kind == "recompressed":   # same pixels, other size
            image.save(path, "PNG", compress_level=9)
        else:
            image.save(path, "PNG", pnginfo=_comment("reposted"))
    return len(paths) + len(lookalikes)


def _comment(text):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    return info


def plan_collection(count, seed=7):
    """Jobs (chart seed, [primary + byte-identical re-post paths], look-alikes)."""
    import holidays

    rng = random.Random(seed)
    closed = holidays.NYSE(years=range(2025, 2027))
    days, day = [], date(2025, 2, 14)
    while len(days) < DATES:   # NYSE sessions, like the real collection
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    reposts = count // 3
    lookalikes = max(2, count // 200)
    distinct = count - reposts - lookalikes
    jobs = []
    for index in range(distinct):
        day = days[index * len(days) // distinct]
        start = datetime(day.year, day.month, day.day, 9, 30) + timedelta(seconds=rng.randrange(6 * 3600))
        jobs.append([index, [start], []])
    for job in rng.sample(jobs, reposts):   # a re-post about a minute later
        job[1].append(job[1][0] + timedelta(seconds=max(30, round(rng.gauss(62, 14)))))
    for n, job in enumerate(rng.sample(jobs, lookalikes)):
        kind = "recompressed" if n % 2 else "retagged"
        job[2].append((kind, job[1][0] + timedelta(seconds=rng.randrange(90, 900))))
    return jobs


def build(folder, count, processes):
    folder.mkdir(parents=True, exist_ok=True)
    work, used = [], set()
    for seed, stamps, extras in plan_collection(count):
        paths = [_unique(folder, stamp, used) for stamp in stamps]
        looks = [(kind, _unique(folder, stamp, used)) for kind, stamp in extras]
        work.append((seed, paths, looks))
    with multiprocessing.Pool(processes) as pool:
        return sum(pool.imap_unordered(_build_one, work, chunksize=8))


def _unique(folder, stamp, used):
    while stamp in used:
        stamp += timedelta(seconds=1)
    used.add(stamp)
    return str(folder / f"{stamp:%Y-%m-%d_%H-%M-%S}_images_SPX-liqtest.png")


def subset(source, target, fraction):
    """Hard-link the files of the first `fraction` of the dates."""
    target.mkdir()
    names = sorted(os.listdir(source))
    dates = sorted({name[:10] for name in names})
    chosen = set(dates[: max(1, int(len(dates) * fraction))])
    for name in names:
        if name[:10] in chosen:
            os.link(source / name, target / name)
    return sum(1 for name in names if name[:10] in chosen)


# ----------------------------------------------------------------- phases
def plain_loop(folder):
    """The straightforward way: decode and pHash every file, same rule."""
    import imagehash
    from PIL import Image

    from discordpicextract import naming

    kept, seen = [], set()
    for image in naming.list_images(folder).images:
        try:
            with Image.open(image.path) as opened:
                key = (image.date, str(imagehash.phash(opened)), os.path.getsize(image.path))
        except Exception:
            key = ("unreadable", image.name)
        if key not in seen:
            seen.add(key)
            kept.append(image.name)
    return kept


def tool_run(folder, output, workers):
    import deduplicate_images

    buffer = io.StringIO()
    args = ["--source", str(folder), "--output", str(output)]
    if workers:
        args += ["--workers", str(workers)]
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = deduplicate_images.main(args)
    if code != 0:
        raise SystemExit(f"deduplicate_images.py exited {code}:\n{buffer.getvalue()}")
    return sorted(name for name in os.listdir(output) if not name.startswith("."))


def run_phase(phase, folder, output, workers):
    """Runs in a child process; prints one JSON line."""
    started = time.perf_counter()
    kept = plain_loop(folder) if phase == "plain" else tool_run(folder, output, workers)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "kept": sorted(kept),
                      "rss_mib": own / 1024, "worker_rss_mib": children / 1024}))


def peak(result):
    return max(result["rss_mib"], result["worker_rss_mib"])


def phase(name, folder, output=None, workers=0):
    command = [sys.executable, __file__, "--phase", name, "--folder", str(folder),
               "--output", str(output or ""), "--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr}{done.stdout}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="images to build (default 4000)")
    parser.add_argument("--workers", type=int, default=0, help="--workers for the tool (default: its own)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        return run_phase(args.phase, Path(args.folder), Path(args.output), args.workers)
    work = Path(tempfile.mkdtemp(prefix="bench-dedupe-"))
    try:
        report(work, args)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(work, args):
    source = work / "source"
    started = time.perf_counter()
    built = build(source, args.count, os.cpu_count() or 1)
    print(f"Built {built} images of {SIZE[0]}x{SIZE[1]} over {DATES} dates in "
          f"{time.perf_counter() - started:.1f}s (not measured); CPUs: {os.cpu_count()}")
    small_source = work / "small"
    small_count = subset(source, small_source, 0.25)

    plain = phase("plain", source)
    first = phase("first", source, work / "out", args.workers)
    cached = phase("cached", source, work / "out", args.workers)
    # Memory: one process (--workers 1) at two sizes, so each peak is the
    # whole run's.
    solo_small = phase("solo", small_source, work / "out-solo-small", 1)
    solo_full = phase("solo", source, work / "out-solo-full", 1)

    same = plain["kept"] == first["kept"] == cached["kept"]
    print(f"\nImages: {built}; kept by the plain loop: {len(plain['kept'])}; "
          f"kept by the tool: {len(first['kept'])}; same files: {same}")
    rows = [("plain loop (decode + pHash each)", plain, built),
            ("tool, first run", first, built),
            ("tool, cached re-run", cached, built),
            ("tool, first run, --workers 1", solo_full, built),
            ("tool, first run, --workers 1", solo_small, small_count)]
    print(f"\n{'phase':<38}{'files':>7}{'seconds':>10}{'vs plain':>10}"
          f"{'peak MiB':>10}{'(main / worker)':>18}")
    for label, result, files in rows:
        ratio = f"{plain['seconds'] / result['seconds']:.1f}x" if files == built else "-"
        print(f"{label:<38}{files:>7}{result['seconds']:>10.2f}{ratio:>10}{peak(result):>10.1f}"
              f"{result['rss_mib']:>10.1f} / {result['worker_rss_mib']:.1f}")
    print(f"\nTargets: first run >= 10x: {plain['seconds'] / first['seconds']:.1f}x; "
          f"cached re-run >= 50x: {plain['seconds'] / cached['seconds']:.1f}x")
    print(f"Peak memory, one process: {solo_small['rss_mib']:.1f} MiB at {small_count} files, "
          f"{solo_full['rss_mib']:.1f} MiB at {built} files")
    assert same, "the tool and the plain loop selected different files"


if __name__ == "__main__":
    main()

"""Benchmark: every step at 1,000 / 10,000 / 100,000 files, beside the bound
of the work it has to do, each a whole process measured in the same run.

    python bench/bench_scale.py                          # 1,000, 10,000 and 100,000 files
    python bench/bench_scale.py --sizes 1000 10000       # a quicker run
    python bench/bench_scale.py --dir /dev/shm --json after.json

The archive: trading days of 250 posts (09:30-16:00 New York names), chart
PNGs of ~46 KiB, a third of them byte-identical re-posts about a minute
later. A few hundred charts are rendered once (kept in --dir/bench-bases
between runs) and varied cheaply: each post is a base chart plus a text
chunk naming it (other bytes, other size), so building 100,000 files takes
seconds, not an hour of rendering.

Steps (each `python <script> ...` as its own process; peak RSS from wait4):

  dedupe first      deduplicate_images.py raw -> clean, empty output
  dedupe cached     the same again (nothing new)
  one per day       extract_one_per_day.py clean -> oneday
  check dates       check_unique_dates.py raw clean oneday
  quality check     quality_check_timestamps.py --no-adjust on raw, clean and
                    oneday (three processes: seconds summed, the largest peak
                    RSS); every name is inside hours, so no plot is drawn
                    (matplotlib is not counted)
  verify            the same with --verify, against the truth a download
                    leaves: raw's download archive and messages.csv, and the
                    messages.csv rows the copy steps carry to clean and
                    oneday (every name at its post time). The truth is
                    written just before and removed just after, so the
                    steps below measure what they did before it was added
                    (--messages: raw has them from the start, as after a
                    real download, and every step carries them)
  adjust            adjust_timestamps.py --hours -1 over the three folders
  undo              adjust_timestamps.py --undo
  dedupe after undo deduplicate_images.py again: every name is back
  specific fresh    adjust_specific_timestamp.py on one date + --undo, the
                    journals moved aside (no history)
  specific history  the same with the journals of everything above

Bounds (each its own process): `scan` lists and stats raw + clean; `read`
reads and sha256-hashes every raw file and copies the files dedupe kept;
`decode` computes imagehash's pHash of as many raw files as dedupe decoded
(the images whose pHash decides a group: `read` leaves them out), spread
over `--workers` processes as dedupe spreads them, and `read+decode` is the
two added; `rename` is a bare os.rename loop over as many files as adjust
renames.

Prints, per step and size: seconds, seconds per 1,000 files, peak RSS (MiB),
the ratio to its bound, and the growth exponent between sizes (1.0 =
linear). The names kept by dedupe and one per day and the names after
adjust + undo are fingerprinted, so two runs (before/after a change) can be
compared for exact outputs: `--json FILE` saves everything.
"""
import argparse
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TIME = "/usr/bin/time"   # GNU time: peak RSS of exactly one process
POSTS_PER_DAY = 250
BASES = 600
SIZE = (1200, 800)


# ------------------------------------------------------------------ build
def render_base(job):
    """One chart PNG (~46 KiB): bench_dedupe's chart plus a noisy volume
    strip, the kind of texture real screenshots carry."""
    seed, path = job
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_dedupe import chart
    from PIL import Image

    image = chart(seed)
    rng = random.Random(seed)
    strip = Image.frombytes("RGB", (SIZE[0], 8), rng.randbytes(SIZE[0] * 8 * 3))
    image.paste(strip, (0, SIZE[1] - 8))
    image.save(path, "PNG")
    return path


def bases(folder: Path, processes: int) -> list:
    """The rendered charts' bytes, rendered once per --dir."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"base-{i:04d}.png" for i in range(BASES)]
    todo = [(i, str(p)) for i, p in enumerate(paths) if not p.exists()]
    if todo:
        with multiprocessing.Pool(processes) as pool:
            list(pool.imap_unordered(render_base, todo, chunksize=8))
    return [p.read_bytes() for p in paths]


def with_text(png: bytes, text: str) -> bytes:
    """`png` with a tEXt chunk after IHDR: same pixels, other bytes."""
    data = b"Comment\x00" + text.encode("ascii")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def trading_days(count):
    import holidays

    closed = holidays.NYSE(years=range(2024, 2032))
    days, day = [], date(2024, 1, 2)
    while len(days) < count:
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    return days


def build_archive(folder: Path, total: int, charts: list) -> int:
    """`total` posts over total/250 trading days; returns the file count
    and, per name, its (size, sha256) for the archive."""
    folder.mkdir(parents=True)
    rng = random.Random(total)
    written = 0
    contents = {}
    for day in trading_days(math.ceil(total / POSTS_PER_DAY)):
        posts = min(POSTS_PER_DAY, total - written)
        distinct = posts - posts // 3
        open_ = datetime(day.year, day.month, day.day, 9, 30)
        step = 6.5 * 3600 / distinct
        picks = rng.sample(range(len(charts)), distinct)   # distinct pixels within a day
        names = []
        for n, base in enumerate(picks):
            stamp = open_ + timedelta(seconds=int(n * step + rng.uniform(0, step / 3)))
            data = with_text(charts[base], f"post {day} {n}" + " " * rng.randrange(6000))
            name = f"{stamp:%Y-%m-%d_%H-%M-%S}_image{n % 3 or ''}.png"
            names.append((stamp, data))
            (folder / name).write_bytes(data)
            contents[name] = (len(data), hashlib.sha256(data).hexdigest())
        for stamp, data in rng.sample(names, posts - distinct):   # re-posts ~1 min later
            later = stamp + timedelta(seconds=round(rng.uniform(40, 80)))
            name = f"{later:%Y-%m-%d_%H-%M-%S}_repost.png"
            (folder / name).write_bytes(data)
            contents[name] = (len(data), hashlib.sha256(data).hexdigest())
        written += posts
    return written, contents


# ------------------------------------------------------------------ truth
ZONE = "America/New_York"   # config.TIMEZONE: the names' zone (none recorded)


def write_truth(raw, copies, contents):
    """What a download leaves for --verify: raw's archive (a row per file,
    its message posted at the name's time) and messages.csv, and the
    messages.csv rows of the files each copy step kept. Returns the files
    written."""
    sys.path.insert(0, str(ROOT))
    from zoneinfo import ZoneInfo

    from discordpicextract import messages
    from discordpicextract.archive import DownloadArchive, archive_path
    from discordpicextract.emulator import snowflake_for

    zone, channel, guild = ZoneInfo(ZONE), 1100000000000000000, 1000000000000000000
    rows, entries = [], {}
    for i, (name, (size, digest)) in enumerate(sorted(contents.items())):
        posted = datetime.strptime(name[:19], "%Y-%m-%d_%H-%M-%S").replace(tzinfo=zone)
        message_id = snowflake_for(posted, i)
        rows.append((f"{message_id}/attachment/0", str(message_id), name, size, digest, str(channel)))
        entries[name] = messages.row(name, message_id=message_id, posted=posted, author="charts",
                                     author_id=1200000000000000000, text="", guild_id=guild,
                                     channel_id=channel, source="attachment")
    with DownloadArchive(raw) as archive:
        archive.add_many(rows)
    written = [archive_path(raw)]
    for folder in [raw, *copies]:
        kept = [entries[n] for n in sorted(os.listdir(folder)) if n in entries]
        messages.write_rows(folder, sorted(kept, key=lambda e: (e["posted_at"], e["file"])))
        written.append(messages.messages_path(folder))
    return written


# ----------------------------------------------------------------- bounds
def bound_scan(folders):
    count = 0
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                entry.stat(follow_symlinks=False)
                count += 1
    return count


def bound_read(source, kept_from, scratch):
    """Read + sha256 every source file, copy the ones dedupe kept."""
    os.mkdir(scratch)
    kept = set(os.listdir(kept_from))
    for entry in os.scandir(source):
        if entry.name.startswith("."):
            continue
        with open(entry.path, "rb") as handle:
            data = handle.read()
        hashlib.sha256(data).hexdigest()
        if entry.name in kept:
            with open(os.path.join(scratch, entry.name), "wb") as out:
                out.write(data)
            shutil.copystat(entry.path, os.path.join(scratch, entry.name))


def bound_rename(folders, back=False):
    """A bare rename loop: every image into a sibling folder (or back)."""
    for folder in folders:
        src, dst = (folder + ".moved", folder) if back else (folder, folder + ".moved")
        os.makedirs(dst, exist_ok=True)
        for name in os.listdir(src):
            if not name.startswith("."):
                os.rename(os.path.join(src, name), os.path.join(dst, name))
        if back:
            os.rmdir(src)


def _phash(path):
    import imagehash
    from PIL import Image

    with Image.open(path) as image:
        return str(imagehash.phash(image))


def bound_decode(source, count, processes):
    """pHash `count` raw files spread evenly over the folder (as many as
    dedupe decoded), in `processes` processes."""
    import imagehash  # noqa: F401 - imported once, before the workers fork

    names = sorted(n for n in os.listdir(source) if not n.startswith("."))
    count = int(count)
    paths = [os.path.join(source, names[i * len(names) // count]) for i in range(count)] if count else []
    with multiprocessing.Pool(int(processes)) as pool:
        list(pool.imap(_phash, paths, chunksize=8))


BOUNDS = {"scan": bound_scan, "read": bound_read, "decode": bound_decode, "rename": bound_rename}


# ------------------------------------------------------------------ steps
def run(argv, label, expect=(0,)):
    """Run one process; (seconds, peak RSS MiB). Output goes to a file
    (adjust prints a line per file)."""
    # Linux keeps ru_maxrss across exec: a child forked from this (large)
    # process would report at least our size. GNU time is small.
    # Each process starts with nothing left to write back: the gigabytes a
    # copy step wrote would otherwise be flushed during the next one (its
    # bound), slowing that one instead.
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss_file:
        began = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", rss_file.name, *argv], stdout=out,
                              stderr=subprocess.STDOUT, cwd=ROOT)
        seconds = time.perf_counter() - began
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        if proc.returncode not in expect:
            raise SystemExit(f"{label}: exit {proc.returncode}\n{text[-3000:]}")
        rss = int(rss_file.read().split()[-1]) / 1024
    return seconds, rss, text


def script(name, *args):
    return [PYTHON, str(ROOT / name), *map(str, args)]


def bound(kind, *args):
    return [PYTHON, str(Path(__file__).resolve()), "--bound", kind, *map(str, args)]


def images_in(folder) -> list:
    """The image names of `folder` (not the bookkeeping: hidden files, messages.csv)."""
    return [n for n in os.listdir(folder) if not n.startswith(".") and n != "messages.csv"]


def fingerprint(folder) -> str:
    names = sorted(images_in(folder))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16] + f" ({len(names)} files)"


def journals(folders):
    return [Path(f) / ".discordpicextract-renames.jsonl" for f in folders]


def bench_size(total, base_dir: Path, charts, results, with_messages=False):
    work = base_dir / f"scale-{total}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    raw, clean, oneday = str(work / "raw"), str(work / "clean"), str(work / "oneday")
    folders = [raw, clean, oneday]
    began = time.perf_counter()
    files, contents = build_archive(Path(raw), total, charts)
    if with_messages:  # what a download leaves beside the images, carried by every step
        write_truth(raw, [], contents)
    print(f"\n== {files:,} files (built in {time.perf_counter() - began:.1f} s, {work})", flush=True)
    row = {}

    def step(label, argv, n, bound_of=None, expect=(0,)):
        """One process (or a list of them: seconds summed, the largest RSS)."""
        seconds, rss, text = 0.0, 0.0, ""
        for one in argv if isinstance(argv[0], list) else [argv]:
            took, peak, out = run(one, label, expect)
            seconds, rss, text = seconds + took, max(rss, peak), text + out
        row[label] = {"seconds": seconds, "rss": rss, "files": n, "bound": bound_of}
        print(f"  {label:<21} {seconds:8.2f} s  {1000 * seconds / n:7.3f} s/1k  {rss:7.1f} MiB", flush=True)
        return text

    text = step("dedupe first", script("deduplicate_images.py", "--source", raw, "--output", clean),
                files, "read", expect=(0, 1))
    step("bound read", bound("read", raw, clean, work / "scratch"), files)
    shutil.rmtree(work / "scratch")
    decoded = _decoded(text)
    step("bound decode", bound("decode", raw, decoded, os.cpu_count() or 1), max(decoded, 1))
    row["bound read+decode"] = {"seconds": row["bound read"]["seconds"] + row["bound decode"]["seconds"],
                                "rss": max(row["bound read"]["rss"], row["bound decode"]["rss"]),
                                "files": files, "bound": None}
    row["dedupe first"]["bound"] = ["read", "read+decode"]
    step("bound scan", bound("scan", raw, clean), files)
    text = step("dedupe cached", script("deduplicate_images.py", "--source", raw, "--output", clean),
                files, "scan", expect=(0, 1))
    row["dedupe cached"]["read"] = _files_read(text)
    step("one per day", script("extract_one_per_day.py", "--source", clean, "--output", oneday, "-q"),
         files, "scan", expect=(0, 1))
    kept = {"clean": fingerprint(clean), "oneday": fingerprint(oneday), "raw": fingerprint(raw)}
    renamed = sum(len(images_in(f)) for f in folders)
    step("check dates", script("check_unique_dates.py", "--folders", *folders, "-q"), files, "scan",
         expect=(0, 1))
    _quality(step, work, folders, None if with_messages else contents, renamed)
    step("adjust", script("adjust_timestamps.py", "--folders", *folders, "--hours", "-1", "--yes"),
         renamed, "rename", expect=(0, 1))
    step("bound rename", bound("rename", *folders), renamed)
    run(bound("rename", "--back", *folders), "rename back")
    step("undo", script("adjust_timestamps.py", "--folders", *folders, "--undo"), renamed, "rename",
         expect=(0, 1))
    after = {"clean": fingerprint(clean), "oneday": fingerprint(oneday), "raw": fingerprint(raw)}
    text = step("dedupe after undo", script("deduplicate_images.py", "--source", raw, "--output", clean),
                files, "dedupe cached", expect=(0, 1))
    row["dedupe after undo"]["read"] = _files_read(text)
    _specific(step, folders, trading_days(1 + (total - 1) // POSTS_PER_DAY)[-1], files)
    results[total] = {"steps": row, "kept": kept, "after_undo": after,
                      "journal_bytes": sum(p.stat().st_size for p in journals(folders) if p.exists())}
    if kept != after:
        print(f"  !! names after adjust + undo differ: {kept} vs {after}")
    print(f"  outputs: {kept}", flush=True)
    shutil.rmtree(work)


def _specific(step, folders, day, files):
    """A one-date shift + undo, first with no history (journals aside),
    then with the journals of the whole run."""
    argv = script("adjust_specific_timestamp.py", "--folders", *folders, "--date", day,
                  "--hours", "1", "--yes")
    undo = script("adjust_specific_timestamp.py", "--folders", *folders, "--undo")
    for path in journals(folders):
        if path.exists():
            path.rename(path.with_name(path.name + ".aside"))
    step("specific fresh", argv, files, expect=(0, 1))
    step("specific undo fresh", undo, files, expect=(0, 1))
    for path in journals(folders):
        aside = path.with_name(path.name + ".aside")
        path.unlink(missing_ok=True)
        if aside.exists():
            aside.rename(path)
    step("specific history", argv, files, "specific fresh", expect=(0, 1))
    step("specific undo history", undo, files, "specific undo fresh", expect=(0, 1))


def _quality(step, work, folders, contents, renamed):
    """The quality check of each folder, then --verify against the truth
    (written for it from `contents` and removed after it; None: the
    folders carry it already)."""
    plot = work / "plot.png"   # only drawn when something is off: nothing is here

    def each(*extra):
        return [script("quality_check_timestamps.py", "--folder", f, "--no-adjust", "--plot", plot, *extra)
                for f in folders]

    step("quality check", each(), renamed, "scan")
    truth = write_truth(folders[0], folders[1:], contents) if contents is not None else []
    text = step("verify", each("--verify"), renamed, "scan")
    for path in truth:
        path.unlink()
    agree = [line.split()[-1] for line in text.splitlines() if line.strip().startswith("Agree:")]
    if sum(map(int, agree)) != renamed or plot.exists():
        raise SystemExit(f"verify: {agree} agree of {renamed} files (plot drawn: {plot.exists()})")


def _decoded(text) -> int:
    """How many images dedupe decoded for their pHash, from its report."""
    for line in text.splitlines():
        if line.startswith("Files read:"):
            return int(line.split("decoded for pHash:")[1].split(",")[0])
    raise SystemExit(f"dedupe first: no 'Files read:' line in its report\n{text[-2000:]}")


def _files_read(text):
    for line in text.splitlines():
        if line.startswith("Files read:"):
            return line
    return ""


# ------------------------------------------------------------------ table
BOUND_ROW = {"read": "bound read", "read+decode": "bound read+decode", "scan": "bound scan",
             "rename": "bound rename"}


def table(results) -> str:
    sizes = sorted(results)
    labels = list(results[sizes[0]]["steps"])
    head = "| step | " + " | ".join(f"{n:,} files" for n in sizes) + " | growth |"
    lines = ["Each cell: seconds (seconds per 1,000 files, peak RSS MiB, × its bound; dedupe first: × read / "
             "× read+decode); growth: the exponent of seconds against files between the two largest "
             "sizes (1.0 = linear).", "",
             head, "|" + "---|" * (len(sizes) + 2)]
    for label in labels:
        cells = []
        for n in sizes:
            entry = results[n]["steps"][label]
            ratio = ""
            for kind in [entry["bound"]] if isinstance(entry["bound"], str) else entry["bound"] or []:
                ref = results[n]["steps"][BOUND_ROW.get(kind, kind)]["seconds"]
                ratio += f"{', ' if not ratio else ' / '}{entry['seconds'] / ref:.1f}×"
            cells.append(f"{entry['seconds']:.2f} ({1000 * entry['seconds'] / entry['files']:.3f}, "
                         f"{entry['rss']:.0f}{ratio})")
        growth = ""
        if len(sizes) > 1:
            a, b = results[sizes[-2]]["steps"][label], results[sizes[-1]]["steps"][label]
            growth = f"{math.log(b['seconds'] / a['seconds']) / math.log(b['files'] / a['files']):.2f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {growth} |")
    return "\n".join(lines)


def compiled():
    """Byte-compile the project first, as installing it does: with
    PYTHONDONTWRITEBYTECODE set (as here) every step would compile its
    imports again at each start, a cost no installed copy pays."""
    import compileall

    compileall.compile_dir(ROOT / "discordpicextract", quiet=1)
    for path in ROOT.glob("*.py"):
        compileall.compile_file(path, quiet=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to build (needs ~100 KiB per file)")
    parser.add_argument("--json", help="save the figures and output fingerprints here")
    parser.add_argument("--messages", action="store_true",
                        help="raw carries a download archive and messages.csv from the start (as a real "
                             "download does), so every step carries, renames and reads them")
    parser.add_argument("--bound", help=argparse.SUPPRESS)
    parser.add_argument("--back", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bound:
        if args.bound == "rename":
            bound_rename(args.rest, back=args.back)
        elif args.bound == "scan":
            bound_scan(args.rest)
        else:
            BOUNDS[args.bound](*args.rest)
        return 0
    base = Path(args.dir) / "discordpicextract-bench"
    base.mkdir(parents=True, exist_ok=True)
    compiled()
    began = time.perf_counter()
    charts = bases(base / "bench-bases", os.cpu_count() or 1)
    print(f"{len(charts)} base charts ready in {time.perf_counter() - began:.1f} s "
          f"(mean {sum(map(len, charts)) / len(charts) / 1024:.1f} KiB)")
    results: dict = {}
    for total in args.sizes:
        bench_size(total, base, charts, results, args.messages)
    print("\n" + table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

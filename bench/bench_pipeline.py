"""Benchmark: the nightly re-run of `main.py --pipeline` against its first run.

    python bench/bench_pipeline.py                  # 20,000 images, 50 new
    python bench/bench_pipeline.py --images 2000    # quicker

A channel on the loopback emulator (Discord's 5 requests per second per
route) holds --images images, 70 per NYSE session in market hours (now and
then a repost of the previous chart: a duplicate). The first run syncs all of
it into a fresh folder set (download, dedupe, one per day, date coverage,
market hours). Then --new images are posted (later on the last day, and on a
new day) and the nightly run (`--days 14`, the default window) syncs again.
Prints both times and their ratio. Target (issue 11): the nightly run well
under a tenth of the first.
"""
import argparse
import io
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discordpicextract.emulator import DiscordEmulator  # noqa: E402
from discordpicextract.market import nyse_sessions  # noqa: E402

NY = ZoneInfo("America/New_York")
PER_DAY = 70


def small_png(seed):
    """A distinct small PNG; its dimensions (so its byte size) vary as
    screenshots' do: charts of one window size still differ in bytes."""
    width, height = 20 + seed % 17, 16 + seed % 11
    pixels = random.Random(seed).randbytes(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def at(day, minutes):
    """`minutes` after 09:35 New York time on `day`, as an aware datetime."""
    start = datetime(day.year, day.month, day.day, 9, 35, tzinfo=NY)
    return start + timedelta(minutes=minutes)


def build(emu, images):
    guild = emu.add_guild("数学家炒美股")
    channel = emu.add_channel(guild["id"], "spx-realtime-aws")
    today = date.today()
    days = -(-images // PER_DAY) + 1
    sessions = nyse_sessions(today - timedelta(days=days * 2 + 10), today - timedelta(days=1))[-days:]
    archive_days, new_day = sessions[:-1], sessions[-1]
    posted = 0
    for day in archive_days:
        for slot in range(PER_DAY):
            if posted == images:
                break
            seed = posted - 1 if posted % 97 == 96 else posted   # a repost now and then
            emu.add_message(channel["id"], at(day, 5 * slot), content=f"chart {posted}",
                            attachments=[(f"chart_{posted}.png", small_png(seed), "image/png")])
            posted += 1
    return channel, archive_days, new_day


def post_new(emu, channel, last_day, new_day, count):
    for k in range(count):
        when = at(last_day, 355 + k) if k < count // 2 else at(new_day, 5 * k)
        emu.add_message(channel["id"], when, content=f"new {k}",
                        attachments=[(f"new_{k}.png", small_png(10**7 + k), "image/png")])


def timed_pipeline(channel, days, profile=None):
    """`python main.py --pipeline -q` as cron runs it: a process of its own
    (the emulator, with the whole channel in memory, stays in this one)."""
    started, cpu = time.perf_counter(), _children_cpu()
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    done = subprocess.run([sys.executable, *profiler, str(ROOT / "main.py"), "--pipeline", "-q",
                           "--channel", channel["id"], "--days", str(days)], check=False)
    return time.perf_counter() - started, _children_cpu() - cpu, done.returncode


def print_requests(requests):
    """What the nightly run asked of Discord, per route: the download's
    floor is the rate limit of its busiest route."""
    from collections import Counter

    from discordpicextract.discord.ratelimit import route_key

    api = [r for r in requests if r.server == "api"]
    routes = Counter(route_key(r.method, r.path)[0] for r in api)
    span = api[-1].at - api[0].at if api else 0.0
    print(f"nightly requests: {len(api)} API ({', '.join(f'{n} {route}' for route, n in routes.most_common())}; "
          f"{span:.2f} s first to last), {len(requests) - len(api)} CDN; "
          f"{sum(r.status == 429 for r in requests)} answered 429")


def print_differences(nightly: Path, fresh: Path):
    """Each folder's visible files (names and bytes) and the review page
    (but its time of writing) after the nightly run against a fresh run."""
    import hashlib
    import re

    def files(folder):
        """name -> (digest, mtime): an image's mtime is its post time; messages.csv's its writing."""
        return {p.name: (hashlib.blake2b(p.read_bytes()).hexdigest(),
                         p.stat().st_mtime_ns if p.name != "messages.csv" else None)
                for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}

    def page(folder):
        return re.sub(r"Written [\d-]+ [\d:]+ ", "", (folder / "review" / "index.html").read_text("utf-8"))

    for name in ("spx-realtime-aws", "spx-realtime-aws-clean", "spx-clean-1perDay"):
        mine, theirs = files(nightly / name), files(fresh / name)
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        print(f"exact? {name}: {len(mine)} files, " + (f"{len(differ)} differ, e.g. {differ[:3]}" if differ
                                                        else "the same as a fresh run's"))
    same = page(nightly) == page(fresh)
    print(f"exact? review page: {'the same as a fresh run' if same else 'DIFFERS from a fresh run'}'s")


def _children_cpu():
    """CPU seconds (user + system) of finished child processes: unlike wall
    time, not inflated when other work shares the machine's cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main_bench(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=50)
    parser.add_argument("--profile", metavar="FILE", type=Path,
                        help="write a cProfile of the nightly run to FILE (its time then is not comparable)")
    parser.add_argument("--check-exact", action="store_true",
                        help="then sync the channel afresh into a new folder set and compare: the nightly "
                             "run's folders and review page must be what a fresh run makes")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="run in DIR (new or empty) and leave the folders there, for a look or a profile")

    args = parser.parse_args(argv)
    token = "bench-" + secrets.token_hex(8)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep: {args.keep} is not empty")
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    previous = os.getcwd()
    try:
        with DiscordEmulator(token=token, token_kind="user") as emu:
            print(f"building a channel of {args.images:,} images...", flush=True)
            channel, archive_days, new_day = build(emu, args.images)
            os.environ.update(DISCORD_API_BASE=emu.api_base, DISCORD_USER_TOKEN=token)
            os.chdir(work)
            span = (date.today() - archive_days[0]).days + 2
            first, first_cpu, code1 = timed_pipeline(channel, span)
            post_new(emu, channel, archive_days[-1], new_day, args.new)
            emu.clear_log()
            nightly, nightly_cpu, code2 = timed_pipeline(channel, 14, args.profile and args.profile.resolve())
            print_requests(emu.requests)
            if args.check_exact:
                (work / "fresh").mkdir()
                os.chdir(work / "fresh")
                timed_pipeline(channel, span + 1)
                os.chdir(work)
                print_differences(work, work / "fresh")
        files = len(os.listdir(work / "spx-realtime-aws"))
        print(f"\nfirst run:   {first:8.2f} s wall, {first_cpu:7.2f} s CPU  (exit {code1}; "
              f"{files:,} files in the download folder)")
        print(f"nightly run: {nightly:8.2f} s wall, {nightly_cpu:7.2f} s CPU  (exit {code2}; {args.new} new images)")
        print(f"ratio:       {nightly / first:8.3f} wall, {nightly_cpu / first_cpu:7.3f} CPU  (target: well under 0.1)")
    finally:
        os.chdir(previous)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()

"""Benchmark: the downloader against a sequential baseline on the loopback emulator.

    python bench/bench_download.py                 # 1,000 images, 50 ms latency, 8 workers
    python bench/bench_download.py --images 200    # quicker

The emulator answers every request (API and CDN) after `--latency` seconds and
limits each API route like Discord (5 requests per second per bucket). Both
runs download the same channel into fresh folders:

- downloader: discordpicextract.discord.run_download (rate-limit headers followed,
  `--workers` parallel transfers, archive, image verification);
- baseline: the straightforward approach: one request at a time, every page
  first, then every image, sleeping `retry_after` on each 429.

Prints both times, their ratio, the lower bound that latency, bucket limits
and worker count allow, the 429s each received, and peak memory.
Targets (issue 3): >= 6x the baseline, within 1.5x of the bound, 0 429s,
peak RSS < 150 MB.
"""
import argparse
import io
import math
import random
import resource
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from discordpicextract import discord as dd
from discordpicextract.emulator import DiscordEmulator

PAGE = 100


def small_png(seed, size=64):
    """A distinct small PNG (noise), so that the bench measures transfers, not Pillow."""
    pixels = random.Random(seed).randbytes(size * size * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), pixels).save(buffer, "PNG")
    return buffer.getvalue()


def build_channel(emu, images):
    guild = emu.add_guild("数学家炒美股")
    channel = emu.add_channel(guild["id"], "spx-realtime-aws")
    start = datetime.now(timezone.utc) - timedelta(hours=images // 60 + 2)
    for k in range(images):
        emu.add_message(channel["id"], start + timedelta(seconds=60 * k + 0.5),
                        attachments=[(f"chart_{k}.png", small_png(k), "image/png")])
    return channel


def run_downloader(emu, token, channel, folder, days, workers):
    client = dd.DiscordClient(token, "user", api_base=emu.api_base)
    client.identify()
    target = client.fetch_channel(channel["id"])
    return dd.run_download(client, [target], folder, dd.cutoff_for(days), workers=workers)


def run_baseline(emu, token, channel, folder, days):
    """One request at a time; waits retry_after on each 429."""
    session = requests.Session()
    headers = {"Authorization": token}
    cutoff = dd.cutoff_for(days)

    def get(url, **kwargs):
        while True:
            response = session.get(url, timeout=30, **kwargs)
            if response.status_code != 429:
                response.raise_for_status()
                return response
            time.sleep(float(response.json().get("retry_after", 1)))

    get(f"{emu.api_base}/users/@me", headers=headers)
    get(f"{emu.api_base}/channels/{channel['id']}", headers=headers)
    messages, before = [], None
    while True:
        params = {"limit": PAGE, **({"before": before} if before else {})}
        page = get(f"{emu.api_base}/channels/{channel['id']}/messages", headers=headers, params=params).json()
        kept = [m for m in page if dd.message_time(m) >= cutoff]
        messages += kept
        if len(kept) < len(page) or len(page) < PAGE:
            break
        before = page[-1]["id"]
    folder.mkdir(parents=True, exist_ok=True)
    saved = 0
    for message in messages:
        for attachment in message["attachments"]:
            body = get(attachment["url"]).content
            (folder / f"{message['id']}_{attachment['filename']}").write_bytes(body)
            saved += 1
    return saved


def lower_bound(images, latency, workers, route_limit):
    """The fastest any client could go: 2 setup calls, then the page chain
    (sequential; at most `limit` pages per `per` seconds) overlapped with the
    image transfers (`workers` at a time), which can start after page 1."""
    limit, per = route_limit
    pages = images // PAGE + 1  # the last page comes back short (or empty)
    chain = max(pages * latency, ((pages - 1) // limit) * per + latency)
    transfers = latency + math.ceil(images / workers) * latency
    return 2 * latency + max(chain, transfers)


def peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--route-limit", type=int, default=5, help="requests per second per API bucket")
    args = parser.parse_args(argv)
    route_limit = (args.route_limit, 1.0)
    token = "bench-" + secrets.token_hex(8)
    workdir = Path(tempfile.mkdtemp(prefix="bench-download-"))
    days = args.images / (24 * 60) + 1
    try:
        with DiscordEmulator(token=token, latency=args.latency, route_limit=route_limit) as emu:
            print(f"Building a channel of {args.images} images ({args.latency * 1000:.0f} ms latency, "
                  f"{args.route_limit} requests/s per API bucket)...")
            channel = build_channel(emu, args.images)

            emu.clear_log()
            emu.reset_rate_limits()
            started = time.perf_counter()
            result = run_downloader(emu, token, channel, workdir / "downloader", days, args.workers)
            ours = time.perf_counter() - started
            ours_429 = emu.count_status(429)
            if len(result.downloaded) != args.images or result.errors:
                print(f"downloader saved {len(result.downloaded)} of {args.images}; errors: {result.errors[:3]}")
                return 1

            emu.clear_log()
            emu.reset_rate_limits()
            started = time.perf_counter()
            saved = run_baseline(emu, token, channel, workdir / "baseline", days)
            base = time.perf_counter() - started
            base_429 = emu.count_status(429)
            if saved != args.images:
                print(f"baseline saved {saved} of {args.images}")
                return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bound = lower_bound(args.images, args.latency, args.workers, route_limit)
    print(f"downloader ({args.workers} workers): {ours:7.2f} s   429s received: {ours_429}")
    print(f"sequential baseline:       {base:7.2f} s   429s received: {base_429}")
    print(f"speed-up: {base / ours:.1f}x  (target >= 6x)")
    print(f"lower bound: {bound:.2f} s; downloader at {ours / bound:.2f}x the bound (target <= 1.5x)")
    print(f"peak RSS (whole process: emulator, both runs): {peak_rss_mb():.0f} MB (target < 150 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak test (issue 13): kill -9 at random moments of a download, a dedupe,
an adjust over three folders and its recovery, then recover / run again, and
check that nothing went wrong quietly. Not part of the test suite (it runs
for minutes); run it by hand:

    python bench/soak_faults.py [--trials 40] [--phases download,dedupe,adjust] [--seed 1]

Every step is a real script in its own process (`python -c ...main(argv)`),
killed with SIGKILL at a random time within its measured run time. After
each kill the script is run again (the adjust: `--recover complete|revert`,
itself killed at random half of the time and run again), and the soak asserts:

- download: the folder holds each image of the channel exactly once (the
  multiset of contents equals the channel's), every file has its archive
  row, no .part leftovers; after an adjust renamed the files, a further
  download saves nothing twice;
- dedupe: the output equals an unkilled run's (names and contents), no
  leftovers;
- adjust + recover: each folder's multiset of contents is unchanged, all
  three folders end in one state (all shifted or all original, original
  after a revert), no temporary names left, no batch left unfinished.

Prints, per phase, the trials, how many kills landed mid-run (the process
died before finishing) and the failures (each with its seed); exit 1 on any.
"""
import argparse
import hashlib
import io
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere

from PIL import Image  # noqa: E402

import config  # noqa: E402
from discordpicextract import naming  # noqa: E402
from discordpicextract.emulator import DiscordEmulator  # noqa: E402
from discordpicextract.renames.journal import pending_batch  # noqa: E402
from discordpicextract.renames.plan import TEMP_PREFIX  # noqa: E402

RUN = "import sys, {0}; sys.exit({0}.main(sys.argv[1:]))"
FOLDERS = config.PIPELINE_FOLDERS


def png(seed, size=(64, 48)) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def sha(data) -> str:
    return hashlib.sha256(data).hexdigest()


def visible(folder) -> dict:
    """{name: sha256} of the images of `folder`."""
    out = {}
    for entry in os.scandir(folder):
        if not entry.name.startswith(".") and naming.is_image_name(entry.name):
            with open(entry.path, "rb") as handle:
                out[entry.name] = sha(handle.read())
    return out


def leftovers(folder) -> list:
    return [n for n in os.listdir(folder) if n.endswith(".part") or n.startswith(TEMP_PREFIX)]


class Runner:
    def __init__(self, env):
        self.env = env

    def start(self, module, argv, cwd):
        return subprocess.Popen([sys.executable, "-c", RUN.format(module), *argv], cwd=cwd, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def run(self, module, argv, cwd, want=(0,)):
        proc = self.start(module, argv, cwd)
        _, err = proc.communicate(timeout=300)
        if proc.returncode not in want:
            raise AssertionError(f"{module} {' '.join(argv)} exited {proc.returncode}: {err.decode()[-800:]}")
        return proc.returncode

    def timed(self, module, argv, cwd) -> float:
        began = time.perf_counter()
        self.run(module, argv, cwd)
        return time.perf_counter() - began

    def startup(self, module, cwd) -> float:
        """Seconds until the script starts working (interpreter and imports):
        kills are drawn after most of it, where the work is."""
        return self.timed(module, ["--version"], cwd)

    def killed(self, module, argv, cwd, after) -> bool:
        """Run, SIGKILL after `after` seconds; True when it died mid-run."""
        proc = self.start(module, argv, cwd)
        try:
            proc.wait(timeout=after)
            return False
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True


# ---------------------------------------------------------------- download, dedupe
def build_channel(emu, count, rng):
    """`count` images over the last two days, one in five posted twice a few
    seconds apart (byte-identical: dedupe's work). Returns the multiset of
    the contents a download must end with."""
    guild = emu.add_guild("soak")
    channel = emu.add_channel(guild["id"], "soak-images")
    now, contents = datetime.now(timezone.utc), Counter()
    for k in range(count):
        when = now - timedelta(hours=2, minutes=k * 11)
        data = png(rng.randrange(1 << 30))
        emu.add_message(channel["id"], when, attachments=[(f"chart{k % 9}.png", data, "image/png")])
        contents[sha(data)] += 1
        if k % 5 == 0:
            emu.add_message(channel["id"], when + timedelta(seconds=20), attachments=[("again.png", data, "image/png")])
            contents[sha(data)] += 1
    return channel, contents


def check_download(folder, expected, failures, label):
    found = visible(folder)
    if Counter(found.values()) != expected:
        failures.append(f"{label}: contents differ (have {len(found)} files, want {sum(expected.values())})")
    with sqlite3.connect(folder / config.ARCHIVE_FILE) as db:
        named = {row[0] for row in db.execute("SELECT filename FROM downloads")}
    if set(found) - named:
        failures.append(f"{label}: {len(set(found) - named)} files without an archive row")
    if leftovers(folder):
        failures.append(f"{label}: leftovers {leftovers(folder)[:3]}")


def soak_download_dedupe(args, runner, emu, channel, expected, stats, failures):
    download = ["--channel", channel["id"], "--days", "3", "--output", FOLDERS[0], "--no-progress",
                "--workers", "4", "--bot"]
    dedupe = ["--source", FOLDERS[0], "--output", FOLDERS[1], "--workers", "2"]
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        ref = Path(base) / "ref"
        ref.mkdir()
        took = runner.timed("discord_downloader", download, ref)
        took_dedupe = runner.timed("deduplicate_images", dedupe, ref)
        start_download = 0.8 * runner.startup("discord_downloader", ref)
        start_dedupe = 0.8 * runner.startup("deduplicate_images", ref)
        reference = visible(ref / FOLDERS[1])
        print(f"reference run: download {took:.2f} s, dedupe {took_dedupe:.2f} s "
              f"({sum(expected.values())} images, {len(reference)} kept)")
        for trial in range(args.trials):
            rng = random.Random(args.seed * 1000 + trial)
            where = Path(base) / f"t{trial}"
            where.mkdir()
            if "download" in args.phases:
                mid = runner.killed("discord_downloader", download, where, rng.uniform(start_download, took))
                stats["download"][1 if mid else 0] += 1
                runner.run("discord_downloader", download, where)
                check_download(where / FOLDERS[0], expected, failures, f"download trial {trial}")
            else:
                runner.run("discord_downloader", download, where)
            if "dedupe" in args.phases:
                mid = runner.killed("deduplicate_images", dedupe, where, rng.uniform(start_dedupe, took_dedupe))
                stats["dedupe"][1 if mid else 0] += 1
                runner.run("deduplicate_images", dedupe, where, want=(0, 1))
                if visible(where / FOLDERS[1]) != reference or leftovers(where / FOLDERS[1]):
                    failures.append(f"dedupe trial {trial}: output differs from the unkilled run")
            if "download" in args.phases:
                # the timestamp tools rename, then the nightly download runs again: nothing twice
                runner.run("adjust_timestamps", ["--folders", FOLDERS[0], "--hours", "-5", "--yes"], where)
                runner.run("discord_downloader", download, where)
                check_download(where / FOLDERS[0], expected, failures, f"download after rename, trial {trial}")
            shutil.rmtree(where)


# ---------------------------------------------------------------- adjust + recover
def make_pipeline(base, sizes, rng):
    """Three folders of tiny files with pipeline names (a rename never
    reads them), 30 minutes apart: a shift makes long chains."""
    start = datetime(2025, 1, 2, 9, 30)
    for name, size in zip(FOLDERS, sizes):
        folder = base / name
        folder.mkdir()
        for i in range(size):
            stamp = start + timedelta(minutes=30 * i)
            data = b"image %d %d" % (i, rng.random() * 1e9)
            (folder / naming.format_name(stamp, f"img{i % 7}.png")).write_bytes(data)


def shift_names(state, hours):
    out = {}
    for name, digest in state.items():
        parsed = naming.parse_name(name)
        out[naming.format_name(parsed.timestamp + timedelta(hours=hours), parsed.original)] = digest
    return out


def kill_time(rng, start, took):
    """Uniform over the run half the time; else in its last 60 %, where a
    rename batch moves its files (the first part lists and plans)."""
    if rng.random() < 0.5:
        return rng.uniform(start, took)
    return rng.uniform(start + 0.4 * (took - start), took)


def soak_adjust(args, runner, stats, failures):
    sizes = (args.files, args.files * 3 // 5, args.files // 3)
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        ref = Path(base) / "ref"
        ref.mkdir()
        make_pipeline(ref, sizes, random.Random(0))
        took = runner.timed("adjust_timestamps", ["--hours", "-5", "--yes"], ref)
        took_recover = runner.timed("adjust_timestamps", ["--undo"], ref)
        startup = 0.8 * runner.startup("adjust_timestamps", ref)
        print(f"reference adjust: {took:.2f} s for {sum(sizes)} files in 3 folders (start-up {startup / 0.8:.2f} s)")
        for trial in range(args.trials):
            rng = random.Random(args.seed * 1000 + trial)
            where = Path(base) / f"a{trial}"
            where.mkdir()
            make_pipeline(where, sizes, rng)
            folders = [where / name for name in FOLDERS]
            before = [visible(f) for f in folders]
            mid = runner.killed("adjust_timestamps", ["--hours", "-5", "--yes"], where, kill_time(rng, startup, took))
            stats["adjust"][1 if mid else 0] += 1
            mode = rng.choice(["complete", "revert"])
            pending = any(pending_batch(f) for f in folders)
            stats["states"][f"batch left unfinished by the kill: {pending}"] += 1
            if rng.random() < 0.5:
                killed = runner.killed("adjust_timestamps", ["--recover", mode], where,
                                       rng.uniform(startup, max(took_recover, startup + 0.1)))
                stats["recover"][1 if killed else 0] += 1
            runner.run("adjust_timestamps", ["--recover", mode], where)
            runner.run("adjust_timestamps", ["--recover", mode], where)  # idempotent: nothing changes
            states = []
            for folder, old in zip(folders, before):
                now = visible(folder)
                if Counter(now.values()) != Counter(old.values()):
                    failures.append(f"adjust trial {trial}: contents of {folder.name} changed")
                states.append("original" if now == old else "shifted" if now == shift_names(old, -5) else "mixed")
                if leftovers(folder) or pending_batch(folder):
                    failures.append(f"adjust trial {trial}: {folder.name} left temp names or an open batch")
            if len(set(states)) != 1 or "mixed" in states or (pending and mode == "revert" and states[0] != "original"):
                failures.append(f"adjust trial {trial} (kill at mid={mid}, {mode}): folders {states}")
            stats["states"][f"{mode} -> {states[0]}"] += 1
            shutil.rmtree(where)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--phases", default="download,dedupe,adjust")
    parser.add_argument("--images", type=int, default=120, help="images in the channel")
    parser.add_argument("--files", type=int, default=4000, help="files of the largest folder (adjust)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the trial folders go (default: the temp dir)")
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    stats = {name: [0, 0] for name in ("download", "dedupe", "adjust", "recover")}
    stats["states"] = Counter()
    failures: list = []
    began = time.perf_counter()
    if args.phases & {"download", "dedupe"}:
        token = "soak-" + os.urandom(8).hex()
        with DiscordEmulator(token=token, token_kind="bot", latency=0.005, route_limit=(50, 1.0)) as emu:
            channel, expected = build_channel(emu, args.images, random.Random(args.seed))
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DISCORD_API_BASE": emu.api_base,
                   "DISCORD_BOT_TOKEN": token, "DISCORD_USER_TOKEN": ""}
            soak_download_dedupe(args, Runner(env), emu, channel, expected, stats, failures)
    if "adjust" in args.phases:
        soak_adjust(args, Runner({**os.environ, "PYTHONPATH": str(ROOT)}), stats, failures)
    print(f"\n{time.perf_counter() - began:.0f} s, seed {args.seed}")
    for name in ("download", "dedupe", "adjust", "recover"):
        done, mid = stats[name]
        if done + mid:
            print(f"  {name:9} {done + mid:4} trials, {mid:4} killed mid-run")
    if stats["states"]:
        print("  adjust: " + ", ".join(f"{k} x{v}" for k, v in sorted(stats["states"].items()))
              + " (recover mode -> the one state of all three folders)")
    print(f"  failures: {len(failures)}")
    for line in failures[:20]:
        print(f"    {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Plain helpers of the fault tests (test_faults_*.py): a second run holding a
folder's lock from another process, a small disk, noisy (incompressible)
images, and a run of a script in a subprocess that can be killed."""
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

HOLD_LOCK = """
import sys
from discordpicextract import locking
with locking.hold(sys.argv[1], "holder.py"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def lock_held_elsewhere(*folders):
    """Another process holding the locks of `folders` until the block ends."""
    holders = []
    try:
        for folder in folders:
            proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], cwd=ROOT,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            holders.append(proc)
            assert proc.stdout.readline().strip() == "held"
        yield [p.pid for p in holders]
    finally:
        for proc in holders:
            proc.stdin.close()
            proc.wait(timeout=10)


def noise_png(seed, size=(300, 300)) -> bytes:
    """An incompressible PNG (~270 KB at 300x300): fills a small disk fast."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


@contextlib.contextmanager
def small_disk(megabytes=3):
    """A folder on a `megabytes` tmpfs (root can mount one); None where
    mounting is not possible (the caller then injects ENOSPC instead)."""
    where = tempfile.mkdtemp(prefix="dpe-small-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", where],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    try:
        yield Path(where) if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", where], capture_output=True)
        os.rmdir(where)


def leftovers(folder):
    """Our temp files still in `folder` (a run must leave none)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith((".part", ".tmp")))


def fill_disk(folder) -> Path:
    """Take every free byte of `folder`'s file system (a small tmpfs) with
    one file, returned so the test can free the space again."""
    filler = Path(folder) / "filler.bin"
    block = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError:
            pass
    with open(filler, "ab", buffering=0) as out:  # the last partial block
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass
    return filler

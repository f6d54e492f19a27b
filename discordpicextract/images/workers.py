"""The process pool that spreads integrity checks and pHashes over the
cores, started only when a batch is big enough to pay for it."""
import collections
import itertools
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

# Below these many jobs a process pool costs more than it saves.
PARALLEL_MIN_CHECKS = 400
PARALLEL_MIN_DECODES = 8


def _import_before_fork(func) -> None:
    """The pHash library imported here, once, before the workers fork, instead
    of in every worker (about 1.5 s of a pool's start on 2 cores)."""
    from discordpicextract.images import phash

    if func is phash.compute_phash:
        import imagehash  # noqa: F401


# How often a worker checks that its parent is still there.
PARENT_CHECK_SECONDS = 0.2


def _die_with_parent(parent: int) -> None:
    """Pool initializer: a worker whose parent is gone (killed with kill -9,
    which no clean-up survives) ends itself instead of running on."""
    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _run_chunk(func, items) -> list:
    """One task of a pool: `func` over a chunk of items (fewer, bigger
    messages than one per item)."""
    return [func(item) for item in items]


class WorkerDied(Exception):
    """A worker process ended without an answer (killed, out of memory)."""


class Workers:
    """A process pool started only when a batch is big enough to pay for it."""

    def __init__(self, count: int):
        self.count = max(1, count)
        self._pool: Optional[ProcessPoolExecutor] = None

    def map(self, func, items, minimum) -> list:
        items = list(items)
        return list(self.imap(func, items, len(items), minimum))

    def imap(self, func, items, count, minimum) -> Iterator:
        """`func` over the `count` items of the iterable `items`, results in
        order as they come. A few chunks per worker are in flight, no more:
        100,000 items never wait in the pool's queue, nor their results."""
        if self.count == 1 or count < minimum:
            yield from map(func, items)
            return
        # imported here: a run with nothing to read (a cached re-run) starts no pool
        from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor

        if self._pool is None:
            _import_before_fork(func)
            self._pool = ProcessPoolExecutor(max_workers=self.count, initializer=_die_with_parent,
                                             initargs=(os.getpid(),))
        size = max(1, min(64, count // (self.count * 4)))
        queue = iter(items)
        chunks = iter(lambda: list(itertools.islice(queue, size)), [])
        pending: collections.deque = collections.deque()
        try:
            for chunk in itertools.islice(chunks, self.count * 4):
                pending.append(self._pool.submit(_run_chunk, func, chunk))
            while pending:
                results = pending.popleft().result()
                for chunk in itertools.islice(chunks, 1):
                    pending.append(self._pool.submit(_run_chunk, func, chunk))
                yield from results
        except BrokenProcessPool:
            self._pool = None
            raise WorkerDied("a worker process stopped without an answer (out of memory?); "
                             "try again with fewer --workers") from None
        finally:
            for future in pending:
                future.cancel()

    def mapper(self, minimum):
        """imap as f(func, items, count): for a caller that knows nothing of
        pools (records' copies), with this batch's `minimum`."""
        return lambda func, items, count: self.imap(func, items, count, minimum)

    def close(self, wait=True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # On Ctrl-C do not wait for queued work.
        self.close(wait=exc_type is None)

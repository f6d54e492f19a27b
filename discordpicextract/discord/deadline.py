"""A total time limit per HTTP request: connect, headers and the whole body.

requests' `timeout` counts only between two socket reads, so a server that
sends a few bytes every few seconds (headers or body) keeps a request alive
forever. Peers bound the whole request instead (discord.py through aiohttp's
ClientTimeout(total=300), DiscordChatExporter through HttpClient.Timeout,
100 s, with the timeout retried). Here a timer shuts the request's socket
when its time is up: the read blocked in requests then fails at once, and
`Watch.expired` tells that failure apart from a dropped connection. Headers
cut short that way may still parse as an answer: a request whose watch
expired has failed, whatever came back. A shutdown only ends a read that
waits: data still pouring in keeps arriving (Linux), so a loop reading a
body checks `cut()` between pieces too.

Sessions get it from `watched_session()`: their connections tell the watch
running on their thread which socket they use (at connect and at each
request, so a connection reused from the pool is watched too).
"""
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

_current = threading.local()


class Watch:
    """One request's deadline; `expired` once the timer shut its socket."""

    def __init__(self, seconds: float):
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._connections: list = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def add(self, connection) -> None:
        with self._lock:
            if self._done:
                return
            self._connections.append(connection)
            if self.expired:    # connected after the time was up
                _shut(connection)

    def _fire(self) -> None:
        with self._lock:    # never a socket back in the pool: `_done` is set under this lock
            if self._done:
                return
            self.expired = True
            for connection in self._connections:
                _shut(connection)

    def _finish(self) -> None:
        with self._lock:
            self._done = True
            self._connections.clear()
        self._timer.cancel()


def _shut(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)    # TLS through an HTTPS proxy: urllib3's SSLTransport
    if sock is None:
        return
    try:
        # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would
        # drop its SSL object under the thread reading from it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass    # already closed


@contextmanager
def watch(seconds: Optional[float]) -> Iterator[Optional[Watch]]:
    """Bound the requests this thread sends inside the block to `seconds`
    in all (None: unbounded, yields None)."""
    if seconds is None:
        yield None
        return
    current = Watch(seconds)
    outer = getattr(_current, "watch", None)
    _current.watch = current
    current._timer.start()
    try:
        yield current
    finally:
        current._finish()
        _current.watch = outer


def cut(current: Optional[Watch]) -> bool:
    """Whether the request bounded by `current` ran out of time."""
    return current is not None and current.expired


class _QuietWhenCut(logging.Filter):
    """urllib3 logs, with a traceback, the headers our own shutdown cut
    short; the run reports the time limit instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not cut(getattr(_current, "watch", None))


for _name in ("urllib3.connection", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_QuietWhenCut())


def _tell(connection) -> None:
    current = getattr(_current, "watch", None)
    if current is not None:
        current.add(connection)


class _Watched:
    """Mixed into urllib3's connections: each tells the watch of its thread
    its socket, at connect and at each request (a pooled one is reused)."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _tell(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _tell(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is ProxyManager:   # an HTTP(S) proxy; SOCKS keeps its own pools (and read timeouts)
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def watched_session() -> requests.Session:
    """A requests.Session whose requests `watch` can bound."""
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, _WatchedAdapter())
    return session

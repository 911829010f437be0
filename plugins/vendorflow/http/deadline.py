"""A wall-clock deadline for a whole request: connect, headers and body.

``requests``' ``timeout`` bounds each socket operation, not the request: a
vendor that trickles its body a few bytes at a time keeps a task busy for as
long as it likes. Here every connection of a :class:`DeadlineAdapter` tells a
per-thread :class:`Deadline` which socket it is using; one watchdog thread per
process shuts that socket down when the deadline passes, so the blocked read
returns at once and the request fails as a timeout the retry policy knows.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Deadline:
    """One request's deadline; ``expired`` tells afterwards whether the watchdog cut it short."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._connection: Any = None

    def using(self, connection: Any) -> None:
        self._connection = connection
        if self.expired:
            self._cut()

    def expire(self) -> None:
        self.expired = True
        self._cut()

    def _cut(self) -> None:
        sock = getattr(self._connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process that expires the deadlines whose time has come."""

    TICK = 0.05

    def __init__(self) -> None:
        self._active: set[Deadline] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vendorflow-deadlines", daemon=True)
                self._thread.start()

    def remove(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.discard(deadline)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                due = [d for d in self._active if d.at <= now]
                for deadline in due:
                    self._active.discard(deadline)
            for deadline in due:
                deadline.expire()


_watchdog = _Watchdog()


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[Deadline | None]:
    """Run the requests of this block (in this thread) under a deadline of ``seconds``."""
    if not seconds:
        yield None
        return
    box = Deadline(seconds)
    previous = getattr(_current, "deadline", None)
    _current.deadline = box
    _watchdog.add(box)
    try:
        yield box
    finally:
        _watchdog.remove(box)
        _current.deadline = previous


class _Watched:
    """Connection mixin: registers the connection with the thread's deadline before each request."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        box = getattr(_current, "deadline", None)
        if box is not None:
            box.using(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        box = getattr(_current, "deadline", None)
        if box is not None:
            box.using(self)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections honour :func:`deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

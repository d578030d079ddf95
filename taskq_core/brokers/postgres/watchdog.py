"""A client-side bound on every call to PostgreSQL, for the sync and the async path alike.

libpq has no timeout for an answer: a statement on a link that went half-open (a dead switch,
a lost NAT entry, a proxy that keeps the connection but forwards nothing) waits until TCP
keepalive gives up, or forever where something between still acknowledges the bytes. The
server's ``statement_timeout`` does not help, since the server never hears the statement or
its answer never arrives. Redis has ``socket_timeout`` for this; here one daemon thread a
process looks twice a second at the calls in flight and shuts down the socket of any past
its deadline. The call then fails at once with a connection error (which the broker reports
as ``BrokerUnavailable``, "no answer within ..."), and the broker closes that connection so
that the pool never hands it out again.

Shutting the socket down from another thread is safe where closing it would not be: the
file descriptor stays the connection's (no other socket can reuse its number), and the
waiting ``poll``/``select`` (psycopg's, or the event loop's) wakes up with an end of file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

#: how often the thread looks (seconds): a call is cut at most this late
TICK = 0.5


class _Call:
    __slots__ = ("conn", "cut", "deadline")

    def __init__(self, conn: Any, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.cut = False


class Watchdog:
    """The calls in flight of this process, each with its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, conn: Any, timeout: float) -> Iterator[_Call]:
        """Bound what runs inside on ``conn`` to ``timeout`` seconds: past it, the
        connection's socket is shut down (``call.cut`` tells afterwards)."""
        call = _Call(conn, time.monotonic() + timeout)
        key = id(call)
        with self._lock:
            self._calls[key] = call
            if self._thread is None:
                self._start()
        try:
            yield call
        finally:
            # under the lock: once this returns, the thread can no longer cut this
            # connection, which may be another call's a moment later
            with self._lock:
                del self._calls[key]

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskq-pg-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with self._lock:
                for call in self._calls.values():
                    if not call.cut and call.deadline <= now:
                        call.cut = True
                        _shutdown(call.conn)

    def _after_fork(self) -> None:
        # the thread does not exist in a forked child; the calls were the parent's
        self._lock = threading.Lock()
        self._calls = {}
        self._thread = None


def _shutdown(conn: Any) -> None:
    """Shut the connection's socket down both ways, leaving its descriptor open."""
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        # a socket object over a duplicate of the descriptor: shutdown() acts on the
        # socket they share, and closing the duplicate leaves the connection's own
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


#: the process's one watchdog
WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._after_fork)

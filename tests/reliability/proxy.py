"""A loopback TCP proxy for fault tests: put it between a client and Redis, then change how
the link behaves while the client is connected.

Modes:

- ``pass``: bytes flow both ways (the default);
- ``blackhole``: connections stay open (new ones are accepted too) but every byte is
  dropped, both ways: a half-open link, as a dead switch or a lost NAT entry makes;
- ``slow``: each chunk is delayed by ``delay`` seconds before it is forwarded;
- ``cut``: every open connection is closed, and new ones are closed as soon as accepted.

Bytes dropped in blackhole mode are gone for good: a connection that lived through a
blackhole is out of step with the server, as it would be after a real one, and its client
must drop it. Going back to ``pass`` lets new connections (and bytes sent from then on)
through.

::

    proxy = Proxy(6379)          # to 127.0.0.1:6379
    proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    proxy.blackhole()
    ...
    proxy.passthrough()
    proxy.stop()

The proxy runs its own asyncio loop in a daemon thread; the mode setters are safe from any
thread and take effect for the next chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

Mode = Literal["pass", "blackhole", "slow", "cut"]
_CHUNK = 65536


class Proxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.delay = 0.0
        #: the port the proxy listens on (set by start())
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()

    # -- life cycle

    def start(self) -> Proxy:
        """Listen on a free loopback port (``self.port``) and start forwarding."""
        self._thread = threading.Thread(target=self._run, name="taskq-test-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    @property
    def url(self) -> str:
        """A ``redis://`` URL to the proxy (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    # -- modes

    def passthrough(self) -> None:
        """Forward bytes both ways."""
        self.mode = "pass"

    def blackhole(self) -> None:
        """Keep connections open and accept new ones, but drop every byte both ways."""
        self.mode = "blackhole"

    def slow(self, delay: float) -> None:
        """Delay each chunk by ``delay`` seconds."""
        self.delay = delay
        self.mode = "slow"

    def cut(self) -> None:
        """Close every connection now and every new one as it arrives."""
        self.mode = "cut"
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._close_all)

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._writers) // 2

    # -- the loop

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()

    def _close_all(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data or self.mode == "cut":
                    break
                if self.mode == "blackhole":
                    continue  # dropped: the other side never hears of it
                if self.mode == "slow" and self.delay > 0:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

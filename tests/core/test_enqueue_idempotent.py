"""An enqueue is idempotent on its task id (docs/delivery.md, "Re-sent enqueues"): an
enqueue that timed out may still have stored its task, and whatever sends it again (the
application, redis-py's retry, the lean sender's one re-send) must not create a second task,
whatever became of the first. Both brokers, both Redis scripts (enqueue_one.lua for one task
due now, enqueue.lua for batches); and a real re-send over a connection the server's reply
never came back on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlparse

import orjson
import pytest

from taskq_core.brokers.base import Broker, EnqueueItem, Outcome, Settings
from taskq_core.brokers.redis import RedisBroker

Q = ["default"]
T0 = 1_800_000_000_000  # the callers' time (ms): leases end at T0 + 10 s
SETTINGS = Settings(lease_ms=10_000, max_deliveries=3, result_ttl_ms=60_000)


def item(name: str, due_ms: int = 0) -> EnqueueItem:
    return EnqueueItem("default", name, "job", orjson.dumps({"task": name}), due_ms)


def _running(b: Broker, t: EnqueueItem) -> None:
    b.enqueue([t], T0)
    b.fetch(Q, 1, T0)


def _settled(kind: str, delay_ms: int = 0) -> Callable[[Broker, EnqueueItem], None]:
    def setup(b: Broker, t: EnqueueItem) -> None:
        b.enqueue([t], T0)
        (d,) = b.fetch(Q, 1, T0)[0].deliveries
        record = orjson.dumps({"status": kind})
        out = Outcome("default", t.id, d.fence, kind, "job", record, delay_ms, b'{"again":1}')  # type: ignore[arg-type]
        assert b.settle([out], T0) == []

    return setup


def _cancelled(b: Broker, t: EnqueueItem) -> None:
    b.enqueue([t], T0)
    assert b.cancel("default", t.id, b'{"status":"cancelled"}') == "cancelled"


#: state -> (how to get there, deliveries of the task at T0 + 9 s after the re-send)
STATES: dict[str, tuple[Callable[[Broker, EnqueueItem], object], int]] = {
    "queued": (lambda b, t: b.enqueue([t], T0) and None, 1),
    "scheduled": (lambda b, t: b.enqueue([t], T0) and None, 1),
    "running": (_running, 0),  # its lease (until T0 + 10 s) still holds
    "retrying": (_settled("retry", 3_000), 1),
    "dead-lettered": (_settled("failed"), 0),
    "finished": (_settled("ok"), 0),  # no message left: its result record tells
    "cancelled": (_cancelled, 0),
}


def _snapshot(b: Broker, task_id: str) -> tuple[object, ...]:
    state = b.get("default", task_id)
    assert state is not None
    (info,) = b.queue_info(Q)
    return (state.state, state.message, state.record, info.delayed, info.leased, info.dead)


@pytest.mark.parametrize("path", ["alone", "in a batch"])
@pytest.mark.parametrize("state", list(STATES))
def test_a_resent_enqueue_adds_nothing(broker: Broker, state: str, path: str) -> None:
    setup, deliveries = STATES[state]
    t = item("t1", T0 + 5_000 if state == "scheduled" else 0)
    setup(broker, t)
    before = _snapshot(broker, "t1")
    ready = broker.queue_info(Q)[0].ready
    # the same item again (a re-send): alone it takes enqueue_one.lua on Redis when due now
    again = [t] if path == "alone" else [t, item("t2")]
    assert broker.enqueue(again, T0) == [x.id for x in again]
    assert _snapshot(broker, "t1") == before
    (info,) = broker.queue_info(Q)
    assert info.ready == ready + len(again) - 1
    assert info.stats["enqueued"] == len(again)  # t1 once (and t2)
    result, _ = broker.fetch(Q, 10, T0 + 9_000)
    assert [d.id for d in result.deliveries].count("t1") == deliveries
    assert broker.fetch(Q, 10, T0 + 9_000)[0].deliveries == []


def test_an_id_twice_in_one_batch_is_one_task(broker: Broker) -> None:
    delayed = EnqueueItem("default", "t3", "job", b"{}", delay_ms=5_000)
    ids = broker.enqueue([item("t1"), item("t1"), delayed, item("t2"), delayed], T0)
    assert ids == ["t1", "t1", "t3", "t2", "t3"]
    (info,) = broker.queue_info(Q)
    assert (info.ready, info.delayed, info.stats["enqueued"]) == (2, 1, 3)
    # a re-sent delay does not move the due time: it counts from the first send
    broker.enqueue([delayed], T0 + 4_000)
    assert [d.id for d in broker.fetch(Q, 10, T0 + 5_000)[0].deliveries] == ["t1", "t2", "t3"]


class _ReplyDropper:
    """A TCP proxy to Redis. Once armed, it passes on the next EVALSHA, then closes the
    client's connection when the reply comes back instead of passing it on: the script
    ran, and the client sees a connection lost (what a network cut or a server-side
    timeout does), on which the lean sender sends again on another connection."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            doomed = threading.Event()
            threading.Thread(target=self._up, args=(client, upstream, doomed), daemon=True).start()
            threading.Thread(
                target=self._down, args=(client, upstream, doomed), daemon=True
            ).start()

    def _up(self, client: socket.socket, upstream: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := client.recv(1 << 16):
                if self.armed.is_set() and b"EVALSHA" in data:
                    self.armed.clear()
                    doomed.set()  # before the request goes on, so before its reply
                upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    def _down(
        self, client: socket.socket, upstream: socket.socket, doomed: threading.Event
    ) -> None:
        try:
            while data := upstream.recv(1 << 16):
                if doomed.is_set():
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", ["alone", "in a batch"])
def test_the_lean_senders_resend_stores_one_task(
    redis_url: str, prefix: str, mode: str, path: str
) -> None:
    url = urlparse(redis_url)
    proxy = _ReplyDropper(url.port or 6379)
    via = RedisBroker(f"redis://127.0.0.1:{proxy.port}{url.path}", prefix=prefix)
    direct = RedisBroker(redis_url, prefix=prefix)
    try:
        via._load_scripts()  # a NOSCRIPT reply would be a refusal, not a lost reply
        items = [item("t1")] if path == "alone" else [item("t1"), item("t2", T0 + 5_000)]
        proxy.armed.set()
        if mode == "sync":
            ids = via.enqueue(items, 0)
        else:

            async def send() -> list[str]:
                try:
                    return await via.enqueue_async(items, 0)
                finally:
                    await via.aclose()

            ids = asyncio.run(send())
        assert ids == [x.id for x in items]
        assert proxy.dropped == 1  # the first reply was lost: the script ran twice
        (info,) = direct.queue_info(Q)
        assert (info.ready, info.stats["enqueued"]) == (1, len(items))
        result, _ = direct.fetch(Q, 10, 0)
        assert [d.id for d in result.deliveries] == ["t1"]
    finally:
        via.close()
        direct.close()
        proxy.close()

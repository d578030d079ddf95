"""Every kind of Redis call gives up within its bound over a half-open link (a proxy that
keeps connections open and drops every byte), and works again once the link is back.

Socket and connect timeouts of 0.5 s here: the bound of a call is
``RedisBroker.call_bound`` = 2 x 0.5 + 0.5 = 1.5 s (the lean sends: 0.5 s). Each call is
also wrapped in a 30 s guard so that a call that never ends fails the test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest
from redis.exceptions import RedisError

from taskq_core.brokers.base import EnqueueItem
from taskq_core.brokers.redis import RedisBroker
from tests.reliability.proxy import Proxy

pytestmark = pytest.mark.slow  # fault injection through the proxy

T = TypeVar("T")
TIMEOUT = 0.5
GUARD = 30.0
#: margin for a loaded 2-core machine
SLACK = 2.0


@pytest.fixture
def broker(proxy: Proxy, prefix: str) -> Iterator[RedisBroker]:
    b = RedisBroker(
        proxy.url, prefix=prefix, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    yield b
    b.close()


def item(i: int) -> list[EnqueueItem]:
    return [EnqueueItem("default", f"t{i}", "job", orjson.dumps({"n": i}))]


async def gives_up(call: Callable[[], Awaitable[Any]], bound: float) -> float:
    """Seconds ``call`` took to fail with a Redis error; fails the test past ``bound``."""
    start = time.monotonic()
    with pytest.raises(RedisError):
        await asyncio.wait_for(call(), GUARD)
    elapsed = time.monotonic() - start
    assert elapsed < bound + SLACK, f"gave up after {elapsed:.2f}s, bound {bound}s"
    return elapsed


async def test_lean_async_call_on_a_new_connection_times_out(
    proxy: Proxy, broker: RedisBroker
) -> None:
    # no connection yet: the pool makes one, whose handshake never gets an answer (today's
    # code started its timer only after the checkout, and waited forever)
    proxy.blackhole()
    await gives_up(lambda: broker.enqueue_async(item(1), 0), TIMEOUT)
    await gives_up(lambda: broker.fetch_async(["default"], 4, 0), TIMEOUT)
    proxy.passthrough()
    assert await broker.enqueue_async(item(2), 0) == ["t2"]
    await broker.aclose()


async def test_lean_async_call_on_a_pooled_connection_times_out(
    proxy: Proxy, broker: RedisBroker
) -> None:
    assert await broker.enqueue_async(item(1), 0) == ["t1"]  # a spare connection kept
    proxy.blackhole()
    await gives_up(lambda: broker.settle_async([], 0, {"default": {"x": 1}}), TIMEOUT)
    proxy.passthrough()
    result, _ = await broker.fetch_async(["default"], 4, 0)
    assert [d.id for d in result.deliveries] == ["t1"]
    await broker.aclose()


async def test_idle_wait_and_nudge_time_out(proxy: Proxy, broker: RedisBroker) -> None:
    proxy.blackhole()
    await gives_up(lambda: broker.wait_fetch_async(["default"], 5.0, 4, 0, "me"), TIMEOUT)
    await gives_up(lambda: broker.nudge_async(["default"], "me"), TIMEOUT)
    proxy.passthrough()
    woke, _ = await broker.wait_fetch_async(["default"], 0.1, 4, 0)
    assert woke is False
    await broker.aclose()


async def test_blocking_wait_times_out(proxy: Proxy, broker: RedisBroker) -> None:
    proxy.blackhole()
    bound = broker.call_bound
    assert bound is not None
    await gives_up(lambda: broker.wait_async(["default"], 5.0), bound)
    proxy.passthrough()
    assert await broker.wait_async(["default"], 0.1) is False
    await broker.aclose()


async def test_pubsub_wait_gives_up(proxy: Proxy, broker: RedisBroker) -> None:
    async def never() -> None:
        return None

    proxy.blackhole()
    bound = broker.call_bound
    assert bound is not None
    await gives_up(lambda: broker.wait_for_async("default", "t1", 30.0, never), bound)
    proxy.passthrough()
    # the link is back: the wait returns (nothing came) within its timeout instead of hanging
    await broker.wait_for_async("default", "t1", 0.2, never)
    await broker.aclose()


def test_blocking_client_calls_time_out(proxy: Proxy, broker: RedisBroker) -> None:
    # a new connection from the blocking pool: connect and handshake bounded, one retry
    # (redis-py's default of ten retries made this take eleven timeouts)
    bound = broker.call_bound
    assert bound is not None
    proxy.blackhole()
    for call in (
        lambda: broker.enqueue(item(1), 0),  # lean
        lambda: (broker.renew([], 0), broker.known_queues()),  # through redis-py's client
        broker.ping,
    ):
        start = time.monotonic()
        with pytest.raises(RedisError):
            call()
        elapsed = time.monotonic() - start
        assert elapsed < bound + SLACK, f"gave up after {elapsed:.2f}s, bound {bound}s"
    proxy.passthrough()
    assert broker.enqueue(item(2), 0) == ["t2"]


def test_health_probe_gives_up_within_its_timeout(proxy: Proxy, broker: RedisBroker) -> None:
    probe = broker.probe(0.3)
    proxy.blackhole()
    start = time.monotonic()
    with pytest.raises(RedisError):
        probe.ping()
    assert time.monotonic() - start < 0.3 * 2 + SLACK
    proxy.passthrough()
    assert probe.ping() >= 0


async def test_every_connection_has_tcp_keepalive(broker: RedisBroker) -> None:
    await broker.enqueue_async(item(1), 0)  # a lean connection
    await broker.wait_async(["default"], 0.01)  # the client's connection
    broker.ping()  # a blocking one
    socks: list[socket.socket] = []
    for client in (broker._leanclients, broker._async):
        pool = next(iter(client.values())).connection_pool
        conns = [*pool._available_connections, *pool._in_use_connections]
        socks += [c._writer.get_extra_info("socket") for c in conns if c._writer]
    blocking = broker.client.connection_pool
    socks += [c._sock for c in blocking._available_connections if c._sock]
    assert len(socks) >= 3
    for s in socks:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    await broker.aclose()

"""Slow and half-open links to PostgreSQL, through the fault proxy (tests/reliability/proxy.py)
put between taskq and the server.

- A worker subprocess cut off by a half-open link (every byte dropped both ways, connections
  left open: the kernel of the proxy still acknowledges what the client sends, so TCP
  keepalive and ``tcp_user_timeout`` cannot see it) runs new tasks once the link returns:
  a call that gets no answer within the broker's call timeout has its socket shut down, and
  the pool connects afresh.
- A producer whose link goes half-open gets a clear ``BrokerUnavailable`` within the call
  timeout instead of hanging, and enqueues again once the link returns.
- A slow link (each chunk delayed) slows taskq down and loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlparse, urlunparse

import pytest
import redis

from taskq_core import Settings, TaskQueue
from taskq_core.brokers.postgres import broker as broker_mod
from taskq_core.brokers.postgres.broker import PostgresBroker
from taskq_core.errors import BrokerUnavailable
from tests.reliability.proxy import Proxy
from tests.reliability.test_faults import Workers, runs, wait_until
from tests.reliability.test_half_open import cut_off_and_back

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: the broker's call timeout in these tests (``broker.socket_timeout``; the default is 10 s)
TIMEOUT = 2.0
BLACKHOLE = 10.0
#: after the link returns: a call already on its way gives up within the timeout (its
#: socket is shut down by the watchdog, which looks every half second), the fetch loop backs
#: off (at most 5 s) and fetches on a fresh connection
#: what a call on a half-open link ends with: its own answer never came, or (when the pool
#: found the idle connection dead first) no new connection could be made
CUT_OFF = "no answer within|could not connect within"
PROMISED = TIMEOUT + 0.5 + 5.0
#: room for a loaded 2-core machine
SLACK = 10.0


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    """A fault proxy in front of the test PostgreSQL, and the broker URL through it."""
    parts = urlparse(postgres_url)
    proxy = Proxy(parts.port or 5432, parts.hostname or "127.0.0.1").start()
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    url = urlunparse(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))
    yield proxy, url
    proxy.stop()


def settings(url: str, prefix: str) -> Settings:
    return Settings(broker_url=url, key_prefix=prefix, broker={"socket_timeout": TIMEOUT})


def register(app: TaskQueue) -> TaskQueue:
    app.task(name="rel.long_then_short")(lambda *a, **k: None)
    return app


def test_a_worker_cut_off_by_a_half_open_link_runs_new_tasks_once_it_returns(
    make_app: Callable[..., TaskQueue],
    pg_proxy: tuple[Proxy, str],
    redis_client: redis.Redis,
    redis_url: str,
    prefix: str,
) -> None:
    """The Redis fault suite's scenario, on PostgreSQL (the worker's calls are cut by the
    watchdog; without it they would wait for keepalive, which the proxy never trips)."""
    proxy, url = pg_proxy
    tq = register(make_app("postgres"))  # the producer talks to PostgreSQL directly
    cut_off_and_back(tq, proxy, url, redis_url, redis_client, prefix, TIMEOUT, BLACKHOLE)


def test_a_producer_on_a_half_open_link_gets_an_error_in_time_then_enqueues_again(
    make_app: Callable[..., TaskQueue], pg_proxy: tuple[Proxy, str], prefix: str
) -> None:
    proxy, url = pg_proxy
    make_app("postgres")  # the test's namespace is dropped after it
    tq = register(TaskQueue(settings=settings(url, prefix)))
    try:
        tq.enqueue("rel.long_then_short", [0])  # a pooled connection, used and idle
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=CUT_OFF):
            tq.enqueue("rel.long_then_short", [1])
        took = time.monotonic() - started
        assert took < TIMEOUT + 0.5 + 3.0, took  # not the server's 30 s, not keepalive's 45
        proxy.passthrough()
        # the shut-down connection is not handed out again: the next enqueue works
        handle = tq.enqueue("rel.long_then_short", [2])
        assert handle.status() == "queued"
    finally:
        tq.close()


async def test_an_async_producer_on_a_half_open_link_gets_an_error_in_time(
    make_app: Callable[..., TaskQueue], pg_proxy: tuple[Proxy, str], prefix: str
) -> None:
    proxy, url = pg_proxy
    make_app("postgres")
    tq = register(TaskQueue(settings=settings(url, prefix)))
    try:
        await tq.enqueue_many_async([tq.signature("rel.long_then_short", [0])])
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=CUT_OFF):
            await tq.enqueue_many_async([tq.signature("rel.long_then_short", [1])])
        assert time.monotonic() - started < TIMEOUT + 0.5 + 3.0
        proxy.passthrough()
        (handle,) = await tq.enqueue_many_async([tq.signature("rel.long_then_short", [2])])
        assert await handle.status_async() == "queued"
    finally:
        await tq.aclose()


def test_a_slow_link_slows_the_work_and_loses_nothing(
    make_app: Callable[..., TaskQueue],
    pg_proxy: tuple[Proxy, str],
    redis_client: redis.Redis,
    redis_url: str,
    prefix: str,
) -> None:
    proxy, url = pg_proxy
    tq = register(make_app("postgres"))
    proxy.slow(0.05)  # 50 ms each way on every chunk: a far-away database
    workers = Workers(url, prefix)
    try:
        workers.start(concurrency=4, TASKQ_TEST_RECORD_URL=redis_url)
        tq.enqueue_many(
            [
                tq.signature("rel.long_then_short", [i], {"long": 0.01, "short": 0.01})
                for i in range(60)
            ]
        )
        wait_until(lambda: len(runs(redis_client, prefix, "finished")) == 60, 60, "all 60")
        done = sorted(int(i) for i, _ in runs(redis_client, prefix, "finished"))
        assert done == list(range(60))
    finally:
        workers.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_call_with_no_answer_is_cut_and_its_connection_dropped(
    pg_proxy: tuple[Proxy, str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The watchdog itself: a call gets no answer; it fails "no answer within" at the call
    timeout, and that connection is closed, never handed out again. (Every connection is
    handed out unchecked here, as one used within the last 2 s is: else the pool's own
    check, bounded the same way, may be what meets the dead link first.)"""
    monkeypatch.setattr(broker_mod, "CHECK_AFTER", float("inf"))
    proxy, url = pg_proxy
    broker = PostgresBroker(url, call_timeout=1.0, connect_timeout=1.0)

    async def twice() -> tuple[float, str]:
        await broker.run_async(broker.calls.known_queues())
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as info:
            await broker.run_async(broker.calls.known_queues())
        took = time.monotonic() - started
        proxy.passthrough()
        queues: list[str] = await broker.run_async(broker.calls.known_queues())
        assert isinstance(queues, list)  # on a fresh connection
        await broker.aclose()
        return took, str(info.value)

    try:
        if mode == "async":
            took, text = asyncio.run(twice())
        else:
            broker.run(broker.calls.known_queues())
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as info:
                broker.run(broker.calls.known_queues())
            took, text = time.monotonic() - started, str(info.value)
            proxy.passthrough()
            found: list[str] = broker.run(broker.calls.known_queues())
            assert isinstance(found, list)
        assert "no answer within 1s" in text, text
        assert 1.0 <= took < 1.0 + 0.5 + 1.5, took
    finally:
        broker.close()

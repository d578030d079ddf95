"""The lean sends' timeout (one timer per exchange, no asyncio.timeout): a Redis that stops
answering turns into redis-py's TimeoutError within the socket timeout, the connection is
not reused, and a cancellation from outside still arrives as a cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq_core.brokers.base import EnqueueItem
from taskq_core.brokers.redis import RedisBroker
from tests.observability.test_health import OwnRedis


@pytest.fixture
def frozen_redis() -> Iterator[OwnRedis]:
    r = OwnRedis()
    r.start()
    yield r
    r.stop()


def one(i: int) -> list[EnqueueItem]:
    return [EnqueueItem("default", f"t{i}", "job", orjson.dumps({"n": i}))]


async def test_async_enqueue_times_out_on_a_frozen_redis_and_recovers(
    frozen_redis: OwnRedis,
) -> None:
    broker = RedisBroker(frozen_redis.url, prefix="leantimeout", socket_timeout=0.5)
    try:
        assert await broker.enqueue_async(one(1), 0) == ["t1"]  # a live connection kept
        frozen_redis.freeze(True)
        start = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"within 0\.5s"):
            await broker.enqueue_async(one(2), 0)
        elapsed = time.monotonic() - start
        assert 0.4 < elapsed < 1.5
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # the timer's cancel was taken back
        frozen_redis.freeze(False)
        # the timed-out connection was dropped (its reply would be read as the next one's)
        assert await broker.enqueue_async(one(3), 0) == ["t3"]
        state = await broker.get_async("default", "t3")
        assert state is not None
        assert state.message == b'{"n":3}'
    finally:
        frozen_redis.freeze(False)
        await broker.aclose()
        broker.close()


async def test_outside_cancellation_is_not_a_timeout(frozen_redis: OwnRedis) -> None:
    broker = RedisBroker(frozen_redis.url, prefix="leantimeout", socket_timeout=5.0)
    try:
        assert await broker.enqueue_async(one(1), 0) == ["t1"]
        frozen_redis.freeze(True)
        call = asyncio.ensure_future(broker.enqueue_async(one(2), 0))
        await asyncio.sleep(0.2)
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        frozen_redis.freeze(False)
        assert await broker.enqueue_async(one(3), 0) == ["t3"]
    finally:
        frozen_redis.freeze(False)
        await broker.aclose()
        broker.close()

"""The Redis mode: real Redis, a key prefix per test, its keys deleted afterwards."""

from __future__ import annotations

import pytest
import redis

from .conftest import dedent, ini

ON_REDIS = """
import pytest
import redis
from shop import send_email, signup
from taskq_core.brokers.redis import RedisBroker
from taskq_core.testing import assert_enqueued


def keys(app):
    client = redis.Redis.from_url(app.settings.broker_url)
    try:
        return list(client.scan_iter(match=f"{app.settings.key_prefix}:*"))
    finally:
        client.close()


def note(app):
    with open("prefixes.txt", "a") as f:
        f.write(app.settings.key_prefix + "\\n")


@pytest.mark.taskq(broker="redis")
def test_marker_asks_for_redis(taskq_app, taskq_worker, taskq_clock):
    note(taskq_app)
    assert isinstance(taskq_app.broker.inner, RedisBroker)
    send_email.options(delay=600).enqueue("ada@example.com")
    assert keys(taskq_app)  # really in Redis
    assert taskq_worker.drain() == []
    taskq_clock.advance(minutes=10)  # due times follow the test clock on Redis too
    assert [r.result for r in taskq_worker.drain()] == ["sent ada@example.com"]


@pytest.mark.taskq(broker="redis")
def test_each_test_has_its_own_prefix(taskq_app):
    note(taskq_app)
    signup("bob@example.com")
    assert_enqueued(send_email, count=1)


@pytest.mark.taskq(broker="redis")
async def test_async_on_redis(taskq_app, taskq_worker):
    note(taskq_app)
    handle = await send_email.enqueue_async("eve@example.com")
    assert [r.result for r in await taskq_worker.drain_async()] == ["sent eve@example.com"]
    assert await handle.result_async(timeout=5) == "sent eve@example.com"


def test_memory_by_default(taskq_app):
    assert type(taskq_app.broker.inner).__name__ == "MemoryBroker"
"""

ALL_ON_REDIS = """
from taskq_core.brokers.redis import RedisBroker


def test_on_redis(taskq_app):
    assert isinstance(taskq_app.broker.inner, RedisBroker)
"""


def test_redis_mode_cleans_up(shop: pytest.Pytester, redis_url: str) -> None:
    shop.makeini(ini(taskq_plugin="true", taskq_app="shop:tq", taskq_redis_url=redis_url))
    shop.makepyfile(test_redis=dedent(ON_REDIS))
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=4)
    assert "Unclosed" not in result.stdout.str() + result.stderr.str()
    prefixes = (shop.path / "prefixes.txt").read_text().split()
    assert len(set(prefixes)) == 3
    client = redis.Redis.from_url(redis_url)
    try:
        for prefix in prefixes:
            assert not list(client.scan_iter(match=f"{prefix}:*")), prefix
    finally:
        client.close()


def test_command_line_url_puts_every_test_on_redis(shop: pytest.Pytester, redis_url: str) -> None:
    shop.makeini(ini(taskq_plugin="true"))
    shop.makepyfile(test_all=dedent(ALL_ON_REDIS))
    shop.runpytest_subprocess("--taskq-redis-url", redis_url).assert_outcomes(passed=1)


def test_no_redis_fails_clearly(shop: pytest.Pytester) -> None:
    shop.makeini(ini(taskq_plugin="true"))
    shop.makepyfile(test_all=dedent(ALL_ON_REDIS))
    # a port nothing listens on: port 1 needs root to bind, and nothing here does
    result = shop.runpytest_subprocess("--taskq-redis-url", "redis://127.0.0.1:1/0")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*taskq_app: no Redis answers at redis://127.0.0.1:1/0*"])

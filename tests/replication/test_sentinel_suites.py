"""The broker contract suite and the core worker tests, run against a Redis Sentinel group:
every broker and worker call goes through a ``redis+sentinel://`` URL (the Sentinels name
the master; the data is on the master and copied to its replica)."""

from __future__ import annotations

import pytest
import redis

from tests.core import conftest as core_conftest
from tests.core import test_broker_contract, test_worker
from tests.replication.servers import SentinelGroup
from tests.suites import collected

pytestmark = pytest.mark.sentinel

globals().update(collected(test_broker_contract, test_worker))
broker = core_conftest.broker  # the contract suite's fixture, on this set-up's URL


@pytest.fixture
def broker_kind() -> str:
    return "redis"


@pytest.fixture
def redis_url(sentinel_group: SentinelGroup) -> str:
    return sentinel_group.url


@pytest.fixture
def redis_client(master_client: redis.Redis) -> redis.Redis:
    # the prefix fixture deletes the test's keys through it
    return master_client


def test_the_url_reaches_the_master_through_the_sentinels(
    sentinel_group: SentinelGroup, redis_url: str
) -> None:
    from taskq_core.brokers.redis import RedisBroker

    b = RedisBroker(redis_url, prefix="sentinel-url")
    try:
        info = b.client.info("server")
        assert int(info["tcp_port"]) == sentinel_group.master_port()
        assert b.client.info("replication")["role"] == "master"
    finally:
        b.close()

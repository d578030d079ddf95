"""The broker the broker-level suites share: Redis (a real server) or in-memory, by the
``broker_kind`` parameter, with a 10 s lease and three deliveries before dead-lettering."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq_core.brokers.base import Broker, Settings
from taskq_core.brokers.memory import MemoryBroker
from taskq_core.brokers.redis import RedisBroker

#: the broker's settings (callers pass their own times: leases end 10 s after them)
SETTINGS = Settings(
    lease_ms=10_000, max_deliveries=3, result_ttl_ms=60_000, idempotency_ttl_ms=60_000
)


@pytest.fixture
def broker(
    broker_kind: str, redis_url: str, prefix: str, request: pytest.FixtureRequest
) -> Iterator[Broker]:
    b: Broker
    pg_url = ""
    if broker_kind == "redis":
        b = RedisBroker(redis_url, prefix=prefix, settings=SETTINGS)
    elif broker_kind == "postgres":
        from taskq_core.brokers.postgres.broker import PostgresBroker

        pg_url = request.getfixturevalue("postgres_url")
        b = PostgresBroker(pg_url, prefix=prefix, settings=SETTINGS)
    else:
        b = MemoryBroker(SETTINGS)
    yield b
    b.close()
    if pg_url:
        from tests.conftest import drop_namespace

        drop_namespace(pg_url, prefix)

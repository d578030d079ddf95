"""A worker of this version reads what an earlier one wrote: names changed in code keep their
stored form (``keys.STORED_SUFFIXES``). The queue state here is written with raw Redis
commands, under the stored names the earlier version used (``unack``: the deliveries
accounted for, now ``accounted`` in code), then the real broker runs on it."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import redis

from taskq_core.brokers.base import Lease, Outcome, Settings
from taskq_core.brokers.redis import RedisBroker
from taskq_core.keys import Keys

T0 = 1_800_000_000_000
LEASE_MS = 10_000


@pytest.fixture
def broker(redis_url: str, prefix: str) -> Iterator[RedisBroker]:
    settings = Settings(lease_ms=LEASE_MS, max_deliveries=3, result_ttl_ms=60_000)
    broker = RedisBroker(redis_url, prefix=prefix, settings=settings)
    yield broker
    broker.close()


def old_key(prefix: str, suffix: str) -> str:
    """A queue key as the earlier version named it (spelled out, not taken from keys.py)."""
    return f"{prefix}:{{default}}:{suffix}"


def write_old_delivery(
    client: redis.Redis, prefix: str, task_id: str, fence: int, had_outcome: int
) -> None:
    """``task_id`` leased (its lease lapsing at T0) on delivery ``fence``, of which
    ``had_outcome`` earlier deliveries had an outcome: what the earlier version wrote."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(old_key(prefix, "msg"), task_id, orjson.dumps({"n": task_id}))
        pipe.hset(old_key(prefix, "fence"), task_id, fence)
        pipe.hset(old_key(prefix, "unack"), task_id, had_outcome)
        pipe.zadd(old_key(prefix, "leased"), {task_id: T0})
        pipe.sadd(f"{prefix}:queues", "default")
        pipe.execute()


def test_the_renamed_key_keeps_its_stored_name(prefix: str) -> None:
    keys = Keys(prefix).queue("default")
    assert keys.accounted == old_key(prefix, "unack")
    assert [key.rsplit(":", 1)[1] for key in keys] == [
        "ready", "delayed", "leased", "msg", "state", "fence",
        "unack", "dead", "error", "stats", "wake", "suspect",
        "gate", "rates", "slots", "capwait", "unique", "unique_until", "progress", "abort",
        "wfout",
    ]  # fmt: skip


def test_the_poison_rule_counts_the_outcomes_the_old_version_recorded(
    broker: RedisBroker, redis_client: redis.Redis, prefix: str
) -> None:
    # delivered 3 times, one of which had an outcome (a retry): 2 without one so far
    write_old_delivery(redis_client, prefix, "t1", fence=3, had_outcome=1)
    # its third delivery lapses: 3 - 1 = 2 deliveries without an outcome, under
    # max_deliveries (3): a suspect, not dead-lettered (it would be if the 1 were not read)
    result, _ = broker.fetch(["default"], 1, T0 + 1, (), None)
    assert result.deliveries == []
    assert broker.get("default", "t1").state != "dead"  # type: ignore[union-attr]
    result, _ = broker.fetch(["default"], 1, T0 + 2, (), None, alone=True)
    (delivery,) = result.deliveries
    assert (delivery.id, delivery.fence) == ("t1", 4)
    # the fourth lapses: 4 - 1 = 3, dead-lettered
    result, _ = broker.fetch(["default"], 1, T0 + 3 + LEASE_MS, (), None)
    state = broker.get("default", "t1")
    assert state is not None
    assert state.state == "dead"
    record = orjson.loads(state.record or b"")
    assert record["error"]["type"] == "PoisonTask"
    assert "delivered 3 times" in record["error"]["message"]


def test_settle_and_release_write_and_clear_the_old_stored_entries(
    broker: RedisBroker, redis_client: redis.Redis, prefix: str
) -> None:
    unack = old_key(prefix, "unack")
    write_old_delivery(redis_client, prefix, "t2", fence=2, had_outcome=1)
    write_old_delivery(redis_client, prefix, "t3", fence=2, had_outcome=1)
    redis_client.zadd(old_key(prefix, "leased"), {"t2": T0 + LEASE_MS, "t3": T0 + LEASE_MS})
    # a graceful hand-back is accounted for, in the stored hash the old version reads
    assert broker.release([Lease("default", "t3", 2)], "graceful", "", T0) == 1
    assert redis_client.hget(unack, "t3") == b"2"
    # a success deletes the task's entries there
    ok = Outcome("default", "t2", 2, "ok", "job", b'{"status": "succeeded"}')
    assert broker.settle([ok], T0) == []
    assert redis_client.hget(unack, "t2") is None
    assert redis_client.hget(old_key(prefix, "fence"), "t2") is None
    assert redis_client.hget(old_key(prefix, "msg"), "t2") is None

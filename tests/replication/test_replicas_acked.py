"""``broker.min_replicas_acked``: an enqueue is followed by a WAIT in the same round trip,
and returns only once that many replicas have it (NotReplicated otherwise). On the shared
test Redis, which has no replica, every enqueue so configured is refused that way, after
``replica_ack_timeout``, with the task written all the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.exceptions import NoScriptError

from taskq_core import TaskQueue
from taskq_core.brokers.redis import _missing
from taskq_core.brokers.redis_plans import Plan
from taskq_core.errors import NotReplicated
from taskq_core.settings import Settings
from taskq_core.workflow import chain


@pytest.fixture
def acked(redis_url: str, prefix: str) -> Iterator[TaskQueue]:
    tq = TaskQueue(
        settings=Settings(
            broker_url=redis_url,
            key_prefix=prefix,
            broker={"min_replicas_acked": 1, "replica_ack_timeout": 0.05},
        )
    )
    yield tq
    tq.close()


def test_without_a_replica_an_enqueue_is_refused_but_written(acked: TaskQueue) -> None:
    tq = acked
    task = tq.task(name="acked.t")(lambda x: x)
    start = time.monotonic()
    with pytest.raises(NotReplicated, match="0 of the 1 replica"):
        task.options(task_id="one").enqueue(1)  # the one-task script
    assert time.monotonic() - start >= 0.04  # it waited replica_ack_timeout
    with pytest.raises(NotReplicated):
        tq.enqueue_many([task.options(task_id=f"b{i}").call(i) for i in range(3)])  # bulk

    async def enqueue_async() -> None:
        try:
            await task.options(task_id="async").enqueue_async(2)
        finally:
            await tq.aclose()  # this loop's connections, before the loop ends

    with pytest.raises(NotReplicated):
        asyncio.run(enqueue_async())
    with pytest.raises(NotReplicated):
        chain(task.call(1), task.call()).enqueue()  # type: ignore[call-arg]  # a workflow's start
    # the tasks are there: NotReplicated says they may be lost, not that they were not sent
    for tid in ("one", "b0", "b1", "b2", "async"):
        assert tq.handle(tid, "default").status() == "queued"


def test_a_script_sent_again_is_followed_by_its_wait_again(acked: TaskQueue) -> None:
    """After a server lost its scripts (a restart, a failover) the refused script call is
    sent again, and the WAIT after it too: the WAIT sent the first time counted nothing."""
    plan: Plan[None] = Plan(["call", ("WAIT", 1, 50)], lambda r: None, waits=True)  # type: ignore[list-item]
    assert _missing(plan, [NoScriptError("NOSCRIPT"), 1]) == [0, 1]
    assert _missing(plan, [1, 1]) == []
    plain: Plan[None] = Plan(["a", "b"], lambda r: None)  # type: ignore[list-item]
    assert _missing(plain, [NoScriptError("NOSCRIPT"), 1]) == [0]
    # and for real: SCRIPT FLUSH, then an enqueue still reaches the WAIT's verdict
    tq = acked
    task = tq.task(name="acked.flush")(lambda: None)
    tq.broker.client.script_flush()  # type: ignore[attr-defined]
    with pytest.raises(NotReplicated):
        task.enqueue()


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="min_replicas_acked"):
        Settings(broker={"min_replicas_acked": -1})
    with pytest.raises(ValueError, match="replica_ack_timeout"):
        Settings(broker={"replica_ack_timeout": 0})
    assert Settings().broker.min_replicas_acked == 0  # off by default

"""The broker contract: every test runs against Redis (a real server), the in-memory broker
and PostgreSQL (a real server, marker ``postgres``), and all must behave the same."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from taskq_core.brokers.base import Broker, EnqueueItem, FetchResult, Lease, Outcome
from taskq_core.brokers.memory import MemoryBroker
from taskq_core.brokers.redis import RedisBroker

Q = ["high", "default", "low"]
T0 = 1_800_000_000_000  # a fixed "now" in ms: the broker takes time from its caller


def item(
    i: int | str, queue: str = "default", due_ms: int = 0, key: str | None = None
) -> EnqueueItem:
    return EnqueueItem(queue, f"t{i}", "job", orjson.dumps({"n": i}), due_ms, key)


def ids(broker: Broker, want: int, now: int = T0, queues: list[str] = Q) -> list[str]:
    """What a worker that holds nothing leases (it may be given a suspect, alone)."""
    result, _ = broker.fetch(queues, want, now, alone=True)
    return [d.id for d in result.deliveries]


def test_enqueue_then_fetch_fifo(broker: Broker) -> None:
    assert broker.enqueue([item(1), item(2), item(3)], T0) == ["t1", "t2", "t3"]
    result, stale = broker.fetch(Q, 10, T0)
    assert [d.id for d in result.deliveries] == ["t1", "t2", "t3"]
    assert [d.fence for d in result.deliveries] == [1, 1, 1]
    assert orjson.loads(result.deliveries[0].body) == {"n": 1}
    assert stale == []
    assert ids(broker, 10) == []


def test_one_task_enqueues_keep_the_batch_contract(broker: Broker) -> None:
    """One task due now without an idempotency key takes the broker's fast path (on Redis,
    enqueue_one.lua); it must store, count and queue exactly as a batch does."""
    assert broker.enqueue([item(1)], T0) == ["t1"]
    assert broker.enqueue([item(2), item(3)], T0) == ["t2", "t3"]
    assert broker.enqueue([item(4)], T0) == ["t4"]
    # due by the caller's clock: ready at once, like a task without a due time
    assert broker.enqueue([item(5, due_ms=T0 - 1)], T0) == ["t5"]
    state = broker.get("default", "t4")
    assert state is not None
    assert (state.state, state.message) == ("queued", b'{"n":4}')
    (info,) = broker.queue_info(["default"])
    assert (info.ready, info.delayed, info.stats["enqueued"]) == (5, 0, 5)
    assert info.stats["enqueued|job"] == 5
    assert ids(broker, 10) == ["t1", "t2", "t3", "t4", "t5"]


def test_strict_priority_across_queues(broker: Broker) -> None:
    broker.enqueue([item("l1", "low"), item("d1"), item("h1", "high"), item("l2", "low")], T0)
    broker.enqueue([item("h2", "high")], T0)
    assert ids(broker, 1) == ["th1"]
    assert ids(broker, 2) == ["th2", "td1"]
    assert ids(broker, 5) == ["tl1", "tl2"]


def test_fetch_respects_want(broker: Broker) -> None:
    broker.enqueue([item(i) for i in range(5)], T0)
    assert len(ids(broker, 2)) == 2
    assert len(ids(broker, 10)) == 3


def test_delayed_tasks_wait_until_due(broker: Broker) -> None:
    broker.enqueue([item("late", due_ms=T0 + 5_000), item("later", due_ms=T0 + 9_000)], T0)
    assert broker.get("default", "tlate").state == "scheduled"  # type: ignore[union-attr]
    result, _ = broker.fetch(Q, 10, T0)
    assert result.deliveries == []
    assert result.next_due_ms == T0 + 5_000
    assert ids(broker, 10, T0 + 5_000) == ["tlate"]
    assert ids(broker, 10, T0 + 9_001) == ["tlater"]


def test_settle_ok_stores_result_and_clears_task(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    assert broker.get("default", "t1").state == "running"  # type: ignore[union-attr]
    record = orjson.dumps({"status": "succeeded", "result": 42})
    assert broker.settle([Outcome("default", "t1", d.fence, "ok", "job", record)], T0) == []
    state = broker.get("default", "t1")
    assert state is not None
    assert state.state is None
    assert orjson.loads(state.record or b"") == {"status": "succeeded", "result": 42}
    info = broker.queue_info(["default"])[0]
    assert (info.ready, info.leased, info.delayed, info.dead) == (0, 0, 0, 0)
    assert info.stats["ok"] == 1
    assert info.stats["ok|job"] == 1
    assert info.stats["enqueued"] == 1


def test_stale_settle_is_refused_and_counted(broker: Broker) -> None:
    """Fencing: a worker whose lease lapsed and was re-leased cannot settle the task."""
    broker.enqueue([item(1)], T0)
    (first,) = broker.fetch(Q, 1, T0)[0].deliveries
    # the lease lapses (worker frozen); another fetch re-leases the task with a new fence
    (second,) = broker.fetch(Q, 1, T0 + 10_001, alone=True)[0].deliveries
    assert second.id == first.id
    assert second.fence == first.fence + 1
    late = Outcome("default", "t1", first.fence, "ok", "job", b'{"status":"succeeded","result":1}')
    assert broker.settle([late], T0 + 10_002) == [late]
    assert broker.get("default", "t1").state == "running"  # type: ignore[union-attr]
    good = Outcome("default", "t1", second.fence, "ok", "job", b'{"status":"succeeded","result":2}')
    assert broker.settle([good], T0 + 10_003) == []
    assert orjson.loads(broker.get("default", "t1").record or b"")["result"] == 2  # type: ignore[union-attr]
    # and the first worker cannot settle it afterwards either
    assert broker.settle([late], T0 + 10_004) == [late]
    stats = broker.queue_info(["default"])[0].stats
    assert stats["stale_acks"] == 2
    assert stats["ok"] == 1


def test_lapsed_lease_goes_back_to_the_front(broker: Broker) -> None:
    broker.enqueue([item(1), item(2)], T0)
    (d1,) = broker.fetch(Q, 1, T0)[0].deliveries
    assert d1.id == "t1"
    # before the deadline nothing moves; after it, t1 is first in line again
    assert ids(broker, 1, T0 + 9_999) == ["t2"]
    assert ids(broker, 1, T0 + 10_001) == ["t1"]
    assert broker.queue_info(["default"])[0].stats["lease_expired"] == 1


def test_renew_extends_and_reports_lost(broker: Broker) -> None:
    broker.enqueue([item(1), item(2)], T0)
    d1, _ = broker.fetch(Q, 2, T0)[0].deliveries
    got = broker.renew([Lease("default", "t1", d1.fence), Lease("default", "t2", 99)], T0 + 9_000)
    assert [lease.id for lease in got.lost] == ["t2"]
    assert got.aborting == []
    # t1's lease now runs to T0 + 19_000, t2's lapsed at T0 + 10_000
    assert ids(broker, 5, T0 + 12_000) == ["t2"]
    assert ids(broker, 5, T0 + 18_000) == []


def test_poison_task_dead_lettered_after_max_deliveries(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    now = T0
    for n in range(1, 4):
        (d,) = broker.fetch(Q, 1, now, alone=True)[0].deliveries
        assert d.fence == n
        now += 10_001  # the worker dies each time: the lease lapses
    assert ids(broker, 1, now) == []  # third lapse: max_deliveries (3) reached
    state = broker.get("default", "t1")
    assert state is not None
    assert state.state == "dead"
    record = orjson.loads(state.record or b"")
    assert record["error"]["type"] == "PoisonTask"
    assert "3 times" in record["error"]["message"]
    (dead,) = broker.dead_list("default", 0, 10)
    assert dead.id == "t1"
    assert dead.message is not None


def test_release_hands_back_without_counting_a_delivery(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    now = T0
    for _ in range(5):  # more than max_deliveries, but every one was handed back cleanly
        (d,) = broker.fetch(Q, 1, now)[0].deliveries
        assert broker.release([Lease("default", d.id, d.fence)]) == 1
        now += 1
    assert broker.release([Lease("default", "t1", 1)]) == 0  # stale fence: refused
    (d,) = broker.fetch(Q, 1, now)[0].deliveries
    assert d.fence == 6
    assert broker.get("default", "t1").state == "running"  # type: ignore[union-attr]


def test_retry_outcome_reschedules_with_new_message(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    # due 3 s after the broker's now (the caller's T0 here)
    retry = Outcome("default", "t1", d.fence, "retry", "job", b"{}", 3_000, b'{"n":"again"}')
    assert broker.settle([retry], T0) == []
    assert broker.get("default", "t1").state == "scheduled"  # type: ignore[union-attr]
    assert ids(broker, 1, T0 + 2_999) == []
    result, _ = broker.fetch(Q, 1, T0 + 3_000)
    assert orjson.loads(result.deliveries[0].body) == {"n": "again"}
    assert broker.queue_info(["default"])[0].stats["retry"] == 1


def test_failed_outcome_goes_to_dead_letter_and_back(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    record = orjson.dumps({"status": "failed", "error": {"type": "ValueError", "message": "x"}})
    broker.settle([Outcome("default", "t1", d.fence, "failed", "job", record)], T0)
    state = broker.get("default", "t1")
    assert state is not None
    assert state.state == "failed"
    (dead,) = broker.dead_list("default", 0, 10)
    assert (dead.id, dead.state) == ("t1", "failed")
    assert orjson.loads(dead.error or b"")["error"]["type"] == "ValueError"
    assert broker.dead_retry("default", ["t1", "nope"]) == 1
    assert broker.dead_list("default", 0, 10) == []
    assert ids(broker, 1, T0 + 1) == ["t1"]


def test_dead_purge(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    broker.settle([Outcome("default", "t1", d.fence, "dead", "job", b'{"status":"dead"}')], T0)
    assert broker.dead_purge("default", ["t1"]) == 1
    assert broker.dead_purge("default", ["t1"]) == 0
    assert broker.get("default", "t1") is None or broker.get("default", "t1").state is None  # type: ignore[union-attr]
    assert broker.dead_retry("default", ["t1"]) == 0


def test_idempotency_key_returns_first_task(broker: Broker) -> None:
    first = broker.enqueue([item(1, key="order-7")], T0)
    again = broker.enqueue([item(2, key="order-7"), item(3, key="order-8")], T0 + 1)
    assert first == ["t1"]
    assert again == ["t1", "t3"]
    assert ids(broker, 10, T0 + 2) == ["t1", "t3"]
    assert broker.queue_info(["default"])[0].stats["enqueued"] == 2


def test_cancel_queued_and_scheduled_but_not_running(broker: Broker) -> None:
    broker.enqueue([item(1), item(2, due_ms=T0 + 60_000), item(3)], T0)
    rec = b'{"status":"cancelled"}'
    assert broker.cancel("default", "t1", rec) == "cancelled"
    assert broker.cancel("default", "t2", rec) == "cancelled"
    assert broker.cancel("default", "t2", rec) == ""
    (d,) = broker.fetch(Q, 5, T0 + 120_000)[0].deliveries
    assert d.id == "t3"
    assert broker.cancel("default", "t3", rec) == "running"
    assert orjson.loads(broker.get("default", "t1").record or b"") == {"status": "cancelled"}  # type: ignore[union-attr]


def test_settle_and_fetch_in_one_call(broker: Broker) -> None:
    broker.enqueue([item(1), item(2)], T0)
    (d1,) = broker.fetch(Q, 1, T0)[0].deliveries
    ok = Outcome("default", "t1", d1.fence, "ok", "job", b'{"status":"succeeded"}')
    result, stale = broker.fetch(Q, 1, T0, [ok], {"default": {"custom|x": 5}})
    assert [d.id for d in result.deliveries] == ["t2"]
    assert stale == []
    stats = broker.queue_info(["default"])[0].stats
    assert stats["ok"] == 1
    assert stats["custom|x"] == 5


def test_queue_info_counts(broker: Broker) -> None:
    broker.enqueue([item(1), item(2), item(3, due_ms=T0 + 1000)], T0 - 500)
    broker.fetch(Q, 1, T0)
    (info,) = broker.queue_info(["default"])
    assert (info.ready, info.delayed, info.leased, info.dead) == (1, 1, 1, 0)
    assert info.oldest_enqueued_ms is None  # our test bodies carry no envelope


def test_counters(broker: Broker) -> None:
    broker.incr_counters("routes", {"/a": 2, "/b": 1})
    broker.incr_counters("routes", {"/a": 1})
    assert broker.read_counters("routes") == {"/a": 3, "/b": 1}


async def test_async_forms_match(broker: Broker) -> None:
    assert await broker.enqueue_async([item(1)], T0) == ["t1"]
    result, _ = await broker.fetch_async(Q, 5, T0)
    (d,) = result.deliveries
    ok = Outcome("default", "t1", d.fence, "ok", "job", b'{"status":"succeeded","result":7}')
    assert await broker.settle_async([ok], T0) == []
    state = await broker.get_async("default", "t1")
    assert state is not None
    assert orjson.loads(state.record or b"")["result"] == 7
    assert await broker.cancel_async("default", "t1", b"{}") == ""
    await broker.aclose()


async def test_idle_wait_wakes_on_enqueue(broker: Broker) -> None:
    """An idle worker blocks on the broker and is woken by an enqueue, not a poll."""
    broker.fetch(Q, 1, T0)  # consume any token left from before
    await broker.wait_async(Q, 0.01)
    waiter = asyncio.ensure_future(broker.wait_async(Q, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.to_thread(broker.enqueue, [item(1, "low")], T0)
    assert await asyncio.wait_for(waiter, 5) is True
    assert loop.time() - start < 1.0
    await broker.aclose()


async def test_idle_wait_times_out(broker: Broker) -> None:
    broker.fetch(Q, 1, T0)
    await broker.wait_async(Q, 0.01)
    assert await broker.wait_async(Q, 0.05) is False
    await broker.aclose()


async def test_idle_wait_leases_what_woke_it_in_the_same_call(broker: Broker) -> None:
    """wait_fetch_async returns the task whose enqueue woke it (Redis runs the fetch right
    after the BLPOP, on the same connection), and nothing after a timeout."""
    broker.fetch(Q, 1, T0)
    await broker.wait_async(Q, 0.01)
    assert await broker.wait_fetch_async(Q, 0.05, 5, T0) == (False, FetchResult([], None))
    waiter = asyncio.ensure_future(broker.wait_fetch_async(Q, 10, 5, T0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await asyncio.to_thread(broker.enqueue, [item(1, "low"), item(2, "high")], T0)
    woken, result = await asyncio.wait_for(waiter, 5)
    assert woken is True
    assert [(d.queue, d.id, d.fence) for d in result.deliveries] == [
        ("high", "t2", 1),
        ("low", "t1", 1),
    ]
    assert broker.get("low", "t1").state == "running"  # type: ignore[union-attr]
    await broker.aclose()


def test_wait_for_wakes_on_settle(broker: Broker) -> None:
    import threading

    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries

    def check() -> bytes | None:
        state = broker.get("default", "t1")
        return state.record if state is not None and state.state is None else None

    timer = threading.Timer(
        0.2, broker.settle, args=([Outcome("default", "t1", d.fence, "ok", "job", b'"done"')], T0)
    )
    timer.start()
    try:
        assert broker.wait_for("default", "t1", 5.0, check) == b'"done"'
    finally:
        timer.join()
    assert broker.wait_for("default", "t2", 0.1, lambda: None) is None


def test_batches_longer_than_a_lua_unpack(broker: Broker) -> None:
    """Scripts pass long lists to Redis in slices (Lua's unpack() stops near 8,000)."""
    n = 10_000
    broker.enqueue([item(i) for i in range(n)], T0)
    result, _ = broker.fetch(Q, 9_000, T0)
    assert [d.id for d in result.deliveries] == [f"t{i}" for i in range(9_000)]
    outcomes = [Outcome(d.queue, d.id, d.fence, "ok", "job", b"{}") for d in result.deliveries]
    assert broker.settle(outcomes, T0) == []
    assert ids(broker, n, T0) == [f"t{i}" for i in range(9_000, n)]
    (info,) = broker.queue_info(["default"])
    assert (info.ready, info.leased) == (0, 1_000)
    assert info.stats["ok"] == 9_000
    assert info.stats["enqueued"] == n


def test_one_task_enqueues_leave_at_most_one_wake_token(redis_url: str, prefix: str) -> None:
    """The first task into an empty queue wakes one sleeper; the ones behind it, while the
    queue is not empty, add no token (the wake list never grows with the backlog)."""
    import redis

    b = RedisBroker(redis_url, prefix=prefix)
    r = redis.Redis.from_url(redis_url)
    wake = b.keys.wake("default")
    try:
        for i in range(5):
            b.enqueue([item(i)], T0)
        assert r.llen(wake) == 1
        r.delete(wake)
        b.enqueue([item(9)], T0)  # the queue is not empty: no one sleeps on it
        assert r.llen(wake) == 0
        assert len(ids(b, 10)) == 6
        b.enqueue([item(10)], T0)
        assert r.llen(wake) == 1
    finally:
        r.close()
        b.close()


@pytest.mark.parametrize("ending", ["retry", "failed", "release", "lapse"])
def test_fences_count_on_after_every_ending_but_success(broker: Broker, ending: str) -> None:
    """Whatever ends a first delivery without settling the task for good, the next delivery
    gets fence 2, and the first delivery's fence is refused from then on (on Redis a first
    delivery's fence has no entry of its own: each of these endings must write it)."""
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    assert d.fence == 1
    assert broker.get("default", "t1").deliveries == 1  # type: ignore[union-attr]
    now = T0 + 1
    if ending == "retry":
        again = Outcome("default", "t1", 1, "retry", "job", b"{}", 0, orjson.dumps({"n": 1}))
        assert broker.settle([again], now) == []
    elif ending == "failed":
        record = b'{"status":"failed"}'
        assert broker.settle([Outcome("default", "t1", 1, "failed", "job", record)], now) == []
        assert broker.dead_retry("default", ["t1"]) == 1
    elif ending == "release":
        assert broker.release([Lease("default", "t1", 1)]) == 1
    else:
        now = T0 + 10_001  # the lease lapses; the next fetch takes it back and re-leases it
    (d2,) = broker.fetch(Q, 1, now, alone=True)[0].deliveries
    assert (d2.id, d2.fence) == ("t1", 2)
    assert broker.get("default", "t1").deliveries == 2  # type: ignore[union-attr]
    late = Lease("default", "t1", 1)
    assert broker.renew([late], now).lost == [late]
    assert broker.release([late]) == 0
    stale = Outcome("default", "t1", 1, "ok", "job", b'{"status":"succeeded"}')
    assert broker.settle([stale], now) == [stale]
    ok = Outcome("default", "t1", 2, "ok", "job", b'{"status":"succeeded"}')
    assert broker.settle([ok], now) == []
    assert broker.get("default", "t1").state is None  # type: ignore[union-attr]


def test_an_outcome_listed_twice_settles_once(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    (d,) = broker.fetch(Q, 1, T0)[0].deliveries
    ok = Outcome("default", "t1", d.fence, "ok", "job", b'{"status":"succeeded"}')
    assert broker.settle([ok, ok], T0) == [ok]
    stats = broker.queue_info(["default"])[0].stats
    assert (stats["ok"], stats["stale_acks"]) == (1, 1)


def test_first_deliveries_write_no_fence(redis_url: str, prefix: str) -> None:
    """The hot path's saving: a task delivered once and settled never writes its fence
    (every per-id command on a small hash is a scan of it), while one delivered again does,
    and settling it clears the entry."""
    import redis

    b = RedisBroker(redis_url, prefix=prefix)
    r = redis.Redis.from_url(redis_url)
    fence = b.keys.queue("default").fence
    try:
        b.enqueue([item(i) for i in range(3)], T0)
        first = b.fetch(["default"], 3, T0)[0].deliveries
        assert [d.fence for d in first] == [1, 1, 1]
        assert r.exists(fence) == 0
        assert b.release([Lease("default", "t2", 1)]) == 1
        assert r.hget(fence, "t2") == b"1"
        (again,) = b.fetch(["default"], 1, T0)[0].deliveries
        assert (again.id, again.fence) == ("t2", 2)
        done = [Outcome("default", d.id, d.fence, "ok", "job", b"{}") for d in [*first[:2], again]]
        assert b.settle(done, T0) == []
        assert r.exists(fence) == 0
    finally:
        r.close()
        b.close()


# -- the poison rule and suspects (docs/delivery.md, "Poison tasks and suspects")

CRASH = "worker process 4242 died: killed by signal SIGSEGV (exit code -11)"


def test_counted_hand_back_dead_letters_at_the_cap_with_its_reason(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    now = T0
    for n in range(1, 4):
        (d,) = broker.fetch(Q, 1, now, alone=True)[0].deliveries
        assert d.fence == n
        assert broker.release([Lease("default", "t1", 99)], "crashed", CRASH, now) == 0  # fenced
        assert broker.release([d], "crashed", CRASH, now) == 1
        if n < 3:  # a suspect now: not leased to a worker that holds something
            result, _ = broker.fetch(Q, 5, now)
            assert (result.deliveries, result.suspects) == ([], 1)
        now += 1
    state = broker.get("default", "t1")
    assert state is not None
    assert state.state == "dead"
    error = orjson.loads(state.record or b"")["error"]
    assert error["type"] == "WorkerCrashed"
    assert error["message"] == f"delivered 3 times without finishing; {CRASH}"
    (dead,) = broker.dead_list("default", 0, 10)
    assert (dead.id, dead.message is not None) == ("t1", True)
    stats = broker.queue_info(["default"])[0].stats
    assert (stats["dead"], stats["released_counted"]) == (1, 3)
    # retried from the dead-letter queue, it starts again from nothing
    assert broker.dead_retry("default", ["t1"]) == 1
    (d,) = broker.fetch(Q, 1, now)[0].deliveries
    assert broker.release([d], "unexplained", "an internal error", now) == 1
    assert broker.get("default", "t1").state == "queued"  # type: ignore[union-attr]


def test_an_unknown_release_mode_is_refused(broker: Broker) -> None:
    with pytest.raises(ValueError, match="release mode"):
        broker.release([Lease("default", "t1", 1)], "oops")  # type: ignore[arg-type]


def test_suspects_are_leased_alone_and_only_to_a_worker_that_holds_nothing(
    broker: Broker,
) -> None:
    broker.enqueue([item(i) for i in range(1, 5)], T0)
    assert len(ids(broker, 4)) == 4
    now = T0 + 10_001  # the worker died: four lapsed leases, four suspects
    broker.enqueue([item(5), item(6, queue="high")], now)
    result, _ = broker.fetch(Q, 10, now)  # holds something: normal work only
    assert sorted(d.id for d in result.deliveries) == ["t5", "t6"]
    assert (result.suspects, result.suspect) == (4, False)
    seen = []
    for left in (3, 2, 1, 0):
        result, _ = broker.fetch(Q, 10, now, alone=True)
        (d,) = result.deliveries
        assert (result.suspect, result.suspects, d.fence) == (True, left, 2)
        seen.append(d.id)
        assert broker.settle([Outcome("default", d.id, d.fence, "ok", "job", b"{}")], now) == []
    assert seen == ["t1", "t2", "t3", "t4"]
    # none left: a fetch alone is a normal fetch again
    broker.enqueue([item(7), item(8)], now)
    result, _ = broker.fetch(Q, 10, now, alone=True)
    assert ([d.id for d in result.deliveries], result.suspect, result.suspects) == (
        ["t7", "t8"],
        False,
        0,
    )


def test_an_innocent_batch_mate_of_a_crasher_is_never_dead_lettered(broker: Broker) -> None:
    """A worker leases batches of 4; whenever it holds the crasher it dies (every lease it
    holds lapses). The crasher is dead-lettered at the cap; every other task succeeds."""
    broker.enqueue(
        [item(i) for i in range(1, 4)] + [item("x")] + [item(i) for i in range(4, 12)], T0
    )
    now = T0
    crashes = 0
    for _ in range(100):
        result, _ = broker.fetch(Q, 4, now, alone=True)
        if not result.deliveries:
            break
        got = {d.id for d in result.deliveries}
        if "tx" in got:
            crashes += 1
            now += 10_001  # killed: its leases lapse
            continue
        outcomes = [
            Outcome("default", d.id, d.fence, "ok", "job", b"{}") for d in result.deliveries
        ]
        assert broker.settle(outcomes, now) == []
        now += 1
    assert crashes == 3
    (dead,) = broker.dead_list("default", 0, 10)
    assert dead.id == "tx"
    assert orjson.loads(dead.error or b"")["error"]["type"] == "PoisonTask"
    info = broker.queue_info(["default"])[0]
    assert (info.ready, info.leased, info.stats["ok"], info.stats["dead"]) == (0, 0, 11, 1)


def _drop_message(broker: Broker, task_id: str) -> None:
    if isinstance(broker, MemoryBroker):
        broker._queues["default"].msg.pop(task_id)
    elif broker.url.startswith("postgresql://"):
        from taskq_core.brokers.postgres.broker import PostgresBroker

        assert isinstance(broker, PostgresBroker)
        with broker.pool().connection() as conn:
            conn.execute(
                "UPDATE taskq.tasks SET body = NULL WHERE ns = %s AND id = %s",
                (broker.ns, task_id),
            )
    else:
        assert isinstance(broker, RedisBroker)
        broker.client.hdel(broker.keys.queue("default").msg, task_id)


def test_an_id_without_a_message_is_dead_lettered_with_its_reason(broker: Broker) -> None:
    broker.enqueue([item(1), item(2)], T0)
    _drop_message(broker, "t1")
    assert ids(broker, 5) == ["t2"]
    (dead,) = broker.dead_list("default", 0, 10)
    assert (dead.id, dead.state, dead.message) == ("t1", "dead", None)
    error = orjson.loads(dead.error or b"")["error"]
    assert (error["type"], error["message"]) == ("MissingMessage", "message body missing")
    stats = broker.queue_info(["default"])[0].stats
    assert (stats["dead"], stats["orphans"]) == (1, 1)
    # it cannot run: a retry leaves it where it is, to be purged
    assert broker.dead_retry("default", ["t1"]) == 0
    assert [d.id for d in broker.dead_list("default", 0, 10)] == ["t1"]
    assert broker.dead_purge("default", ["t1"]) == 1


def test_a_queued_suspect_can_be_cancelled(broker: Broker) -> None:
    broker.enqueue([item(1)], T0)
    assert ids(broker, 1) == ["t1"]
    now = T0 + 10_001
    assert ids(broker, 0, now) == []  # the lapse makes it a suspect
    assert broker.cancel("default", "t1", b'{"status":"cancelled"}') == "cancelled"
    result, _ = broker.fetch(Q, 5, now, alone=True)
    assert (result.deliveries, result.suspects) == ([], 0)


def test_data_marker_and_server_config(broker: Broker) -> None:
    # the durability checks' storage (observability/durability.py): a marker that reads back
    # as written, beside a run id that stays the same while the server runs
    marker, run_id = broker.data_marker()
    assert marker is None
    assert run_id
    broker.put_data_marker(b'{"run_id": "x"}')
    assert broker.data_marker() == (b'{"run_id": "x"}', run_id)
    config = broker.server_config(["appendonly", "save"])
    if isinstance(broker, RedisBroker):
        assert config["appendonly"] in ("yes", "no")
        assert "save" in config
    else:
        assert config == {}

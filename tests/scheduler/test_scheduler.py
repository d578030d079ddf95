"""The scheduler against the real Redis: ticks enqueued once and never early, one task per
tick however many schedulers run, no catch-up, the heartbeat record, a prompt stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import orjson
import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.clock import ManualClock
from taskq_core.message import stored_dict
from taskq_core.scheduler import Fired, Scheduler

from .conftest import HOUR, keys_per_message


def test_tick_enqueues_each_due_schedule_once_and_nothing_early(
    sched_app: TaskQueue, clock: ManualClock, redis_client: redis.Redis, prefix: str
) -> None:
    minute = sched_app.schedule("report", every=60)
    five = sched_app.schedule("add", cron="*/5 * * * *", args=(2, 3))
    s = Scheduler(sched_app, grace=600)
    assert s.tick(clock.time()) == []  # started 1 s past the hour: nothing due yet
    clock.now = HOUR + 59.999
    assert s.tick(clock.time()) == []
    clock.now = HOUR + 60
    fired = s.tick(clock.time())
    assert [(f.schedule, f.tick_ms, f.created) for f in fired] == [
        (minute.name, int((HOUR + 60) * 1000), True)
    ]
    assert s.tick(clock.time()) == []  # handled: not again
    clock.now = HOUR + 300.5
    fired = s.tick(clock.time())
    # every minute since the last one handled (a late wake-up still enqueues them), and
    # the five-minute cron once
    assert sorted((f.schedule, f.tick_ms) for f in fired) == sorted(
        [(minute.name, int((HOUR + m * 60) * 1000)) for m in (2, 3, 4, 5)]
        + [(five.name, int((HOUR + 300) * 1000))]
    )
    assert all(f.created for f in fired)
    per_key = keys_per_message(redis_client, prefix)
    assert sorted(per_key.values()) == [1] * 5
    assert per_key[minute.dedup_key(int((HOUR + 60) * 1000))] == 1
    low = keys_per_message(redis_client, prefix, "low")
    assert low == {five.dedup_key(int((HOUR + 300) * 1000)): 1}
    task_id = next(f.task_id for f in fired if f.schedule == five.name)
    assert sched_app.handle(task_id, "low").status() == "queued"
    message = stored_dict(redis_client.hget(f"{prefix}:{{low}}:msg", task_id), task_id, "low")
    assert (message["task"], message["args"]) == ("add", [2, 3])
    assert s.next_runs() == {
        minute.name: int((HOUR + 360) * 1000),
        five.name: int((HOUR + 600) * 1000),
    }


def test_no_catch_up_of_ticks_from_before_the_start_or_older_than_grace(
    sched_app: TaskQueue, clock: ManualClock, redis_client: redis.Redis, prefix: str
) -> None:
    sched = sched_app.schedule("report", every=10)
    clock.now = HOUR + 95  # ticks at +0 .. +90 passed while no scheduler ran
    s = Scheduler(sched_app, grace=30)
    assert s.tick(clock.time()) == []
    assert s.next_runs() == {sched.name: int((HOUR + 100) * 1000)}
    clock.now = HOUR + 200  # a suspended host: +100 .. +160 are older than the grace
    fired = s.tick(clock.time())
    assert [f.tick_ms // 1000 - int(HOUR) for f in fired] == [170, 180, 190, 200]
    assert s.missed == 7
    assert sum(keys_per_message(redis_client, prefix).values()) == 4


def test_two_schedulers_ticking_together_make_one_task_per_tick(
    sched_app: TaskQueue,
    make_app: Callable[..., TaskQueue],
    clock: ManualClock,
    redis_client: redis.Redis,
    prefix: str,
) -> None:
    other = make_app("redis")
    other.clock = clock
    other.task(name="report")(lambda: "done")
    a_sched = sched_app.schedule("report", every=60)
    other.schedule("report", every=60)
    a, b = Scheduler(sched_app), Scheduler(other)
    a.tick(clock.time())
    b.tick(clock.time())
    clock.now = HOUR + 120
    fa, fb = a.tick(clock.time()), b.tick(clock.time())
    assert [f.created for f in fa] == [True, True]
    assert [f.created for f in fb] == [False, False]
    assert [f.task_id for f in fa] == [f.task_id for f in fb]  # the first enqueue's ids
    per_key = keys_per_message(redis_client, prefix)
    assert per_key == {a_sched.dedup_key(int((HOUR + m) * 1000)): 1 for m in (60, 120)}


class Recording(Scheduler):
    """Keeps everything its loop fired."""

    def __init__(self, app: TaskQueue, **options: float) -> None:
        super().__init__(app, **options)  # type: ignore[arg-type]
        self.fired: list[Fired] = []

    async def tick_async(self, now: float) -> list[Fired]:
        fired = await super().tick_async(now)
        self.fired.extend(fired)
        return fired


def test_concurrent_schedulers_enqueue_each_tick_exactly_once(
    make_app: Callable[..., TaskQueue], redis_client: redis.Redis, prefix: str
) -> None:
    apps = [make_app("redis"), make_app("redis")]  # as two processes would have
    for tq in apps:
        tq.task(name="report")(lambda: "done")
        tq.schedule("report", every=0.2, name="fast")
    scheds = [Recording(tq) for tq in apps]
    threads = [threading.Thread(target=s.run) for s in scheds]
    start = time.time()
    for t in threads:
        t.start()
    time.sleep(1.5)
    for s in scheds:
        s.stop()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    per_key = keys_per_message(redis_client, prefix)
    ticks = sorted(int(k.rsplit(":", 1)[1]) for k in per_key)
    assert set(per_key.values()) == {1}, per_key  # never two tasks for one tick
    assert 5 <= len(ticks) <= 9, ticks
    # consecutive 200 ms ticks from the start: none lost
    assert ticks == list(range(ticks[0], ticks[-1] + 1, 200))
    # the first tick is the first one due after the earlier scheduler started (its
    # thread starts some ms after this test's clock reading)
    first_start = min(s.started_at or 0.0 for s in scheds)
    assert start <= first_start
    assert ticks[0] <= first_start * 1000 + 205
    # both schedulers enqueued every tick; each tick was made by exactly one of them
    tried = [sorted(f.tick_ms for f in s.fired) for s in scheds]
    made = sorted(f.tick_ms for s in scheds for f in s.fired if f.created)
    assert made == ticks
    assert all(set(t) <= set(ticks) for t in tried)
    assert len(tried[0]) + len(tried[1]) > len(ticks)  # they really did overlap


def test_heartbeat_record_and_prompt_stop(
    make_app: Callable[..., TaskQueue], redis_client: redis.Redis, prefix: str
) -> None:
    tq = make_app("redis")
    tq.task(name="report")(lambda: "done")
    tq.schedule("report", every=3600, name="hourly")
    s = Scheduler(tq, heartbeat_interval=2.0)

    async def main() -> tuple[dict[str, object], int, float]:
        run = asyncio.create_task(s.async_run())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if redis_client.exists(f"{prefix}:scheduler:{s.id}"):
                break
        record = orjson.loads(redis_client.get(f"{prefix}:scheduler:{s.id}") or b"{}")
        ttl = int(redis_client.pttl(f"{prefix}:scheduler:{s.id}"))
        started = time.perf_counter()
        s.stop()  # the loop sleeps until the next hour: stop must wake it
        await asyncio.wait_for(run, 2)
        took = time.perf_counter() - started
        await tq.broker.aclose()  # this loop's connections
        return record, ttl, took

    record, ttl, took = asyncio.run(main())
    assert took < 0.5
    assert 4000 < ttl <= 6000  # three heartbeat intervals
    assert record["id"] == s.id
    schedules = record["schedules"]
    assert isinstance(schedules, list)
    assert schedules[0]["name"] == "hourly"
    next_run = schedules[0]["next_run_at"]
    assert next_run % 3_600_000 == 0
    assert 0 < next_run - time.time() * 1000 <= 3_600_000
    # a clean stop removes the record and its index entry
    assert not redis_client.exists(f"{prefix}:scheduler:{s.id}")
    assert redis_client.zscore(f"{prefix}:schedulers", s.id) is None


def test_a_failed_enqueue_leaves_its_ticks_pending(
    sched_app: TaskQueue,
    clock: ManualClock,
    redis_client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sched = sched_app.schedule("report", every=60)
    s = Scheduler(sched_app)
    s.tick(clock.time())
    clock.now = HOUR + 60

    def down(*_: object) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(sched_app, "enqueue_many", down)
    with pytest.raises(redis.ConnectionError):
        s.tick(clock.time())
    monkeypatch.undo()
    clock.now = HOUR + 61  # the retry, a second later: the same tick, once
    assert [f.tick_ms for f in s.tick(clock.time())] == [int((HOUR + 60) * 1000)]
    assert keys_per_message(redis_client, prefix) == {sched.dedup_key(int((HOUR + 60) * 1000)): 1}

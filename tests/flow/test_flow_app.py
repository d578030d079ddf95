"""Flow control through the application: declarations checked when made, key functions run
at enqueue (only their strings travel), unique handles, expiry recorded, on both brokers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis

from taskq_core import ManualClock, TaskQueue
from taskq_core.errors import InvalidOption
from taskq_core.keys import Keys

START = 1_800_000_000.0


def burst(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"rate_limit": "100/x"}, "rate_limit must be N/s, N/m, N/h or N/d"),
        ({"rate_limit": "0/s"}, "rate_limit must allow 1 to"),
        ({"rate_limit": "-5/s"}, "rate_limit must be N/s"),
        ({"rate_limit": "10/0s"}, "rate_limit's period must be at least 1"),
        ({"rate_limit": 100}, "rate_limit must be a string"),
        ({"rate_limit": "10/s", "rate_burst": 0}, "rate_burst must be an integer from 1"),
        ({"rate_limit": "10/s", "rate_burst": 11}, "rate_burst must be an integer from 1"),
        ({"rate_key": lambda: "k"}, "rate_burst and rate_key need a rate_limit"),
        ({"rate_limit": "1/s", "rate_key": "acct"}, "rate_key must be a function"),
        ({"max_concurrency": 0}, "max_concurrency must be 1 to"),
        ({"max_concurrency": -1}, "max_concurrency must be 1 to"),
        ({"max_concurrency": True}, "max_concurrency must be an integer"),
        ({"max_concurrency": 2.5}, "max_concurrency must be an integer"),
        ({"concurrency_key": lambda: "k"}, "concurrency_key needs max_concurrency"),
        ({"expires": 0}, "expires must be a finite number of seconds > 0"),
        ({"expires": -3}, "expires must be a finite number of seconds > 0"),
        ({"expires": float("nan")}, "expires must be a finite number"),
        ({"expires": "soon"}, "expires must be seconds"),
        ({"unique_for": 10}, "unique_for and unique_until need unique=True"),
        ({"unique": True, "unique_until": "never"}, "unique_until must be 'started' or"),
        ({"unique": "yes"}, "unique must be True or False"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    tq = TaskQueue("memory://")
    with pytest.raises(InvalidOption, match=named.replace("(", r"\(")):
        tq.task(**options)(lambda: None)
    assert tq.registry == {}


def test_limit_queue_checks_its_options() -> None:
    tq = TaskQueue("memory://")
    with pytest.raises(InvalidOption, match="limit_queue needs rate_limit or max_concurrency"):
        tq.limit_queue("default")
    with pytest.raises(InvalidOption, match="rate_limit must be N/s"):
        tq.limit_queue("default", rate_limit="5/fortnight")
    with pytest.raises(InvalidOption, match="max_concurrency must be 1 to"):
        tq.limit_queue("default", max_concurrency=0)


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (lambda account, **_: 1 / 0, "rate_key of task 'job' raised ZeroDivisionError"),
        (lambda account, **_: 42, "rate_key of task 'job' must return a string, got int"),
        (lambda account, **_: "", "rate_key of task 'job' must return 1 to 200 printable"),
        (lambda account, **_: "a\nb", "must return 1 to 200 printable"),
        (lambda account, **_: "x" * 201, "must return 1 to 200 printable"),
    ],
)
def test_a_key_function_that_fails_refuses_the_enqueue_and_writes_nothing(
    make_app: Callable[..., TaskQueue], broker_kind: str, key: Any, named: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(name="job", rate_limit="10/s", rate_key=key)
    def job(account: str) -> None: ...

    with pytest.raises(InvalidOption, match=named):
        job.enqueue("acme")
    # a batch with one bad task writes none of it
    with pytest.raises(InvalidOption, match=named):
        tq.enqueue_many([tq.registry["job"].call("ok")] * 0 + [job.call("acme")])
    (info,) = tq.broker.queue_info(["default"])
    assert info.ready == 0
    assert info.stats.get("enqueued", 0) == 0


def test_only_the_key_travels_not_the_function(
    make_app: Callable[..., TaskQueue], redis_client: redis.Redis, prefix: str
) -> None:
    tq = make_app("redis")

    @tq.task(name="sync_account", max_concurrency=1, concurrency_key=lambda acct, **_: acct)
    def sync_account(acct: str, full: bool = False) -> None: ...

    handle = sync_account.enqueue("acme", full=True)
    gate = redis_client.hget(Keys(prefix).queue("default").gate, handle.id)
    assert orjson.loads(gate or b"") == {"c": [[1, "t:sync_account|acme"]]}


def test_an_expiry_in_the_past_is_refused_at_enqueue(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")

    @tq.task
    def job() -> None: ...

    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(InvalidOption, match="expires is in the past"):
        job.options(expires=past).enqueue()
    with pytest.raises(InvalidOption, match="expires must be timezone-aware"):
        job.options(expires=datetime(2030, 1, 1))
    with pytest.raises(InvalidOption, match="expires must be a finite number of seconds > 0"):
        job.options(expires=-1)


def test_an_expired_task_is_not_run_and_is_recorded_as_expired(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(broker_kind, clock=clock)
    runs: list[str] = []

    @tq.task(expires=30)
    def report(name: str) -> None:
        runs.append(name)

    late = report.enqueue("late")
    fresh = report.options(expires=timedelta(hours=1)).enqueue("fresh")
    clock.advance(31)
    burst(tq)
    assert runs == ["fresh"]
    info = late.info()
    assert info["status"] == "expired"
    assert fresh.info()["status"] == "succeeded"
    (q,) = tq.broker.queue_info(["default"])
    assert q.stats["expired"] == 1
    assert q.dead == 0


def test_an_expired_task_can_go_to_the_dead_letter_queue(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(broker_kind, clock=clock)

    @tq.task(expires=5, expired_to_dead_letter=True)
    def job() -> None:
        raise AssertionError("an expired task must not run")

    handle = job.enqueue()
    clock.advance(6)
    burst(tq)
    (dead,) = tq.broker.dead_list("default", 0, 10)
    assert dead.id == handle.id
    assert orjson.loads(dead.error or b"{}")["error"]["type"] == "TaskExpired"


def test_a_unique_task_returns_the_existing_handle_and_says_so(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(unique=True)
    def rebuild(index: str, full: bool = False) -> str:
        return index

    first = rebuild.enqueue("products", full=True)
    again = rebuild.enqueue("products", full=True)
    other = rebuild.enqueue("orders")
    assert again.id == first.id
    assert again.existing
    assert not first.existing
    assert other.id != first.id
    assert not other.existing
    burst(tq)
    assert first.info()["status"] == "succeeded"
    # finished: a new one is queued
    third = rebuild.enqueue("products", full=True)
    assert third.id != first.id
    assert not third.existing


def test_a_unique_key_function_and_window(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(broker_kind, clock=clock)

    @tq.task(unique_key=lambda user, *_: user, unique_for=60, unique_until="started")
    def email(user: str, body: str) -> None: ...

    first = email.enqueue("u1", "hello")
    assert email.enqueue("u1", "hello again").id == first.id
    clock.advance(61)
    assert email.enqueue("u1", "a minute later").id != first.id


def test_queue_limits_travel_with_every_enqueue(
    make_app: Callable[..., TaskQueue], redis_client: redis.Redis, prefix: str
) -> None:
    tq = make_app("redis")
    tq.limit_queue("mail", rate_limit="5/s", max_concurrency=2)

    @tq.task(queue="mail")
    def send() -> None: ...

    handle = send.enqueue()
    gate = redis_client.hget(Keys(prefix).queue("mail").gate, handle.id)
    assert orjson.loads(gate or b"") == {"r": [[5, 1000, 1, "q:mail"]], "c": [[2, "q:mail"]]}


def test_a_task_without_flow_options_stores_no_gate(
    make_app: Callable[..., TaskQueue], redis_client: redis.Redis, prefix: str
) -> None:
    tq = make_app("redis")

    @tq.task
    def plain() -> None: ...

    plain.enqueue()
    tq.enqueue_many([plain.call(), plain.call()])
    assert redis_client.hlen(Keys(prefix).queue("default").msg) == 3
    assert not redis_client.exists(Keys(prefix).queue("default").gate)

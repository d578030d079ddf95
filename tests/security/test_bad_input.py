"""Bad input gets a clear error naming the problem, raised before anything is written: each
test checks the error type, its message, and that Redis holds no key of the test's prefix."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

from taskq_core import (
    InvalidName,
    InvalidOption,
    NotJSONSerializable,
    PayloadTooLarge,
    Retry,
    TaskQueue,
    UnknownTask,
)
from taskq_core.task import Task
from tests.conftest import prefix_keys


@pytest.fixture
def tq(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    return make_app("redis", max_payload_bytes=4096)


@pytest.fixture
def job(tq: TaskQueue) -> Task[..., Any]:
    @tq.task(name="billing.charge")
    def charge(*args: Any, **kwargs: Any) -> None:
        return None

    return charge


@pytest.fixture(autouse=True)
def nothing_written(redis_client: redis.Redis, prefix: str) -> Iterator[None]:
    assert prefix_keys(redis_client, prefix) == set()
    yield
    assert prefix_keys(redis_client, prefix) == set(), "a refused enqueue wrote to Redis"


def test_unknown_task_name(tq: TaskQueue, job: Task[..., Any]) -> None:
    with pytest.raises(UnknownTask, match=r"no task named 'billing\.refund' is registered"):
        tq.enqueue("billing.refund")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("send email", "may only use letters"),
        ("send/email", "may only use letters"),
        ("", "must be 1 to 200 characters"),
        ("x" * 201, "must be 1 to 200 characters"),
    ],
)
def test_bad_task_names(tq: TaskQueue, name: str, problem: str) -> None:
    with pytest.raises(InvalidName, match=problem):
        tq.task(name=name)(lambda: None)


@pytest.mark.parametrize(
    ("queue", "problem"),
    [
        ("", "must be 1 to 64 characters"),
        ("q" * 65, "must be 1 to 64 characters"),
        ("emails*", "may only use letters"),
        ("{slot}", "may only use letters"),
        ("a b", "may only use letters"),
        ("news[0]", "may only use letters"),
    ],
)
def test_bad_queue_names(tq: TaskQueue, job: Task[..., Any], queue: str, problem: str) -> None:
    with pytest.raises(InvalidName, match=problem):
        job.options(queue=queue).enqueue()
    with pytest.raises(InvalidName, match=problem):
        tq.task(queue=queue)(lambda: None)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({1, 2},), {}, r"args\[0\] is a set"),
        ((1, {"when": b"today"}), {}, r'args\[1\]\["when"\] is a bytes'),
        ((), {"when": datetime(2030, 1, 1)}, r'kwargs\["when"\] is a datetime'),
        ((object(),), {}, r"args\[0\] is a object"),
        (([1, [2, {3}]],), {}, r"args\[0\]\[1\]\[1\] is a set"),
        (({1: "x"},), {}, r"args\[0\] has a key 1 of type int"),
    ],
)
def test_arguments_that_are_not_json(
    job: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(NotJSONSerializable, match=message):
        job.enqueue(*args, **kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities(job: Task[..., Any], bad: float) -> None:
    with pytest.raises(NotJSONSerializable, match=r'kwargs\["amount"\] is .*JSON has no NaN'):
        job.enqueue(amount=bad)


def test_nesting_deeper_than_64(job: Task[..., Any]) -> None:
    deep: Any = "bottom"
    for _ in range(70):
        deep = [deep]
    with pytest.raises(NotJSONSerializable, match="nested deeper than 64 levels"):
        job.enqueue(deep)
    ok: Any = "bottom"
    for _ in range(60):
        ok = [ok]
    # 60 levels are fine: checked without writing (the handle is not needed)
    job.app._items([job.call(ok)])


def test_payload_over_the_limit(job: Task[..., Any]) -> None:
    with pytest.raises(PayloadTooLarge, match=r"billing\.charge.* over the limit of 4096"):
        job.enqueue("x" * 5000)


def test_bulk_enqueue_is_all_or_nothing(tq: TaskQueue, job: Task[..., Any]) -> None:
    with pytest.raises(NotJSONSerializable, match=r"args\[0\] is a set"):
        tq.enqueue_many([job.call(1), job.call(2), job.call({3})])


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (-1, "delay must be a finite number of seconds >= 0"),
        (math.nan, "delay must be a finite number of seconds >= 0"),
        (math.inf, "delay must be a finite number of seconds >= 0"),
        (timedelta(seconds=-5), "delay must be a finite number of seconds >= 0"),
        ("30", "delay must be seconds or a timedelta, got str"),
    ],
)
def test_bad_delays(job: Task[..., Any], delay: Any, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        job.options(delay=delay).enqueue()


@pytest.mark.parametrize(
    "delay", [1e300, 365 * 86_400 + 1, timedelta(days=400), 99_999_999 * 86_400]
)
def test_delays_past_the_horizon(job: Task[..., Any], delay: Any) -> None:
    # (1e300 was finite, so it was accepted and made a due time no clock can show)
    with pytest.raises(InvalidOption, match=r"delay must be at most 365 days \(31536000 s\)"):
        job.options(delay=delay).enqueue()


def test_eta_past_the_horizon(tq: TaskQueue, job: Task[..., Any]) -> None:
    eta = datetime.fromtimestamp(tq.clock.time()).astimezone() + timedelta(days=366)
    with pytest.raises(InvalidOption, match="eta must be at most 365 days ahead, got 366 days"):
        job.options(eta=eta).enqueue()
    # a bulk enqueue with one such task writes none of them
    with pytest.raises(InvalidOption, match="eta must be at most 365 days ahead"):
        tq.enqueue_many([job.call(1), job.options(eta=eta).call(2)])


def test_retry_delay_past_the_horizon() -> None:
    with pytest.raises(InvalidOption, match=r"at most 365 days, got 1e\+300"):
        Retry(delay=1e300)


def test_naive_eta(job: Task[..., Any]) -> None:
    with pytest.raises(InvalidOption, match="eta must be timezone-aware"):
        job.options(eta=datetime(2030, 1, 1, 12, 0)).enqueue()


def test_delay_and_eta_together(job: Task[..., Any]) -> None:
    with pytest.raises(InvalidOption, match="either delay or eta"):
        job.options(delay=5, eta=datetime(2030, 1, 1).astimezone()).enqueue()


@pytest.mark.parametrize("retries", [-1, 1.5, "3", True])
def test_bad_retries(tq: TaskQueue, job: Task[..., Any], retries: Any) -> None:
    with pytest.raises(InvalidOption, match="max_retries must be an integer >= 0"):
        tq.task(max_retries=retries)(lambda: None)
    with pytest.raises(InvalidOption, match="max_retries must be an integer >= 0"):
        job.options(max_retries=retries).enqueue()


@pytest.mark.parametrize("timeout", [0, -3, math.nan, math.inf])
def test_bad_timeouts(tq: TaskQueue, job: Task[..., Any], timeout: float) -> None:
    with pytest.raises(InvalidOption, match="timeout must be a finite number of seconds > 0"):
        tq.task(timeout=timeout)(lambda: None)
    with pytest.raises(InvalidOption, match="timeout must be a finite number of seconds > 0"):
        job.options(timeout=timeout).enqueue()


@pytest.mark.parametrize("delay", [-1, math.nan])
def test_bad_retry_delay(delay: float) -> None:
    with pytest.raises(InvalidOption, match=r"Retry\(delay=...\) must be a finite number >= 0"):
        Retry(delay=delay)


def test_duplicate_task_name(tq: TaskQueue, job: Task[..., Any]) -> None:
    from taskq_core import DuplicateTask

    with pytest.raises(DuplicateTask, match=r"'billing\.charge' is already registered"):
        tq.task(name="billing.charge")(lambda: None)


async def test_async_enqueue_checks_the_same(job: Task[..., Any]) -> None:
    with pytest.raises(NotJSONSerializable, match=r"args\[0\] is a set"):
        await job.enqueue_async({1})
    with pytest.raises(InvalidOption, match="eta must be timezone-aware"):
        await job.options(eta=datetime(2030, 1, 1)).enqueue_async()

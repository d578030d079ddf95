"""Each feature of the pytest plugin, run as a user's test suite would run it."""

from __future__ import annotations

import pytest

from .conftest import dedent, ini

FEATURES = """
import pytest
import shop
from shop import boom, chain, double, flaky, send_email, signup
from taskq_core.testing import (
    Ran, TestBroker, assert_enqueued, assert_not_enqueued, eager, enqueued,
)


def test_isolates_the_users_app(taskq_app):
    assert taskq_app is shop.tq
    assert isinstance(taskq_app.broker, TestBroker)
    assert taskq_app.settings.key_prefix.startswith("taskq-test-")


def test_assertions(taskq_app):
    signup("ada@example.com")
    found = assert_enqueued(
        send_email, args=("ada@example.com",), kwargs={"subject": "welcome"},
        queue="mail", count=1,
    )
    assert found[0].queue == "mail" and found[0].eta is None
    assert_enqueued("shop.send_email")
    assert_not_enqueued(flaky)
    assert_not_enqueued(send_email, args=("bob@example.com",))
    assert [(e.name, e.args, e.kwargs) for e in enqueued()] == [
        ("shop.send_email", ("ada@example.com",), {"subject": "welcome"})
    ]


def test_fails_listing_what_was_enqueued(taskq_app):
    signup("ada@example.com")
    assert_enqueued(send_email, args=("bob@example.com",))


def test_fails_on_count(taskq_app):
    signup("ada@example.com")
    signup("bob@example.com")
    assert_enqueued(send_email, count=1)


def test_fails_when_enqueued(taskq_app):
    signup("ada@example.com")
    assert_not_enqueued(send_email, queue="mail")


def test_fails_when_nothing_was_enqueued(taskq_app):
    assert_enqueued(send_email)


def test_delay_waits_for_the_clock(taskq_app, taskq_worker, taskq_clock):
    handle = send_email.options(delay=3600).enqueue("ada@example.com")
    (e,) = enqueued()
    assert e.eta is not None
    assert e.eta.timestamp() == taskq_clock.now + 3600
    assert taskq_worker.drain() == []
    taskq_clock.advance(minutes=59)
    assert taskq_worker.drain() == []
    taskq_clock.advance(minutes=1)
    ran = taskq_worker.drain()
    assert [(r.name, r.outcome, r.result) for r in ran] == [
        ("shop.send_email", "ok", "sent ada@example.com")
    ]
    assert handle.result(timeout=1) == "sent ada@example.com"


def test_retry_backoff_waits_for_the_clock(taskq_app, taskq_worker, taskq_clock):
    flaky.enqueue()
    (first,) = taskq_worker.drain()
    assert first.outcome == "retry"
    assert first.error["type"] == "ConnectionError"
    assert taskq_worker.drain() == []
    taskq_clock.advance(hours=1)
    assert [r.outcome for r in taskq_worker.drain()] == ["ok"]


def test_tasks_enqueued_by_tasks_run_in_the_same_drain(taskq_app, taskq_worker):
    chain.enqueue(7)
    assert [r.name for r in taskq_worker.drain()] == ["shop.chain", "shop.send_email"]


def test_failures_are_reported_not_raised(taskq_app, taskq_worker):
    boom.enqueue()
    (ran,) = taskq_worker.drain()
    assert not ran.ok
    assert ran.outcome in ("retry", "failed")
    assert ran.error["message"] == "boom"


def test_schedules_follow_the_clock(taskq_app, taskq_worker, taskq_clock):
    # the clock starts at 1_900_000_000 (conftest): ticks of every 600 s at +200, +800, ...
    taskq_app.schedule(send_email, every=600, args=("tick@example.com",))
    assert taskq_worker.drain() == []
    taskq_clock.advance(minutes=30)
    assert [r.result for r in taskq_worker.drain()] == ["sent tick@example.com"] * 3


async def test_drain_async(taskq_app, taskq_worker):
    await double.enqueue_async(21)
    ran = await taskq_worker.drain_async()
    assert [r.result for r in ran] == [42]


async def test_drain_refuses_to_block_a_running_loop(taskq_app, taskq_worker):
    with pytest.raises(RuntimeError, match="drain_async"):
        taskq_worker.drain()


def test_eager_runs_inline(taskq_eager):
    handle = send_email.enqueue("ada@example.com")
    assert handle.result() == "sent ada@example.com"
    assert handle.status() == "succeeded"
    assert chain.enqueue(3).result() == 3
    assert_enqueued(send_email, args=("3@example.com",))
    assert double.enqueue(5).result() == 10


def test_eager_exceptions_propagate(taskq_eager):
    with pytest.raises(ValueError, match="boom"):
        boom.enqueue()


async def test_eager_async(taskq_eager):
    handle = await double.enqueue_async(4)
    assert await handle.result_async() == 8
    assert double.enqueue(6).result() == 12  # blocking enqueue inside a running loop
    assert (await send_email.enqueue_async("x@example.com")).result() == "sent x@example.com"


def test_eager_context(taskq_app):
    with eager():
        assert send_email.enqueue("a@example.com").status() == "succeeded"
    assert send_email.enqueue("b@example.com").status() == "queued"
    assert len(enqueued(send_email)) == 2


def test_zz_the_users_app_is_put_back():
    assert type(shop.tq.broker).__name__ == "MemoryBroker"
    assert shop.tq.settings.key_prefix == "taskq"
"""

CONFTEST = """
import pytest
from taskq_core.testing import TestClock


@pytest.fixture
def taskq_clock():
    return TestClock(start=1_900_000_000.0)
"""


def test_features(shop: pytest.Pytester) -> None:
    shop.makeini(ini(taskq_plugin="true", taskq_app="shop:tq"))
    shop.makeconftest(dedent(CONFTEST))
    shop.makepyfile(test_features=dedent(FEATURES))
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=14, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*expected shop.send_email('bob@example.com') to be enqueued at least once, "
            "found 0 times",
            "*enqueued (1):",
            "*1. shop.send_email('ada@example.com', subject='welcome') queue='mail' id=*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*expected shop.send_email(...) to be enqueued once, found 2 times",
            "*enqueued (2):",
            "*1. shop.send_email('ada@example.com', subject='welcome')*",
            "*2. shop.send_email('bob@example.com', subject='welcome')*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*expected shop.send_email(...) on queue 'mail' not to be enqueued, found once"]
    )
    result.stdout.fnmatch_lines(
        [
            "*expected shop.send_email(...) to be enqueued at least once, found 0 times",
            "*nothing was enqueued",
        ]
    )
    failed = {
        line.split("::")[1].split(" ")[0]
        for line in result.stdout.lines
        if line.startswith("FAILED")
    }
    assert failed == {
        "test_fails_listing_what_was_enqueued",
        "test_fails_on_count",
        "test_fails_when_enqueued",
        "test_fails_when_nothing_was_enqueued",
    }

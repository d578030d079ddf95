"""Django 6's ``django.tasks`` with taskq as its backend (skipped on Django 5.2)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("django.tasks")

from django.db import transaction
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

from taskq_core import ManualClock, TaskQueue
from taskq_django.backend import task_name
from taskq_django.conf import get_taskqueue
from taskq_django.middleware import TransactionScope
from tests.integrations.django.testapp import djtasks

Configure = Callable[..., TaskQueue]


def drain(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False, concurrency=2).run()


def status_of(result: TaskResult[..., Any]) -> TaskResultStatus:
    """``result.status`` read through a call: mypy would keep an attribute asserted before
    ``refresh()`` narrowed after it, though refresh() is what changes it."""
    return result.status


def test_enqueue_run_and_read_the_result(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    result = djtasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2, 3]
    waiting = djtasks.add.get_result(result.id)
    assert waiting.status == TaskResultStatus.READY
    assert waiting.args == [2, 3]
    assert waiting.enqueued_at is not None
    assert waiting.enqueued_at.tzinfo is not None
    assert tq.handle(result.id, "high").status() == "queued"  # queue_name is taskq's queue
    drain(tq)
    result.refresh()
    assert status_of(result) == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1
    assert result.started_at is not None
    assert result.finished_at is not None
    assert waiting.enqueued_at <= result.started_at <= result.finished_at


def test_a_failed_task_reports_its_error(configure_taskq: Configure) -> None:
    tq = configure_taskq(tq_options={"retry": {"max_retries": 0}})
    result = djtasks.fail.enqueue()
    drain(tq)
    got = djtasks.fail.get_result(result.id)
    assert got.status == TaskResultStatus.FAILED
    assert got.errors[0].exception_class is ValueError
    assert "the card was declined" in got.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = got.return_value


def test_context_and_async_tasks(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    ctx = djtasks.attempt.enqueue(7)
    coro = djtasks.double.enqueue(21)
    drain(tq)
    ctx.refresh()
    coro.refresh()
    assert ctx.return_value == {"attempt": 1, "id": ctx.id, "x": 7}
    # django-stubs types an async task's return value as the coroutine; Django awaits it
    assert coro.return_value == 42  # type: ignore[comparison-overlap]


def test_run_after_delays_the_task(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    later = datetime.now(UTC) + timedelta(hours=1)
    result = djtasks.add.using(run_after=later).enqueue(1, 1)
    drain(tq)
    assert djtasks.add.get_result(result.id).status == TaskResultStatus.READY
    assert tq.handle(result.id, "high").status() == "scheduled"


def test_priorities_are_refused_and_unknown_ids_do_not_exist(configure_taskq: Configure) -> None:
    configure_taskq()
    with pytest.raises(InvalidTask, match="priority"):
        djtasks.add.using(priority=10)
    with pytest.raises(TaskResultDoesNotExist):
        djtasks.add.get_result("no-such-id")


def test_every_taskqueue_knows_the_django_tasks(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    assert task_name(djtasks.add) in get_taskqueue().registry
    assert {task_name(t) for t in (djtasks.add, djtasks.fail, djtasks.double)} <= set(tq.registry)


def test_enqueue_in_a_transaction_waits_for_the_commit(configure_taskq: Configure, db: str) -> None:
    tq = configure_taskq(DEFER_ENQUEUE=True)
    with TransactionScope(tq, {}, defer=True), transaction.atomic():
        result = djtasks.add.enqueue(1, 2)
        assert tq.handle(result.id, "high").status() == "unknown"
    assert tq.handle(result.id, "high").status() == "queued"


# -- the documented TaskResult contract, field by field

FIELDS = (
    "task", "id", "status", "enqueued_at", "started_at", "finished_at", "last_attempted_at",
    "args", "kwargs", "backend", "errors", "worker_ids",
)  # fmt: skip


def test_a_finished_task_keeps_every_field(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    result = djtasks.add.enqueue(2, b=3)
    drain(tq)
    got = djtasks.add.get_result(result.id)
    assert {f: getattr(got, f) is not None for f in FIELDS} == dict.fromkeys(FIELDS, True)
    assert got.task.module_path == djtasks.add.module_path
    assert got.id == result.id
    assert got.status == TaskResultStatus.SUCCESSFUL
    # the message is gone once the task is done: the arguments were kept beside it
    assert got.args == [2]
    assert got.kwargs == {"b": 3}
    assert got.backend == "default"
    assert got.errors == []
    assert len(got.worker_ids) == got.attempts == 1
    assert got.started_at == got.last_attempted_at
    assert got.return_value == 5


def test_an_attempt_is_dated_once_by_the_workers_clock(configure_taskq: Configure) -> None:
    """started_at (the worker's record) and last_attempted_at (taskq_django's) of a first
    attempt are one reading of the app's clock, not two (they differed by a millisecond)."""
    clock = ManualClock(time.time() - 3600)
    tq = configure_taskq({"clock": clock})
    result = djtasks.add.enqueue(2, b=3)
    drain(tq)
    got = djtasks.add.get_result(result.id)
    assert got.status == TaskResultStatus.SUCCESSFUL
    assert got.started_at is not None
    assert got.started_at == got.last_attempted_at
    assert abs(got.started_at.timestamp() - clock.time()) < 1


def test_a_pending_retry_shows_the_failed_attempt(configure_taskq: Configure) -> None:
    tq = configure_taskq(tq_options={"retry": {"max_retries": 2, "backoff": 3600}})
    result = djtasks.fail.enqueue()
    drain(tq)
    waiting = djtasks.fail.get_result(result.id)
    assert waiting.status == TaskResultStatus.READY  # waiting for its retry
    assert waiting.attempts == 1
    assert len(waiting.errors) == 1
    assert waiting.errors[0].exception_class is ValueError
    assert waiting.last_attempted_at is not None
    assert len(waiting.worker_ids) == 1


def test_each_attempt_has_its_worker_and_its_error(configure_taskq: Configure) -> None:
    tq = configure_taskq(tq_options={"retry": {"max_retries": 1, "backoff": 0.3, "jitter": 0}})
    result = djtasks.fail.enqueue()
    drain(tq)  # a burst worker stops before the retry is due (0.3 s): the next one runs it
    time.sleep(0.4)
    drain(tq)
    got = djtasks.fail.get_result(result.id)
    assert got.status == TaskResultStatus.FAILED
    assert got.attempts == len(set(got.worker_ids)) == 2  # not the last worker twice
    assert [e.exception_class for e in got.errors] == [ValueError, ValueError]


async def test_aenqueue_returns_a_result_like_enqueue(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    try:
        result = await djtasks.add.aenqueue(4, 5)
        assert result.status == TaskResultStatus.READY
        assert (result.args, result.kwargs, result.backend) == ([4, 5], {}, "default")
        await asyncio.to_thread(drain, tq)
        got = await djtasks.add.aget_result(result.id)
        assert got.status == TaskResultStatus.SUCCESSFUL
        assert got.return_value == 9
        assert got.args == [4, 5]
    finally:
        await tq.aclose()  # the async connections belong to this test's loop


@pytest.mark.parametrize("queue", ["bad queue", "x" * 65, "né"])
def test_a_bad_queue_name_is_djangos_invalid_task(configure_taskq: Configure, queue: str) -> None:
    configure_taskq()
    with pytest.raises(InvalidTask, match="queue name"):
        djtasks.add.using(queue_name=queue)


GET_RESULT = """
import json, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["taskq_django"],
    TASKQ={"BROKER_URL": sys.argv[1], "KEY_PREFIX": sys.argv[2]},
    TASKS={"default": {"BACKEND": "taskq_django.backend.TaskqBackend"}},
    USE_TZ=True,
)
django.setup()
from django.tasks import task_backends
got = task_backends["default"].get_result(sys.argv[3])
print(json.dumps({
    "imported": any("djtasks" in m for m in sys.modules),
    "module_path": got.task.module_path, "status": got.status, "args": got.args,
    "kwargs": got.kwargs, "attempts": got.attempts, "return_value": got.return_value,
    "errors": len(got.errors), "finished": got.finished_at is not None,
}))
"""


def test_get_result_from_a_process_that_never_imported_the_task(
    configure_taskq: Configure, redis_url: str, prefix: str
) -> None:
    tq = configure_taskq()
    result = djtasks.add.enqueue(20, b=22)
    drain(tq)
    out = subprocess.run(
        [sys.executable, "-c", GET_RESULT, redis_url, prefix, result.id],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "imported": False,
        "module_path": djtasks.add.module_path,
        "status": "SUCCESSFUL",
        "args": [20],
        "kwargs": {"b": 22},
        "attempts": 1,
        "return_value": 42,
        "errors": 0,
        "finished": True,
    }

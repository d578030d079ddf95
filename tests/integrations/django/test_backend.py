"""Django 6's ``django.tasks`` with taskq as its backend (skipped on Django 5.2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("django.tasks")

from django.db import transaction
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

from taskq_core import TaskQueue
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

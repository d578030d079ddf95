"""Workflows on PostgreSQL (schema version 5, ``sql/0005_workflows.sql``): what the workflow
suite (``tests/workflows/``, run on this broker too) cannot show through the public API. A
step's end is kept in the outbox with its settle, so a process that dies before applying it
loses nothing; many workers ending a chord's members at once run its callback once; a big
chord starts in one transaction; a hostile record or message fails its step, not the
settle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from taskq_core import TaskQueue, chain, chord
from taskq_core.brokers.postgres.workflows import PostgresWorkflows
from taskq_core.errors import WorkflowFailed

pytestmark = pytest.mark.postgres


def app(make_app: Callable[..., TaskQueue], **options: Any) -> TaskQueue:
    tq = make_app("postgres", **options)

    @tq.task(name="add")
    def add(x: int, y: int = 1) -> int:
        return x + y

    @tq.task(name="total")
    def total(xs: list[int]) -> int:
        return sum(xs)

    return tq


def burst(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def outbox(url: str, prefix: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM taskq.wf_outbox WHERE ns = %s", (prefix,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def test_a_step_end_kept_in_the_outbox_is_applied_by_a_later_drain(
    make_app: Callable[..., TaskQueue],
    postgres_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settle of a step's task commits its end to the outbox; a process that dies
    before applying it (here: its drain does nothing) leaves it there, and the next drain
    (any worker's tick) advances the workflow from it, once."""
    tq = app(make_app)
    h = chain(tq.get_task("add").call(1), tq.get_task("add").call()).enqueue()
    with monkeypatch.context() as m:
        m.setattr(PostgresWorkflows, "wf_drain", lambda self, queues, now_ms: 0)

        async def nothing(self: Any, queues: Any, now_ms: int) -> int:
            return 0

        m.setattr(PostgresWorkflows, "wf_drain_async", nothing)
        burst(tq)  # runs step 0 only: step 1 is released by the drain
    assert outbox(postgres_url, prefix) == 1
    assert [s["status"] for s in h.info()["steps"]] == ["queued", "pending"]
    assert tq.broker.wf_drain([], 0) == 1
    assert tq.broker.wf_drain([], 0) == 0  # applied once
    assert outbox(postgres_url, prefix) == 0
    burst(tq)
    assert h.result(timeout=5) == 3


def test_a_chord_ended_by_several_workers_at_once_runs_its_callback_once(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = app(make_app, worker={"concurrency": 8})
    calls: list[list[int]] = []

    @tq.task(name="collect")
    def collect(xs: list[int]) -> int:
        calls.append(xs)
        return sum(xs)

    members = [tq.get_task("add").call(i, 0) for i in range(300)]
    h = chord(members, tq.get_task("collect").call()).enqueue()
    workers = [tq.worker(handle_signals=False) for _ in range(3)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    try:
        assert h.result(timeout=60) == sum(range(300))
    finally:
        for w in workers:
            assert w._loop is not None
            w._loop.call_soon_threadsafe(w.stop)
        for t in threads:
            t.join(15)
    assert calls == [list(range(300))]


def test_a_chord_of_five_thousand_members_starts_in_one_transaction(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = app(make_app)
    members = [tq.get_task("add").call(i) for i in range(5_000)]
    sent: list[int] = []
    broker: Any = tq.broker
    transaction = broker.transaction

    def counted(steps: Any) -> Any:
        sent.append(1)
        return transaction(steps)

    broker.transaction = counted
    started = time.monotonic()
    h = chord(members, tq.get_task("total").call()).enqueue()
    took = time.monotonic() - started
    broker.transaction = transaction
    assert sent == [1]
    assert took < 10, took
    assert tq.broker.queue_info(["default"])[0].ready == 5_000
    assert h.info(results=False)["counts"] == {"queued": 5_000, "pending": 1}


def test_a_record_overwritten_with_garbage_fails_the_step_not_the_settle(
    make_app: Callable[..., TaskQueue], postgres_url: str, prefix: str
) -> None:
    tq = app(make_app)
    add = tq.get_task("add")
    h = chain(add.call(1), add.call(), add.call()).enqueue()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE taskq.wf_fields SET value = '{not json' WHERE ns = %s AND wid = %s "
            "AND field = 'd:1'",
            (prefix, h.id),
        )
    burst(tq)
    with pytest.raises(WorkflowFailed, match="BadWorkflow"):
        h.result(timeout=5)
    assert h.info()["failed_step"] == 1


def test_an_unreadable_step_message_fails_its_workflow(
    make_app: Callable[..., TaskQueue], postgres_url: str, prefix: str
) -> None:
    """A step's message overwritten in the database: the worker dead-letters it (it cannot
    know its step), and the workflow learns of it from the outbox."""
    tq = app(make_app)
    add = tq.get_task("add")
    h = chain(add.call(1), add.call()).enqueue()
    tid = h.info()["steps"][0]["task_id"]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE taskq.tasks SET body = '{not json' WHERE ns = %s AND id = %s", (prefix, tid)
        )
    burst(tq)
    with pytest.raises(WorkflowFailed, match="BadMessage"):
        h.result(timeout=5)
    assert h.info()["failed_step"] == 0

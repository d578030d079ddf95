"""Workflows through the application, on both brokers: each primitive, nesting, the DAG
builder, conditions and skipped steps, polling checks, the failure policies, the error
callback, chords whose members fail, cancellation, retry from the failed steps, the TTL,
the payload limit and the async API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq_core import (
    InvalidOption,
    TaskQueue,
    WorkflowFailed,
    WorkflowNotFound,
    chain,
    chord,
    failure,
    group,
)
from taskq_core.keys import Keys

MakeApp = Callable[..., TaskQueue]


def burst(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def app_with_tasks(make_app: MakeApp, kind: str, **options: Any) -> TaskQueue:
    tq = make_app(kind, **options)
    calls: list[tuple[str, Any]] = []
    tq.calls = calls  # type: ignore[attr-defined]

    @tq.task(name="add")
    def add(x: int, y: int = 1) -> int:
        calls.append(("add", x))
        return x + y

    @tq.task(name="total")
    def total(xs: list[Any]) -> int:
        calls.append(("total", xs))
        return sum(x for x in xs if type(x) is int)

    @tq.task(name="collect")
    def collect(xs: Any, *rest: Any) -> list[Any]:
        calls.append(("collect", xs))
        return [xs, *rest]

    @tq.task(name="boom", max_retries=0)
    def boom(*args: Any) -> None:
        calls.append(("boom", args))
        raise RuntimeError("boom went the step")

    @tq.task(name="is_big")
    def is_big(x: int) -> bool:
        return x > 10

    @tq.task(name="alert")
    def alert(info: dict[str, Any]) -> None:
        calls.append(("alert", info))

    @tq.task(name="const")
    def const(value: Any = "c") -> Any:
        calls.append(("const", value))
        return value

    return tq


def calls(tq: TaskQueue, name: str) -> list[Any]:
    return [arg for n, arg in tq.calls if n == name]  # type: ignore[attr-defined]


def sig(tq: TaskQueue, name: str, *args: Any, **kwargs: Any) -> Any:
    return tq.get_task(name).call(*args, **kwargs)


# -- primitives and nesting


def test_a_chain_passes_each_result_to_the_next_step(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = chain(sig(tq, "add", 1), sig(tq, "add"), sig(tq, "add", y=10)).enqueue()
    assert h.status() == "running"
    burst(tq)
    assert h.result(timeout=5) == 13
    info = h.info()
    assert [s["status"] for s in info["steps"]] == ["succeeded"] * 3
    assert [s["result"] for s in info["steps"]] == [2, 3, 13]
    assert info["steps"][2]["after"] == [1]


def test_an_immutable_step_ignores_the_previous_result(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = chain(sig(tq, "add", 1), sig(tq, "const", "mine").si(), sig(tq, "collect")).enqueue()
    burst(tq)
    assert h.result(timeout=5) == ["mine"]
    assert calls(tq, "const") == ["mine"]


def test_a_group_collects_results_in_order(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = group(sig(tq, "add", i) for i in range(6)).enqueue()
    burst(tq)
    assert h.result(timeout=5) == [1, 2, 3, 4, 5, 6]


def test_a_chord_runs_its_callback_once_with_every_result(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = chord([sig(tq, "add", i) for i in range(10)], sig(tq, "total")).enqueue()
    burst(tq)
    assert h.result(timeout=5) == sum(range(1, 11))
    assert calls(tq, "total") == [list(range(1, 11))]


def test_nesting_chain_of_groups_group_of_chains_chord_in_a_chain(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    chain_of_groups = chain(
        group(sig(tq, "add", 1), sig(tq, "add", 2)),
        sig(tq, "total"),
        group(sig(tq, "add"), sig(tq, "add", y=100)),
    )
    group_of_chains = group(
        chain(sig(tq, "add", 1), sig(tq, "add")),
        chain(sig(tq, "add", 10), sig(tq, "add"), sig(tq, "add")),
    )
    chord_in_chain = chain(
        sig(tq, "add", 0),
        chord([sig(tq, "add"), sig(tq, "add", y=2)], sig(tq, "total")),
        sig(tq, "add"),
    )
    nested_deeper = chord(
        [group_of_chains, chain(sig(tq, "add", 5), group(sig(tq, "add"), sig(tq, "add")))],
        sig(tq, "collect"),
    )
    handles = [w.enqueue() for w in (chain_of_groups, group_of_chains, chord_in_chain)]
    deep = nested_deeper.enqueue()
    burst(tq)
    assert handles[0].result(timeout=5) == [6, 105]
    assert handles[1].result(timeout=5) == [3, 13]
    assert handles[2].result(timeout=5) == 6  # add(0) = 1; total([2, 3]) = 5; add: 6
    assert deep.result(timeout=5) == [[[3, 13], [7, 7]]]


def test_the_dag_builder_waits_for_every_step_before(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    wf = tq.workflow()
    a = wf.add(sig(tq, "add", 1))
    b = wf.add(sig(tq, "add"), after=[a])
    c = wf.add(sig(tq, "add", y=5), after=[a])
    wf.add(sig(tq, "collect"), after=[b, c])
    h = wf.enqueue()
    burst(tq)
    assert h.result(timeout=5) == [[3, 7]]
    info = h.info()
    assert info["steps"][3]["after"] == [1, 2]
    with pytest.raises(InvalidOption, match="what this workflow's add"):
        tq.workflow().add(sig(tq, "add", 1), after=[a])


# -- conditions


def test_a_condition_on_the_previous_result_skips_the_step(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    skipped = chain(
        sig(tq, "const", 0), sig(tq, "add").when("truthy"), sig(tq, "collect")
    ).enqueue()
    ran = chain(sig(tq, "const", 4), sig(tq, "add").when(equals=4), sig(tq, "collect")).enqueue()
    burst(tq)
    # a skipped step passes None on; its dependants run
    assert skipped.result(timeout=5) == [None]
    assert [s["status"] for s in skipped.info()["steps"]] == ["succeeded", "skipped", "succeeded"]
    assert ran.result(timeout=5) == [5]
    assert calls(tq, "add") == [4]


def test_a_predicate_task_decides_whether_a_step_runs(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    big = chain(sig(tq, "const", 50), sig(tq, "add").when(sig(tq, "is_big"))).enqueue()
    small = chain(sig(tq, "const", 5), sig(tq, "add").when(sig(tq, "is_big"))).enqueue()
    burst(tq)
    assert big.result(timeout=5) == 51
    assert small.result(timeout=5) is None
    steps = small.info()["steps"]
    assert [s["kind"] for s in steps] == ["task", "predicate", "task"]
    assert steps[2]["status"] == "skipped"


def test_a_condition_must_be_a_known_test_or_a_task() -> None:
    tq = TaskQueue("memory://")

    @tq.task()
    def f() -> None: ...

    with pytest.raises(InvalidOption, match="condition test 'lambda'"):
        f.call().when("lambda")
    with pytest.raises(InvalidOption, match="condition test"):
        f.call().when(print)  # type: ignore[arg-type]


def test_a_polling_check_runs_until_it_returns_true(make_app: MakeApp, broker_kind: str) -> None:
    tq = make_app(broker_kind)
    seen: list[int] = []

    @tq.task(name="ready")
    def ready() -> Any:
        seen.append(1)
        return "done" if len(seen) >= 3 else False

    @tq.task(name="never")
    def never() -> bool:
        return False

    ok = chain(ready.call().until(every=0.05, timeout=30), never.call().si()).enqueue()
    late = never.call().until(every=0.05, timeout=0.3).enqueue()
    with running(tq):
        with pytest.raises(WorkflowFailed, match="CheckTimedOut"):
            late.result(timeout=15)
        assert ok.result(timeout=15) is False  # never() ran once after it, and returned False
    assert len(seen) == 3
    assert ok.info()["steps"][0]["result"] == "done"


@contextlib.contextmanager
def running(tq: TaskQueue) -> Iterator[None]:
    """A worker in a thread while the block runs."""
    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield
    finally:
        assert worker._loop is not None
        worker._loop.call_soon_threadsafe(worker.stop)
        thread.join(10)


# -- failures


def test_stop_cancels_the_rest_and_names_the_failed_step(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    wf = tq.workflow(on_error=sig(tq, "alert"))
    a = wf.add(sig(tq, "boom"))
    wf.add(sig(tq, "add"), after=[a])
    h = wf.enqueue()
    burst(tq)
    with pytest.raises(WorkflowFailed) as caught:
        h.result(timeout=5)
    assert caught.value.step is not None
    assert caught.value.step["index"] == 0
    assert caught.value.error["message"] == "boom went the step"
    assert "step 0 (boom)" in str(caught.value)
    info = h.info()
    assert info["failed_step"] == 0
    assert [s["status"] for s in info["steps"]] == ["failed", "cancelled", "succeeded"]
    assert calls(tq, "add") == []
    # the error callback ran once, given what failed
    (alerted,) = calls(tq, "alert")
    assert alerted["step"] == 0
    assert alerted["task"] == "boom"
    assert alerted["error"]["type"] == "RuntimeError"
    assert alerted["workflow"] == h.id


def test_continue_lets_independent_branches_finish(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    wf = tq.workflow(policy="continue", on_error=sig(tq, "alert"))
    bad = wf.add(sig(tq, "boom"))
    wf.add(sig(tq, "add"), after=[bad])
    good = wf.add(sig(tq, "add", 1))
    wf.add(sig(tq, "add"), after=[good])
    h = wf.enqueue()
    burst(tq)
    with pytest.raises(WorkflowFailed):
        h.result(timeout=5)
    states = [s["status"] for s in h.info()["steps"]]
    assert states == ["failed", "cancelled", "succeeded", "succeeded", "succeeded"]
    assert len(calls(tq, "alert")) == 1


def test_a_chord_whose_member_fails_does_not_hang(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    passed = chord(
        [sig(tq, "add", 1), sig(tq, "boom"), sig(tq, "add", 2)],
        sig(tq, "collect"),
        on_member_failure="pass",
    ).enqueue()
    failed = tq.workflow(on_error=sig(tq, "alert"))
    failed.add(chord([sig(tq, "add", 1), sig(tq, "boom")], sig(tq, "collect")))
    h = failed.enqueue()
    burst(tq)
    ((got,),) = [passed.result(timeout=5)]
    assert got[0] == 2
    assert got[2] == 3
    err = failure(got[1])
    assert err is not None
    assert err["message"] == "boom went the step"
    assert failure(got[0]) is None
    with pytest.raises(WorkflowFailed):
        h.result(timeout=5)
    assert len(calls(tq, "alert")) == 1
    assert len(calls(tq, "collect")) == 1  # only the tolerant chord's callback ran


def test_retry_resumes_from_the_failed_steps(make_app: MakeApp, broker_kind: str) -> None:
    tq = make_app(broker_kind)
    runs: list[str] = []
    fail = [True]

    @tq.task(name="first")
    def first() -> int:
        runs.append("first")
        return 1

    @tq.task(name="flaky", max_retries=0)
    def flaky(x: int) -> int:
        runs.append("flaky")
        if fail[0]:
            raise ValueError("not yet")
        return x + 1

    @tq.task(name="last")
    def last(x: int) -> int:
        runs.append("last")
        return x * 10

    h = chain(first.call(), flaky.s(), last.s()).enqueue()
    burst(tq)
    assert h.status() == "failed"
    fail[0] = False
    assert h.retry() == 2
    with pytest.raises(ValueError, match="only a failed or cancelled"):
        h.retry()
    burst(tq)
    assert h.result(timeout=5) == 20
    assert runs == ["first", "flaky", "flaky", "last"]
    steps = h.info()["steps"]
    assert steps[1]["task_id"] == f"{h.id}.1.1"
    assert steps[0]["task_id"] == f"{h.id}.0"


def test_cancel_removes_queued_steps_and_none_starts_after(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = chain(group(sig(tq, "add", i) for i in range(50)), sig(tq, "total")).enqueue()
    assert tq.broker.queue_info(["default"])[0].ready == 50
    assert h.cancel() is True
    assert h.cancel() is False  # cancelled already
    assert tq.broker.queue_info(["default"])[0].ready == 0
    burst(tq)
    assert calls(tq, "add") == []
    assert calls(tq, "total") == []
    with pytest.raises(WorkflowFailed, match="cancelled"):
        h.result(timeout=1)
    assert set(h.info()["counts"]) == {"cancelled"}


def test_the_record_expires_after_its_ttl(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = tq.workflow(ttl=0.3)
    h.add(sig(tq, "add", 1))
    handle = h.enqueue()
    burst(tq)
    assert handle.result(timeout=5) == 2
    time.sleep(0.5)
    assert handle.status() == "unknown"
    with pytest.raises(WorkflowNotFound):
        handle.info()


def test_a_result_over_the_payload_limit_fails_its_step_by_name(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = make_app(broker_kind, max_payload_bytes=2000)

    @tq.task(name="big")
    def big(n: int) -> str:
        return "x" * n

    @tq.task(name="join")
    def join(xs: list[str]) -> int:
        return len(xs)

    too_big = chain(big.call(5000), join.s()).enqueue()
    # each member's result fits; the callback's input (their list) does not
    summed = chord([big.call(900) for _ in range(3)], join.s()).enqueue()
    burst(tq)
    with pytest.raises(WorkflowFailed, match=r"result of step 0 \(big\) is 5002 bytes"):
        too_big.result(timeout=5)
    with pytest.raises(WorkflowFailed, match=r"input of step 3 \(join\).* over the payload limit"):
        summed.result(timeout=5)


def test_steps_refuse_options_that_do_not_fit(make_app: MakeApp) -> None:
    tq = app_with_tasks(make_app, "memory")
    with pytest.raises(InvalidOption, match=r"step 1 \(add\): delay and eta"):
        chain(sig(tq, "add", 1), tq.get_task("add").options(delay=5).call()).enqueue()
    with pytest.raises(InvalidOption, match="idempotency key"):
        chain(tq.get_task("add").options(idempotency_key="k").call(1)).enqueue()
    with pytest.raises(InvalidOption, match=r"step 0 \(add\): expires is not supported"):
        chain(tq.get_task("add").options(expires=30).call(1)).enqueue()
    with pytest.raises(InvalidOption, match="policy must be one of"):
        tq.workflow(policy="maybe")
    with pytest.raises(InvalidOption, match="at least one step"):
        tq.workflow().enqueue()


def test_the_async_api(make_app: MakeApp, broker_kind: str) -> None:
    tq = app_with_tasks(make_app, broker_kind)

    async def main() -> Any:
        h = await chord([sig(tq, "add", i) for i in range(3)], sig(tq, "total")).enqueue_async()
        worker = tq.worker(burst=True, handle_signals=False)
        await worker.async_run()
        assert await h.status_async() == "succeeded"
        info = await h.info_async()
        assert info["result"] == 6
        try:
            return await h.result_async(timeout=5)
        finally:
            await tq.broker.aclose()

    assert asyncio.run(main()) == 6


# -- Redis specifics: one round trip, atomic advance, hostile records


def test_ten_thousand_members_are_enqueued_in_one_round_trip(make_app: MakeApp) -> None:
    tq = app_with_tasks(make_app, "redis")
    members = [sig(tq, "add", i) for i in range(10_000)]
    broker: Any = tq.broker
    sent: list[int] = []
    run = broker.run

    def counted(plan: Any) -> Any:
        sent.append(len(plan.commands))
        return run(plan)

    broker.run = counted
    h = chord(members, sig(tq, "total")).enqueue()
    broker.run = run
    assert sent == [2]  # one round trip: the start script and the queues' registration
    assert tq.broker.queue_info(["default"])[0].ready == 10_000
    assert h.info(results=False)["counts"] == {"queued": 10_000, "pending": 1}


def test_a_record_overwritten_with_garbage_fails_the_step_not_the_settle(
    make_app: MakeApp, redis_client: redis.Redis, prefix: str
) -> None:
    tq = app_with_tasks(make_app, "redis")
    h = chain(sig(tq, "add", 1), sig(tq, "add"), sig(tq, "add")).enqueue()
    key = Keys(prefix).workflow(h.id)
    redis_client.hset(key, "d:1", "{not json")
    burst(tq)
    with pytest.raises(WorkflowFailed, match="BadWorkflow"):
        h.result(timeout=5)
    assert h.info()["failed_step"] == 1


def test_metrics_count_workflows_and_step_waits(make_app: MakeApp, broker_kind: str) -> None:
    from taskq_core.observability import facade
    from taskq_core.observability.prometheus import exposition

    tq = app_with_tasks(make_app, broker_kind)
    chain(sig(tq, "add", 1), sig(tq, "add")).enqueue()
    chain(sig(tq, "boom"), sig(tq, "add")).enqueue()
    chord([sig(tq, "add", 1)], sig(tq, "total")).enqueue().cancel()
    burst(tq)
    text = exposition(tq).decode()
    assert 'taskq_workflows_started_total{queue="default"} 3.0' in text
    assert 'taskq_workflows_succeeded_total{queue="default"} 1.0' in text
    assert 'taskq_workflows_failed_total{queue="default"} 1.0' in text
    assert 'taskq_workflows_cancelled_total{queue="default"} 1.0' in text
    totals = facade.metrics(tq)["totals"]
    assert totals["workflows_started"] == 3
    assert totals["workflows_succeeded"] == 1


# -- steps whose task ends outside a settle: poison, unreadable, cancelled by id


def test_a_poison_member_does_not_hang_its_chord(make_app: MakeApp, broker_kind: str) -> None:
    """A member whose every delivery dies without an outcome is dead-lettered by the fetch
    (the poison rule); its workflow learns of it from the queue's outbox and fails, and the
    error callback runs."""
    tq = app_with_tasks(make_app, broker_kind, worker={"max_deliveries": 2})
    wf = tq.workflow(on_error=sig(tq, "alert"))
    wf.add(chord([sig(tq, "add", 1), sig(tq, "add", 2)], sig(tq, "total")))
    h = wf.enqueue()
    broker, lease = tq.broker, tq.settings.worker.lease_seconds * 1000
    now = 1_800_000_000_000
    for _ in range(3):  # leased, and its lease lapses, until the poison rule takes it
        broker.fetch(["default"], 1, now, alone=True)
        now += int(lease) + 1
    broker.fetch(["default"], 0, now)
    assert broker.wf_drain(["default"], 0) == 1
    assert broker.wf_drain(["default"], 0) == 0  # once
    burst(tq)
    with pytest.raises(WorkflowFailed, match="PoisonTask"):
        h.result(timeout=5)
    steps = h.info()["steps"]
    assert steps[0]["status"] == "failed"
    assert steps[2]["status"] == "cancelled"
    assert len(calls(tq, "alert")) == 1


def test_a_step_cancelled_by_its_task_id_ends_its_workflow(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app_with_tasks(make_app, broker_kind)
    h = chain(sig(tq, "add", 1), sig(tq, "add")).enqueue()
    first = tq.handle(h.info()["steps"][0]["task_id"])
    assert first.cancel() is True
    worker = tq.worker(handle_signals=False, burst=True)
    worker.run()  # its drain runs on its tick; here, directly
    tq.broker.wf_drain(["default"], 0)
    with pytest.raises(WorkflowFailed):
        h.result(timeout=5)
    assert [s["status"] for s in h.info()["steps"]] == ["cancelled", "cancelled"]
    assert calls(tq, "add") == []


def test_an_unreadable_step_message_is_drained_by_the_worker_tick(
    make_app: MakeApp, redis_client: redis.Redis, prefix: str
) -> None:
    """A step's message overwritten in Redis: the worker dead-letters it (it cannot know
    its step), and its next tick advances the workflow from the queue's outbox."""
    tq = app_with_tasks(make_app, "redis", worker={"lease_seconds": 1, "renew_interval": 0.2})
    h = chain(sig(tq, "add", 1), sig(tq, "add")).enqueue()
    tid = h.info()["steps"][0]["task_id"]
    redis_client.hset(Keys(prefix).queue("default").msg, tid, b"{not json")
    with running(tq), pytest.raises(WorkflowFailed, match="BadMessage"):
        h.result(timeout=10)
    assert h.info()["failed_step"] == 0

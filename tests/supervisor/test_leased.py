"""The supervisor's record of what a child leased but has not started (``leased``
messages, from the middleware hook of the same name): moved to running at the start,
dropped at the end, handed back uncounted when the process dies, and bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from taskq_core import TaskQueue
from taskq_core.brokers.base import Lease
from taskq_core.supervisor import Supervisor
from taskq_core.supervisor.children import LEASED_KEPT, Child, release_leases


def child() -> Child:
    return Child(n=1, process=cast(Any, None), pid=123, conn=None, started=0.0)


def supervisor(make_app: Callable[..., TaskQueue]) -> Supervisor:
    return Supervisor(make_app("memory"), app_spec=None, processes=1, handle_signals=False)


def test_leased_then_started_then_ended(make_app: Callable[..., TaskQueue]) -> None:
    sup, c = supervisor(make_app), child()
    sup._handle(c, {"t": "leased", "l": [["default", "a", 1], ["default", "b", 1]]})
    assert set(c.leased) == {("default", "a"), ("default", "b")}
    start = {"t": "start", "q": "default", "id": "a", "f": 1, "task": "x", "hard": None}
    sup._handle(c, start)
    assert set(c.leased) == {("default", "b")}  # a is running now
    assert ("default", "a") in c.running
    sup._handle(c, {"t": "end", "q": "default", "id": "b", "done": 1})
    assert c.leased == {}  # an end without a start (handed back by the worker itself)


def test_the_record_is_bounded_oldest_first(make_app: Callable[..., TaskQueue]) -> None:
    sup, c = supervisor(make_app), child()
    batch = [["default", f"t{i}", 1] for i in range(LEASED_KEPT + 5)]
    sup._handle(c, {"t": "leased", "l": batch})
    assert len(c.leased) == LEASED_KEPT
    assert ("default", "t0") not in c.leased
    assert ("default", f"t{LEASED_KEPT + 4}") in c.leased


def test_a_dead_child_hands_its_leased_tasks_back_uncounted() -> None:
    calls: list[tuple[list[Lease], str]] = []

    class Recorder:
        def release(self, leases: list[Lease], mode: str = "graceful", reason: str = "") -> int:
            calls.append((list(leases), mode))
            return len(leases)

    c = child()
    c.leased[("default", "a")] = Lease("default", "a", 1)
    assert release_leases(cast(Any, Recorder()), c, crash="worker process 123 died") == 1
    assert calls == [([Lease("default", "a", 1)], "graceful")]
    assert c.leased == {}

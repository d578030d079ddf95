from __future__ import annotations

from collections.abc import Callable

from taskq_core import TaskQueue


def test_enqueue_run_result(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)

    @tq.task
    def add(a: int, b: int) -> int:
        return a + b

    @tq.task
    async def mul(a: int, b: int) -> int:
        return a * b

    h1, h2 = add.enqueue(2, 3), mul.enqueue(4, 5)
    assert h1.status() == "queued"
    tq.worker(burst=True, handle_signals=False).run()
    assert h1.result(timeout=2) == 5
    assert h2.result(timeout=2) == 20
    assert h1.status() == "succeeded"

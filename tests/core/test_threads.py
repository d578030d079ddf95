"""ThreadRunner: the threads of a worker's sync tasks, results handed back in batches."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from taskq_core.threads import ThreadRunner


async def test_results_and_exceptions_reach_their_futures() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 4, "t")

    def work(i: int) -> int:
        if i % 7 == 0:
            raise ValueError(f"bad {i}")
        return i * 2

    futures = [runner.submit(functools.partial(work, i)) for i in range(300)]
    done = await asyncio.gather(*futures, return_exceptions=True)
    for i, value in enumerate(done):
        if i % 7 == 0:
            assert isinstance(value, ValueError)
            assert str(value) == f"bad {i}"
        else:
            assert value == i * 2
    runner.shutdown()


async def test_threads_start_as_needed_up_to_the_limit() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 3, "cap")
    gate = threading.Event()
    futures = [runner.submit(gate.wait) for _ in range(8)]
    for _ in range(200):
        if runner.running == 3:
            break
        await asyncio.sleep(0.01)
    assert runner.running == 3  # three threads busy, five calls waiting for one
    names = {t.name for t in threading.enumerate() if t.name.startswith("cap-")}
    assert len(names) == 3
    gate.set()
    assert await asyncio.gather(*futures) == [True] * 8
    assert runner.running == 0
    runner.shutdown()


async def test_a_cancelled_future_is_skipped_and_the_runner_goes_on() -> None:
    runner = ThreadRunner(asyncio.get_running_loop(), 1, "cancel")
    gate = threading.Event()
    first = runner.submit(gate.wait)
    first.cancel()
    gate.set()
    assert await runner.submit(lambda: "next") == "next"
    assert first.cancelled()
    runner.shutdown()


def test_needs_a_thread() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="at least one thread"):
            ThreadRunner(loop, 0, "none")
    finally:
        loop.close()

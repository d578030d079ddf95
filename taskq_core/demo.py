"""``taskq demo``: the whole system in one process, on the in-memory broker by default."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
import warnings
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .app import TaskQueue
from .brokers.base import EnqueueItem
from .errors import Retry, UnusedConfigWarning
from .handle import FINAL, TaskHandle
from .message import Message


def build_app(broker: str, prefix: str) -> TaskQueue:
    """The demo's application: a small shop's tasks, some of them badly behaved."""
    with warnings.catch_warnings():
        # the demo's settings are its own on purpose (its broker is --broker): TASKQ_*
        # variables set for the real application are no news here
        warnings.simplefilter("ignore", UnusedConfigWarning)
        tq = TaskQueue(
            broker,
            key_prefix=prefix,
            retry={"max_retries": 3, "backoff": 0.2, "backoff_max": 1.0, "jitter": 0.5},
            worker={"concurrency": 8, "lease_seconds": 5, "grace_period": 2},
            result_ttl=600,
            # the progress bar and the summary table tell the story; per-task log lines
            # would scroll through the bar
            monitoring={"task_logs": False},
        )
    flaky_calls: Counter[str] = Counter()

    @tq.task(name="demo.resize_image")
    async def resize_image(image_id: int) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.02, 0.15))
        return {"image": image_id, "sizes": [64, 256, 1024]}

    @tq.task(name="demo.send_receipt")
    def send_receipt(order_id: int, email: str) -> str:
        time.sleep(random.uniform(0.01, 0.08))
        return f"receipt for order {order_id} sent to {email}"

    @tq.task(name="demo.charge_card", queue="high")
    async def charge_card(order_id: int, cents: int) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"order": order_id, "charged": cents}

    @tq.task(name="demo.call_flaky_api")
    async def call_flaky_api(request_id: int) -> str:
        # fails twice, then succeeds: shows retries with backoff
        flaky_calls[str(request_id)] += 1
        if flaky_calls[str(request_id)] < 3:
            raise ConnectionError(f"upstream timed out (call {flaky_calls[str(request_id)]})")
        return "ok"

    @tq.task(name="demo.rate_limited")
    async def rate_limited(n: int) -> int:
        flaky_calls[f"rl{n}"] += 1
        if flaky_calls[f"rl{n}"] == 1:
            raise Retry(delay=0.5, reason="rate limited, try again in 0.5 s")
        return n

    @tq.task(name="demo.always_fails", max_retries=2)
    def always_fails(order_id: int) -> None:
        raise ValueError(f"order {order_id} has no shipping address")

    @tq.task(name="demo.nightly_report", queue="low")
    def nightly_report() -> str:
        return "report built"

    return tq


def _enqueue_mix(tq: TaskQueue) -> list[TaskHandle]:
    t = tq.registry
    handles: list[TaskHandle] = []
    sigs = [t["demo.resize_image"].call(i) for i in range(60)]
    sigs += [t["demo.send_receipt"].call(i, f"customer{i}@example.com") for i in range(40)]
    sigs += [t["demo.charge_card"].call(i, 100 * i) for i in range(20)]
    sigs += [t["demo.call_flaky_api"].call(i) for i in range(5)]
    sigs += [t["demo.rate_limited"].call(i) for i in range(3)]
    sigs += [t["demo.always_fails"].call(i) for i in range(2)]
    sigs += [t["demo.nightly_report"].options(delay=1.5).call() for _ in range(3)]
    handles += tq.enqueue_many(sigs)
    # a poison message: names a task no worker has; it is dead-lettered, never run
    now_ms = int(tq.clock.time() * 1000)
    poison = Message(
        id="poison-0001", task="demo.removed_in_last_release", queue="default", enqueued_at=now_ms
    )
    tq.broker.enqueue([EnqueueItem("default", poison.id, poison.task, poison.encode())], now_ms)
    handles.append(tq.handle(poison.id, "default"))
    return handles


async def _run(tq: TaskQueue, console: Console, workers: int) -> tuple[list[TaskHandle], float]:
    handles = _enqueue_mix(tq)
    start = time.monotonic()
    ws = [tq.worker(handle_signals=False) for _ in range(workers)]
    runs = [asyncio.create_task(w.async_run()) for w in ws]
    statuses: dict[TaskHandle, str] = {}
    with Progress(
        TextColumn("[bold]tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("", total=len(handles))
        deadline = start + 25
        while time.monotonic() < deadline:
            for h in handles:
                if statuses.get(h) not in FINAL:
                    statuses[h] = await h.status_async()
            done = sum(1 for s in statuses.values() if s in FINAL)
            counts = Counter(statuses.values())
            progress.update(
                bar,
                completed=done,
                description=" ".join(f"{k}={v}" for k, v in sorted(counts.items())),
            )
            if done == len(handles):
                break
            await asyncio.sleep(0.1)
    for w in ws:
        await w.close()
    await asyncio.gather(*runs)
    return handles, time.monotonic() - start


def run_demo(broker: str = "memory://", prefix: str | None = None, workers: int = 2) -> int:
    """Run the demo; returns the exit code (0 when every task reached its expected end).

    On Redis, the demo's keys live under a prefix of their own (``taskq-demo-<random>``,
    so it never touches an application's queues) and are deleted at the end.
    """
    console = Console()
    tq = build_app(broker, prefix or f"taskq-demo-{uuid.uuid4().hex[:10]}")
    try:
        return _demo(tq, console, workers)
    finally:
        _remove_keys(tq)
        tq.close()


def _remove_keys(tq: TaskQueue) -> None:
    from .brokers.redis import RedisBroker

    if isinstance(tq.broker, RedisBroker):
        client = tq.broker.client
        keys = list(client.scan_iter(match=tq.broker.keys.pattern(), count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


def _demo(tq: TaskQueue, console: Console, workers: int) -> int:
    console.print(
        f"[bold]taskq demo[/] on {tq.broker!r}: {workers} workers, {len(tq.registry)} task types"
    )
    handles, elapsed = asyncio.run(_run(tq, console, workers))
    rows: dict[str, Counter[str]] = {}
    attempts: Counter[str] = Counter()
    for h in handles:
        info = h.info()
        name = info.get("task") or "?"
        rows.setdefault(name, Counter())[info["status"]] += 1
        attempts[name] += int(info.get("attempts") or 0)
    table = Table(title=f"taskq demo: {len(handles)} tasks in {elapsed:.1f} s")
    for col in ("task", "succeeded", "failed", "dead", "other", "attempts"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for name, c in sorted(rows.items()):
        other = sum(v for k, v in c.items() if k not in ("succeeded", "failed", "dead"))
        table.add_row(
            name,
            str(c["succeeded"]),
            str(c["failed"]),
            str(c["dead"]),
            str(other),
            str(attempts[name]),
        )
    console.print(table)
    dead = tq.broker.dead_list("default", 0, 10)
    failed = sum(c["failed"] for c in rows.values())
    unrun = sum(c["dead"] for c in rows.values())
    # "failed" ran out of retries, "dead" was dead-lettered without running: both are kept
    # in the dead-letter queue, so its count is their sum, said in words
    console.print(
        f"dead-letter queue 'default': {len(dead)} task(s) kept with their error "
        f"({failed} failed after their retries, {unrun} dead-lettered without running)"
    )
    # a line of its own, never wrapped: the command must be copyable as it stands
    console.print("  see them with: taskq failed list", soft_wrap=True)
    expected_failed = {"demo.always_fails"}
    ok = all(
        (c["failed"] == sum(c.values()))
        if name in expected_failed
        else (c["dead"] == sum(c.values()))
        if name == "demo.removed_in_last_release"
        else c["succeeded"] == sum(c.values())
        for name, c in rows.items()
    )
    if ok:
        console.print("[green]every task ended as expected[/]")
    else:
        console.print("[red]some tasks did not end as expected[/]")
    return 0 if ok else 1

"""Flow control from the command line, as subprocesses on the real Redis: ``taskq enqueue``
says when a unique task was already there, ``--expires`` expires, and ``taskq status`` and
``taskq inspect`` show it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, clean_environ

APP = """
from taskq_core import TaskQueue

tq = TaskQueue.from_config()


@tq.task(name="rebuild", unique=True)
def rebuild(index):
    return index


@tq.task(name="ping")
def ping():
    return "pong"


@tq.task(name="aping", expires=30)
async def aping():
    return "pong"


@tq.task(name="one_sync", max_concurrency=1, unique=True)
async def one_sync(account):
    return account


@tq.task(name="stubborn", max_retries=3)
def stubborn():
    import time

    time.sleep(60)  # ignores any abort request


@tq.task(name="polite", max_retries=3)
async def polite():
    import asyncio

    from taskq_core import current_task

    current_task().progress(0.5, "halfway")
    await asyncio.sleep(60)  # cancelled at this await when asked to abort
"""


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, prefix: str) -> Cli:
    (tmp_path / "flowapp.py").write_text(APP)
    env = clean_environ()
    env.update(TASKQ_BROKER_URL=redis_url, TASKQ_KEY_PREFIX=prefix)
    return Cli(tmp_path, env)


def test_enqueue_says_a_unique_task_was_there_and_expires_show_in_status(cli: Cli) -> None:
    first = cli("--app", "flowapp:tq", "enqueue", "rebuild", "--args", '["products"]', "--json")
    assert first.code == 0, first.err
    again = cli("--app", "flowapp:tq", "enqueue", "rebuild", "--args", '["products"]')
    assert again.code == 0, again.err
    assert first.json()["id"] in again.out
    assert "already there: nothing was added" in again.out
    assert first.json()["existing"] is False

    late = cli("--app", "flowapp:tq", "enqueue", "ping", "--expires", "200ms", "--json")
    assert late.code == 0, late.err
    time.sleep(0.4)
    run = cli("worker", "--app", "flowapp:tq", "--burst", "--log-level", "WARNING")
    assert run.code == 0, run.err
    shown = cli("--app", "flowapp:tq", "inspect", late.json()["id"], "--json")
    assert shown.json()["status"] == "expired"
    status = cli("--app", "flowapp:tq", "status", "--json")
    (queue,) = [q for q in status.json()["queues"] if q["name"] == "default"]
    assert queue["expired"] == 1
    assert queue["succeeded"] == 1  # the rebuild, once


def test_a_bad_expiry_is_a_usage_error(cli: Cli) -> None:
    r = cli("--app", "flowapp:tq", "enqueue", "ping", "--expires", "0s")
    assert r.code != 0
    assert "expires must be a finite number of seconds > 0" in r.err


def test_under_the_supervisor_expired_tasks_are_recorded_and_unique_ones_run_once(
    cli: Cli, redis_url: str, prefix: str
) -> None:
    """``taskq worker --processes 2``: expiry (a sync and an async task) and uniqueness
    hold for tasks run by the supervisor's worker processes."""
    from taskq_core import TaskQueue

    tq = TaskQueue(redis_url, key_prefix=prefix)
    try:
        enq = {
            name: cli("--app", "flowapp:tq", "enqueue", name, *extra, "--json")
            for name, extra in (
                ("ping", ("--expires", "100ms")),
                ("aping", ("--expires", "100ms")),
                ("one_sync", ("--args", '["acme"]')),
            )
        }
        dup = cli("--app", "flowapp:tq", "enqueue", "one_sync", "--args", '["acme"]', "--json")
        assert all(r.code == 0 for r in (*enq.values(), dup)), [r.err for r in enq.values()]
        assert dup.json()["existing"] is True
        assert dup.json()["id"] == enq["one_sync"].json()["id"]
        time.sleep(0.3)
        proc = cli.popen("worker", "--app", "flowapp:tq", "--processes", "2")
        try:
            ids = {name: r.json()["id"] for name, r in enq.items()}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                statuses = {name: tq.handle(i).status() for name, i in ids.items()}
                if statuses == {"ping": "expired", "aping": "expired", "one_sync": "succeeded"}:
                    break
                time.sleep(0.2)
            assert statuses == {"ping": "expired", "aping": "expired", "one_sync": "succeeded"}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        (q,) = tq.broker.queue_info(["default"])
        assert q.stats["expired"] == 2
        assert q.stats["ok"] == 1
    finally:
        tq.close()


def test_under_the_supervisor_an_ignored_abort_kills_the_process_and_records_aborted(
    cli: Cli, redis_url: str, prefix: str
) -> None:
    """A sync task that ignores the request is killed ``worker.abort_grace`` after it, and
    recorded as aborted, not retried; an async one stops at its await. ``taskq abort``
    answers for each, and for a finished and an unknown task."""
    from taskq_core import TaskQueue

    tq = TaskQueue(redis_url, key_prefix=prefix)
    env = {
        "TASKQ_WORKER__ABORT_GRACE": "1",
        "TASKQ_WORKER__RENEW_INTERVAL": "0.2",
        "TASKQ_WORKER__LEASE_SECONDS": "3",
    }
    try:
        ids = {}
        for name in ("stubborn", "polite"):
            r = cli("--app", "flowapp:tq", "enqueue", name, "--json")
            assert r.code == 0, r.err
            ids[name] = r.json()["id"]
        proc = cli.popen("worker", "--app", "flowapp:tq", "--processes", "2", **env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(tq.handle(i).status() == "running" for i in ids.values()):
                    break
                time.sleep(0.1)
            # progress reported from a supervised process reaches the handle and inspect
            while time.monotonic() < deadline:
                if tq.handle(ids["polite"]).info().get("progress"):
                    break
                time.sleep(0.1)
            shown = cli("--app", "flowapp:tq", "inspect", ids["polite"])
            assert "50% halfway" in shown.out, shown.out
            asked = time.monotonic()
            for task_id in ids.values():
                r = cli("--app", "flowapp:tq", "abort", task_id, "--json")
                assert r.code == 0, r.err
                assert r.json()["status"] == "aborting"
            while time.monotonic() < asked + 20:
                if all(tq.handle(i).status() == "aborted" for i in ids.values()):
                    break
                time.sleep(0.1)
            took = time.monotonic() - asked
            assert {n: tq.handle(i).status() for n, i in ids.items()} == {
                "stubborn": "aborted",
                "polite": "aborted",
            }
            # grace 1 s, plus a renewal (0.2 s) and the supervisor's check
            assert took < 6, took
            killed = tq.handle(ids["stubborn"]).info()["error"]["message"]
            assert "did not stop within the grace period" in killed
            (q,) = tq.broker.queue_info(["default"])
            assert q.stats.get("retry", 0) == 0
            assert q.stats["aborted"] == 2
            status = cli("--app", "flowapp:tq", "status", "--json")
            (row,) = [x for x in status.json()["queues"] if x["name"] == "default"]
            assert row["aborted"] == 2
            finished = cli("--app", "flowapp:tq", "abort", ids["polite"])
            assert finished.code == 1
            assert "is aborted" in finished.err
            assert cli("--app", "flowapp:tq", "abort", "no-such-task").code == 5
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    finally:
        tq.close()

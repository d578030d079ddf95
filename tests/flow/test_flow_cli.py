"""Flow control from the command line, as subprocesses on the real Redis: ``taskq enqueue``
says when a unique task was already there, ``--expires`` expires, and ``taskq status`` and
``taskq inspect`` show it."""

from __future__ import annotations

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

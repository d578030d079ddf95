"""The ACL of docs/security.md is enough for taskq and no more: the user is created from
the block in the page itself, on a redis-server of the test's own, and every command of a
day's work runs through it (enqueue, a worker, status, inspect, failed list, config check),
while the commands and keys the page says it denies are refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .servers import admin, redis_server, write

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "acl-Pa55-word"
APP = """
from taskq_core import TaskQueue

tq = TaskQueue.from_config()


@tq.task(name="add")
def add(a, b):
    return a + b


@tq.task(name="boom", max_retries=0)
def boom():
    raise ValueError("boom")
"""


def acl_rules() -> list[str]:
    """The rules of the ``ACL SETUSER taskq ...`` block of docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## A minimal Redis ACL for taskq", 1)[1]
    block = re.search(r"```text\n(ACL SETUSER .*?)```", section, re.S)
    assert block is not None, "docs/security.md has no ACL SETUSER block"
    words = block.group(1).split()
    assert words[:3] == ["ACL", "SETUSER", "taskq"]
    return [w.replace(">CHANGE-ME", f">{PASSWORD}") for w in words[3:]]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    # DEBUG enabled, so that the ACL is what refuses it
    with redis_server("--enable-debug-command", "yes") as p:
        r = admin(p)
        r.execute_command("ACL", "SETUSER", "taskq", *acl_rules())  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        r.set("other-app:secret", "x")
        yield p


@pytest.mark.slow
def test_taskq_works_through_the_documented_acl(port: int, tmp_path: Path) -> None:
    write(tmp_path / "aclapp.py", APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["TASKQ_BROKER_URL"] = f"redis://taskq:{PASSWORD}@127.0.0.1:{port}/0"

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "taskq_core.cli", "--app", "aclapp:tq", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, (args, proc.stderr)
        assert "NOPERM" not in proc.stderr, proc.stderr
        assert "broker error" not in proc.stderr, proc.stderr
        return proc.stdout

    ok = run("enqueue", "add", "--args", "[1, 2]").split()[1]
    bad = run("enqueue", "boom").split()[1]
    run("enqueue", "add", "--args", "[3, 4]", "--delay", "1h")
    run("worker", "--burst")
    assert '"result": 3' in run("inspect", ok, "--json")
    assert bad in run("failed", "list")
    status = run("status", "--json")
    assert '"ready": 0' in status or '"ready":0' in status.replace(" ", "")
    run("status")
    run("config", "check")
    keys = admin(port).keys("taskq:*")
    assert keys, "the work above wrote no key under taskq:"


def _attempt(r: redis.Redis, command: tuple[str, ...]) -> None:
    if command[0] != "SUBSCRIBE":
        r.execute_command(*command)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        return
    ps = r.pubsub()
    try:
        ps.subscribe(command[1])
        ps.get_message(timeout=2)  # the refusal is the reply to SUBSCRIBE
    finally:
        ps.close()


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "GET", "maxmemory"),
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("KEYS", "*"),
        ("DEBUG", "SLEEP", "0"),
        ("SCAN", "0"),
        ("RANDOMKEY",),
        ("DBSIZE",),
        ("GET", "other-app:secret"),
        ("SET", "other-app:secret", "y"),
        ("EVAL", "return 1", "0"),
        ("SCRIPT", "FLUSH"),
        ("PUBSUB", "CHANNELS"),
        ("SUBSCRIBE", "other-app:events"),
    ],
)
def test_the_documented_acl_denies(port: int, command: tuple[str, ...]) -> None:
    with (
        redis.Redis(port=port, username="taskq", password=PASSWORD) as r,
        pytest.raises(redis.exceptions.NoPermissionError),
    ):
        _attempt(r, command)
    assert admin(port).get("other-app:secret") == b"x"

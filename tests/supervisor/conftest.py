"""Fixtures of the supervisor tests: a worker app module written into the test's tmp_path
(its children import it through PYTHONPATH), and a supervisor run in a thread of the test
that is always stopped and whose processes are always gone afterwards."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from taskq_core.cli.common import load_app
from taskq_core.supervisor import Supervisor

#: the autoscaler's settings of the burst tests (Redis and PostgreSQL): quick to read a burst
#: and to act on it, quick to scale back once the queue is drained
BURST_SUPERVISOR = {
    "interval": 0.25,
    "readings_up": 1,
    "cooldown_up": 0.5,
    "readings_down": 2,
    "cooldown_down": 1.0,
    "backlog_seconds_up": 1.0,
    "max_wait_up": 2.0,
}

APP_SOURCE = '''
"""The worker app of a supervisor test. Every run of a task is recorded in Redis under the
test's prefix (started / finished, with the pid and the time), so the test can tell which
process ran what, when, and how often."""

import json
import os
import signal
import time

import redis

from taskq_core import TaskQueue

URL = os.environ["TASKQ_TEST_REDIS_URL"]
PREFIX = os.environ["TASKQ_TEST_PREFIX"]
OPTIONS = json.loads(os.environ["TASKQ_TEST_OPTIONS"])
HARD = float(os.environ.get("TASKQ_TEST_HARD", "1.5"))

if os.environ.get("TASKQ_TEST_CRASH_CHILD") and os.environ.get("TASKQ_SUPERVISOR_ID"):
    # only the worker processes (the supervisor names itself to them) fail to start
    raise RuntimeError("this worker process fails at start (test)")

tq = TaskQueue(URL, key_prefix=PREFIX, **OPTIONS)
r = redis.Redis.from_url(URL)
PID = str(os.getpid())
HOG = []


def note(kind, key):
    r.rpush(f"{PREFIX}:test:{kind}", f"{key}:{PID}:{time.time():.3f}")


def first_run(key):
    return bool(r.set(f"{PREFIX}:test:first:{key}", PID, nx=True))


@tq.task(name="sup.work")
def work(key, seconds=0.2):
    note("started", key)
    time.sleep(seconds)
    note("finished", key)
    return PID


@tq.task(name="sup.long_then_short")
def long_then_short(key, long=60.0, short=0.05):
    first = first_run(key)
    note("started", key)
    time.sleep(long if first else short)
    note("finished", key)
    return PID


@tq.task(name="sup.stuck_in_c", hard_timeout=HARD, max_retries=1, retry_backoff=0.05)
def stuck_in_c(key):
    first = first_run(key)
    note("started", key)
    if first:
        time.sleep(3600)  # blocked in C: no exception can be raised in this thread
    note("finished", key)
    return "recovered"


@tq.task(name="sup.stuck_in_python", hard_timeout=HARD, max_retries=0)
def stuck_in_python(key):
    note("started", key)
    n = 0
    while True:  # an endless loop in Python
        n += 1


@tq.task(name="sup.die_after")
def die_after(key, seconds):
    """On its first run, kills its own process (SIGKILL: an OOM kill) after ``seconds``."""
    note("started", key)
    if first_run(key):
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGKILL)
    note("finished", key)


@tq.task(name="sup.hog")
def hog(key, mb):
    note("started", key)
    HOG.append(bytearray(b"x") * (mb * 1024 * 1024))  # kept: a leak
    note("finished", key)
'''


class Runs:
    """What the test app recorded: ``key -> [(pid, time), ...]`` per kind."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def of(self, kind: str) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for raw in self.client.lrange(f"{self.prefix}:test:{kind}", 0, -1):
            assert isinstance(raw, bytes)  # a client without decode_responses
            key, pid, at = raw.decode().rsplit(":", 2)
            out.setdefault(key, []).append((int(pid), float(at)))
        return out

    def started(self) -> dict[str, list[tuple[int, float]]]:
        return self.of("started")

    def finished(self) -> dict[str, list[tuple[int, float]]]:
        return self.of("finished")


class Harness:
    """One test's app module, its supervisor thread, and what the tasks recorded."""

    def __init__(self, tmp_path: Path, redis_url: str, prefix: str, client: redis.Redis) -> None:
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.prefix = prefix
        self.module_name = f"supapp_{uuid.uuid4().hex[:10]}"
        self.runs = Runs(client, prefix)
        self.client = client
        self.module: ModuleType | None = None
        self.supervisor: Supervisor | None = None
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def load(self, mp: pytest.MonkeyPatch, options: dict[str, Any], **env: str) -> ModuleType:
        (self.tmp_path / f"{self.module_name}.py").write_text(APP_SOURCE)
        mp.syspath_prepend(str(self.tmp_path))
        path = os.pathsep.join([str(self.tmp_path), os.environ.get("PYTHONPATH", "")])
        mp.setenv("PYTHONPATH", path.rstrip(os.pathsep))
        mp.setenv("TASKQ_TEST_REDIS_URL", self.redis_url)
        mp.setenv("TASKQ_TEST_PREFIX", self.prefix)
        mp.setenv("TASKQ_TEST_OPTIONS", json.dumps(options))
        for k, v in env.items():
            mp.setenv(k, v)
        app = load_app(f"{self.module_name}:tq")
        self.module = sys.modules[self.module_name]
        assert self.module.tq is app
        return self.module

    @property
    def app_spec(self) -> str:
        return f"{self.module_name}:tq"

    def start(self, **options: Any) -> Supervisor:
        assert self.module is not None
        sup = Supervisor(
            self.module.tq,
            app_spec=self.app_spec,
            handle_signals=False,
            log_level="WARNING",
            **options,
        )
        self.supervisor = sup

        def run() -> None:
            try:
                sup.run()
            except BaseException as exc:  # reported by the test's teardown
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, name="supervisor", daemon=True)
        self.thread.start()
        return sup

    def events(self, kind: str) -> list[dict[str, Any]]:
        assert self.supervisor is not None
        return self.supervisor.history(kind)

    def stop(self) -> None:
        if self.supervisor is not None and self.thread is not None:
            self.supervisor.stop(now=True)
            self.thread.join(60)
            assert not self.thread.is_alive(), "the supervisor did not stop"
        if self.module is not None:
            self.module.r.close()
            self.module.tq.close()
            sys.modules.pop(self.module_name, None)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` (cheap reads) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def harness(
    tmp_path: Path, redis_url: str, prefix: str, redis_client: redis.Redis
) -> Iterator[Harness]:
    h = Harness(tmp_path, redis_url, prefix, redis_client)
    try:
        yield h
    finally:
        h.stop()
    assert not h.errors, h.errors

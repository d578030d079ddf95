"""Fixtures of the observability tests: worker subprocesses on the test's prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.procs import stop_processes

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class Workers:
    """Starts ``taskq worker`` processes running ``clusterapp`` and stops them."""

    def __init__(self, redis_url: str, prefix: str, logs: Path) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, queues: str = "default", concurrency: int = 2, **env: str) -> int:
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TASKQ_TEST_REDIS_URL": self.redis_url,
            "TASKQ_TEST_PREFIX": self.prefix,
            **env,
        }
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "taskq_core.cli",
                    "worker",
                    "--app",
                    "tests.observability.clusterapp:tq",
                    "--queues",
                    queues,
                    "--concurrency",
                    str(concurrency),
                    "--log-level",
                    "warning",
                ],
                env=environ,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc.pid

    def stop(self) -> None:
        """SIGTERM every worker and wait for it (they drain, settle and drop heartbeats)."""
        stop_processes(self.procs)

    def output(self) -> str:
        return "\n".join(
            f.read_text(errors="replace") for f in sorted(self.logs.glob("worker-*.log"))
        )


@pytest.fixture
def workers(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(redis_url, prefix, tmp_path)
    yield w
    w.stop()


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` (a read of shared state that has no event to wait on) until it
    returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)

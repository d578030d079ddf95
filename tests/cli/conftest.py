"""Run ``taskq`` as a subprocess against the real Redis, on the test's own key prefix.

Each test gets an empty working directory holding ``cliapp.py`` (a TaskQueue built with
``TaskQueue.from_config()``, so the prefix and broker come from ``TASKQ_*`` variables) and
no ``TASKQ_*`` variable from outside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskq_core import TaskQueue

ROOT = Path(__file__).resolve().parents[2]

APP_MODULE = """
from taskq_core import TaskQueue

tq = TaskQueue.from_config()


@tq.task(name="add")
def add(a, b):
    return a + b


@tq.task(name="boom", max_retries=0)
def boom(why):
    raise ValueError(why)


@tq.task(name="report", queue="low")
def report():
    return "done"
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs ``python -m taskq_core.cli ARGS`` in ``cwd`` with ``env``."""

    cwd: Path
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "taskq_core.cli", *args]

    def __call__(
        self,
        *args: str,
        timeout: float = 60,
        variables: Mapping[str, str] | None = None,
        **env: str,
    ) -> Result:
        """Run the CLI with ``variables`` and ``env`` (a mapping, or keywords) added."""
        proc = subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(variables or {}), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def clean_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TASKQ_")}
    # wide enough that rich never folds a task id; Python finds taskq_core from any cwd
    env.update(COLUMNS="200", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, prefix: str) -> Cli:
    (tmp_path / "cliapp.py").write_text(APP_MODULE)
    env = clean_environ()
    env.update(TASKQ_BROKER_URL=redis_url, TASKQ_KEY_PREFIX=prefix)
    return Cli(tmp_path, env)


@pytest.fixture
def app(redis_url: str, prefix: str) -> Iterator[TaskQueue]:
    """The same application, in this process, to check what the commands did."""
    tq = TaskQueue(redis_url, key_prefix=prefix)
    yield tq
    tq.close()


@pytest.fixture
def procs() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Registers background processes; each is killed (if still running) after the test."""
    started: list[subprocess.Popen[str]] = []

    def track(p: subprocess.Popen[str]) -> subprocess.Popen[str]:
        started.append(p)
        return p

    yield track
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)

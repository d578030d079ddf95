"""Shared fixtures. Tests talk to a real Redis: TASKQ_TEST_REDIS_URL, else 127.0.0.1:6379;
when neither answers, a redis-server is started for the session (and a test that needs
Redis fails loudly rather than skipping). Every test gets its own key prefix and its keys
are deleted afterwards, so runs never collide."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq_core import TaskQueue
from tests.frameworks import refused_skip

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _refuse(report: pytest.CollectReport | pytest.TestReport, path: Path) -> None:
    """In the full environment a framework's test that skipped for a missing import fails
    instead (tests/frameworks.py says why and which skips stay)."""
    if report.skipped and isinstance(report.longrepr, tuple) and not hasattr(report, "wasxfail"):
        message = refused_skip(path, str(report.longrepr[2]))
        if message is not None:
            report.outcome = "failed"
            report.longrepr = message


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _refuse(report, collector.path)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _refuse(report, item.path)
    return report


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("TASKQ_TEST_REDIS_URL", DEFAULT_URL)
    if _answers(url):
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(f"no Redis answers at {url} and redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _answers(url):
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    p = f"tq-test-{uuid.uuid4().hex[:10]}"
    yield p
    keys = list(redis_client.scan_iter(match=f"{p}:*", count=1000))
    if keys:
        redis_client.delete(*keys)


def prefix_keys(client: redis.Redis, prefix: str) -> set[bytes]:
    return set(client.scan_iter(match=f"{prefix}:*", count=1000))


@pytest.fixture
def make_app(redis_url: str, prefix: str) -> Iterator[Callable[..., TaskQueue]]:
    """``make_app("redis" | "memory", **options)``: a TaskQueue on this test's prefix."""
    apps: list[TaskQueue] = []

    def make(kind: str = "redis", **options: Any) -> TaskQueue:
        url = redis_url if kind == "redis" else "memory://"
        app = TaskQueue(url, key_prefix=prefix, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture(params=["redis", "memory"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both brokers."""
    return str(request.param)

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


POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/taskq_test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL database with taskq's schema (``taskq db migrate``'s work, done once):
    TASKQ_TEST_POSTGRES_URL, else the database taskq_test on 127.0.0.1:5432 (created when
    missing). A test that needs it fails when none answers (scripts/test starts one)."""
    import psycopg

    from taskq_core.brokers.postgres import migrate

    url = os.environ.get("TASKQ_TEST_POSTGRES_URL", POSTGRES_URL)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        admin = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as first:
            first.execute(f"CREATE DATABASE {url.rsplit('/', 1)[1]}")
        conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
    with conn:
        migrate(conn)
    return url


def drop_namespace(url: str, prefix: str) -> None:
    """Delete every row of ``prefix`` (the PostgreSQL broker's namespace)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in (
            "tasks",
            "results",
            "idempotency",
            "uniques",
            "rates",
            "stats",
            "stats_log",
            "records",
            "series",
        ):
            conn.execute(f"DELETE FROM taskq.{table} WHERE ns = %s", (prefix,))


@pytest.fixture
def make_app(
    redis_url: str, prefix: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., TaskQueue]]:
    """``make_app("redis" | "memory" | "postgres", **options)``: a TaskQueue on this test's
    prefix."""
    apps: list[TaskQueue] = []
    pg: list[str] = []

    def make(kind: str = "redis", **options: Any) -> TaskQueue:
        if kind == "postgres":
            url = request.getfixturevalue("postgres_url")
            pg.append(url)
        else:
            url = redis_url if kind == "redis" else "memory://"
        app = TaskQueue(url, key_prefix=prefix, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
    if pg:
        drop_namespace(pg[0], prefix)


#: the suites that run against PostgreSQL too (the broker kind "postgres"): the broker
#: contract and flow-control contract, the core worker and API suites, observability,
#: security, flow control, progress and abort, workflows, the supervisor's signals
POSTGRES_SUITES = (
    "tests/core/",
    "tests/observability/",
    "tests/security/",
    "tests/flow/test_progress_abort.py",
    "tests/flow/test_flow_app.py",
    "tests/workflows/",
    "tests/supervisor/test_signals.py",
)
#: files of those suites whose tests run on PostgreSQL only when their name has one of
#: ON_POSTGRES_TOO's words (none at present)
NOT_ON_POSTGRES: tuple[str, ...] = ()
ON_POSTGRES_TOO: tuple[str, ...] = ()


def _on_postgres(item: pytest.Item) -> bool:
    where = item.path.as_posix()
    if not any(f"/{s}" in where or where.startswith(s) for s in POSTGRES_SUITES):
        return False
    if any(where.endswith(s) for s in NOT_ON_POSTGRES):
        return any(word in item.name for word in ON_POSTGRES_TOO)
    return True


@pytest.fixture(params=["redis", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over the brokers (PostgreSQL in POSTGRES_SUITES only)."""
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("broker_kind") == "postgres"
        if on_postgres and not _on_postgres(item):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

"""The ``taskq_*`` fixtures, registered by :mod:`taskq_core.testing.plugin` once a project
opts in (docs/testing.md)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from ..app import TaskQueue
from .clock import TestClock
from .drain import Drainer
from .isolation import eager, isolated

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_MARKER_KEYS = frozenset({"broker", "redis_url", "app"})


def _marker(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("taskq")
    if marker is None:
        return {}
    if marker.args:
        pytest.fail(f"@pytest.mark.taskq takes keyword arguments only, got {marker.args!r}")
    unknown = set(marker.kwargs) - _MARKER_KEYS
    if unknown:
        pytest.fail(
            f"@pytest.mark.taskq: unknown argument(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_MARKER_KEYS))})"
        )
    return dict(marker.kwargs)


def _redis_url(config: pytest.Config, mark: dict[str, Any]) -> str | None:
    """The Redis URL of this test, or None for the in-memory broker."""
    cli_url = config.getoption("--taskq-redis-url")
    kind = (
        mark.get("broker")
        or config.getoption("--taskq-broker")
        or config.getini("taskq_broker")
        or ("redis" if cli_url or mark.get("redis_url") else "memory")
    )
    if kind not in ("memory", "redis"):
        pytest.fail(f"taskq broker must be 'memory' or 'redis', got {kind!r}")
    if kind == "memory":
        return None
    url = str(mark.get("redis_url") or cli_url or config.getini("taskq_redis_url") or "")
    url = url or DEFAULT_REDIS_URL
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except (redis.RedisError, ValueError) as exc:
        pytest.fail(
            f"taskq_app: no Redis answers at {url} ({type(exc).__name__}); set "
            "--taskq-redis-url or the ini option taskq_redis_url, or use broker='memory'"
        )
    return url


def _user_app(path: str) -> TaskQueue:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        pytest.fail(f"taskq_app must be 'module:attribute', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            pytest.fail(f"taskq_app {path!r}: {module_name} has no attribute {attr!r}")
    if not isinstance(obj, TaskQueue):
        pytest.fail(f"taskq_app {path!r} is a {type(obj).__name__}, not a TaskQueue")
    return obj


@pytest.fixture
def taskq_clock() -> TestClock:
    """The clock of ``taskq_app``: starts at the real time and moves only by
    ``taskq_clock.advance(...)``; delays, retries' backoff and schedules follow it."""
    return TestClock()


@pytest.fixture
def taskq_app(request: pytest.FixtureRequest, taskq_clock: TestClock) -> Iterator[TaskQueue]:
    """An isolated TaskQueue: a new one, or the one named by the ini option ``taskq_app``
    (or the marker's ``app=``) on a broker of its own, put back afterwards. The broker is a
    fresh ``memory://`` one, or Redis under a random key prefix deleted afterwards."""
    mark = _marker(request)
    url = _redis_url(request.config, mark)
    path = mark.get("app") or request.config.getini("taskq_app")
    app = _user_app(str(path)) if path else None
    with isolated(app, redis_url=url, clock=taskq_clock) as isolated_app:
        yield isolated_app


@pytest.fixture
def taskq_worker(taskq_app: TaskQueue) -> Drainer:
    """Runs ``taskq_app``'s tasks with a real worker: ``taskq_worker.drain()`` (or
    ``await taskq_worker.drain_async()``) until nothing is due; returns what ran."""
    return Drainer(taskq_app)


@pytest.fixture
def taskq_eager(taskq_app: TaskQueue) -> Iterator[TaskQueue]:
    """``taskq_app`` in eager mode: every enqueue runs the task inline."""
    with eager(taskq_app):
        yield taskq_app


@pytest.fixture
def taskq_on_commit(request: pytest.FixtureRequest, taskq_app: TaskQueue) -> Any:
    """Django: ``with taskq_on_commit() as held:`` captures the enqueues ``DEFER_ENQUEUE``
    holds for the transaction's commit; ``held.enqueued()`` lists them, ``held.commit()``
    sends them. Built on pytest-django's ``django_capture_on_commit_callbacks``."""
    from .django import OnCommit

    try:
        capture = request.getfixturevalue("django_capture_on_commit_callbacks")
    except pytest.FixtureLookupError:
        pytest.fail("taskq_on_commit needs pytest-django (pip install pytest-django)")
    return OnCommit(capture)

"""Fixtures of the cross-framework contract suite.

Every framework gets a minimal app with taskq's routes at ``/tasks`` (factories in
``clients_asgi.py`` and ``clients_wsgi.py``) over a real Redis holding the same seeded state:
a task that succeeded, one that failed into the dead-letter queue, one waiting and one
scheduled. The state is seeded once per test and copied key by key (DUMP/RESTORE) into one
prefix per client, so every app sees byte-identical data, timestamps included.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq_core import Task, TaskQueue
from taskq_core.http import Request
from tests.contract.client import ClientFactory, ContractClient, close

#: the frameworks, FastAPI riding on Starlette's pieces
FRAMEWORKS = ("flask", "django", "starlette", "fastapi", "aiohttp", "litestar", "quart", "sanic")
_MODULES = {
    "flask": ("tests.contract.clients_wsgi", "flask"),
    "django": ("tests.contract.clients_wsgi", "django"),
    "starlette": ("tests.contract.clients_asgi", "starlette"),
    "fastapi": ("tests.contract.clients_asgi", "fastapi"),
    "aiohttp": ("tests.contract.clients_asgi", "aiohttp"),
    "litestar": ("tests.contract.clients_asgi", "litestar"),
    "quart": ("tests.contract.clients_asgi", "quart"),
    "sanic": ("tests.contract.clients_asgi", "sanic"),
}

ADMIN_TOKEN = "contract-secret"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}

#: the seeded tasks, by fixed id so that every copy of the state names the same tasks
OK_ID, FAILED_ID, WAITING_ID, LATER_ID = (
    "contract-ok",
    "contract-failed",
    "contract-waiting",
    "contract-later",
)


def admin_auth(request: Request) -> bool:
    """The auth callable every contract app gets."""
    return request.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"


def factory(framework: str) -> ClientFactory | None:
    """The client factory of ``framework``, or None with the reason skipped."""
    module_name, package = _MODULES[framework]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{module_name.replace('.', '/')}.py (the {framework} client) is not there yet")
    module = importlib.import_module(module_name)
    found: ClientFactory | None = getattr(module, f"{framework}_client", None)
    if found is None:
        pytest.skip(f"{module_name} has no {framework}_client yet")
    return found


def register(tq: TaskQueue) -> tuple[Task[..., Any], Task[..., Any]]:
    """The tasks of the seeded state (registered the same way in every app)."""

    @tq.task(name="contract.double")
    def double(n: int) -> int:
        return 2 * n

    @tq.task(name="contract.boom", max_retries=0)
    def boom() -> None:
        raise ValueError("boom: the card was declined")

    return double, boom


def seed(tq: TaskQueue) -> None:
    double, boom = register(tq)
    double.options(task_id=OK_ID).enqueue(21)
    boom.options(task_id=FAILED_ID).enqueue()
    tq.worker(burst=True, handle_signals=False, concurrency=1).run()
    double.options(task_id=WAITING_ID).enqueue(1)
    double.options(task_id=LATER_ID, delay=3600).enqueue(2)


def clone(client: redis.Redis, source: str, target: str) -> None:
    """Copy every key under ``source:`` to ``target:``, values and TTLs exactly."""
    for key in client.scan_iter(match=f"{source}:*", count=1000):
        name = key.decode()
        dumped = client.dump(key)
        if dumped is None:
            continue
        ttl = client.pttl(key)
        client.restore(f"{target}{name[len(source) :]}", max(ttl, 0), dumped, replace=True)


@pytest.fixture
def seeded(redis_url: str, prefix: str) -> str:
    """This test's prefix, seeded."""
    tq = TaskQueue(redis_url, key_prefix=prefix)
    try:
        seed(tq)
    finally:
        tq.close()
    return prefix


@pytest.fixture
def copies(
    redis_url: str, redis_client: redis.Redis, seeded: str
) -> Iterator[Callable[[], TaskQueue]]:
    """``copy()``: a TaskQueue over a fresh copy of the seeded state (cleaned afterwards)."""
    made: list[tuple[str, TaskQueue]] = []

    def copy() -> TaskQueue:
        target = f"{seeded}-{uuid.uuid4().hex[:6]}"
        clone(redis_client, seeded, target)
        tq = TaskQueue(redis_url, key_prefix=target)
        register(tq)
        made.append((target, tq))
        return tq

    yield copy
    for target, tq in made:
        tq.close()
        keys = list(redis_client.scan_iter(match=f"{target}:*", count=1000))
        if keys:
            redis_client.delete(*keys)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def contract(
    framework: str, copies: Callable[[], TaskQueue]
) -> Iterator[tuple[TaskQueue, ContractClient]]:
    """``(tq, client)``: the framework's contract app over a copy of the seeded state."""
    make = factory(framework)
    assert make is not None
    tq = copies()
    client = make(tq, admin_auth)
    try:
        yield tq, client
    finally:
        close(client)

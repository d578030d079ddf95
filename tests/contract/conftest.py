"""Fixtures of the cross-framework contract suite.

Every framework gets a minimal app with taskq's routes at ``/tasks`` (factories in
``clients_asgi.py`` and ``clients_wsgi.py``) over a real Redis holding the same seeded state:
a task that succeeded, one that failed into the dead-letter queue, one waiting and one
scheduled. The state is seeded once per test and copied key by key (DUMP/RESTORE) into one
prefix per client, so every app sees byte-identical data, timestamps included.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq_core import Task, TaskQueue, chain
from taskq_core.http import Request
from tests.contract.client import ClientFactory, ContractClient, close
from tests.frameworks import BY_NAME, NAMES, Framework, client_module, unavailable

#: the frameworks, FastAPI riding on Starlette's pieces: the list is tests/frameworks.py
FRAMEWORKS = NAMES

ADMIN_TOKEN = "contract-secret"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}

#: the seeded tasks, by fixed id so that every copy of the state names the same tasks
OK_ID, FAILED_ID, WAITING_ID, LATER_ID, ABORT_ID = (
    "contract-ok",
    "contract-failed",
    "contract-waiting",
    "contract-later",
    "contract-abort",
)
#: a finished workflow (a chain of two steps), for GET /workflows/{id}
WORKFLOW_ID = "wf_contract"


def admin_auth(request: Request) -> bool:
    """The auth callable every contract app gets."""
    return request.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"


def factory(framework: str | Framework) -> ClientFactory:
    """The client factory of ``framework``.

    When the framework, its client module or its factory is missing, the test skips in a
    one-framework tox env and fails in the full environment (see tests/frameworks.py).
    """
    fw = BY_NAME[framework] if isinstance(framework, str) else framework
    module = client_module(fw)
    found: ClientFactory | None = getattr(module, fw.client_factory, None)
    if found is None:
        unavailable(fw.name, f"{fw.client_module} has no {fw.client_factory}")
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
    wf = tq.workflow(workflow_id=WORKFLOW_ID)
    wf.add(chain(double.call(5), double.call()))
    wf.enqueue()
    tq.worker(burst=True, handle_signals=False, concurrency=1).run()
    double.options(task_id=WAITING_ID).enqueue(1)
    double.options(task_id=LATER_ID, delay=3600).enqueue(2)
    double.options(task_id=ABORT_ID).enqueue(3)  # the abort route's (it cancels it)


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
    tq = copies()
    client = make(tq, admin_auth)
    try:
        yield tq, client
    finally:
        close(client)

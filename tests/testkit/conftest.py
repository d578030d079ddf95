"""The test kit's tests run pytest in a subprocess (``pytester.runpytest_subprocess``) on small
projects written by each test, as a user's project would run with taskq installed."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

#: the user's code under test: an app with tasks, as a project would have it
SHOP = """
from taskq_core import TaskQueue

tq = TaskQueue("memory://")
runs = {"flaky": 0}


@tq.task(queue="mail")
def send_email(to, subject="hi"):
    return f"sent {to}"


@tq.task(max_retries=3, retry_backoff=60, retry_jitter=0)
def flaky():
    runs["flaky"] += 1
    if runs["flaky"] == 1:
        raise ConnectionError("smtp down")
    return runs["flaky"]


@tq.task
def boom():
    raise ValueError("boom")


@tq.task
async def double(n):
    return n * 2


@tq.task
def chain(n):
    send_email.enqueue(f"{n}@example.com")
    return n


def signup(email):
    send_email.enqueue(email, subject="welcome")
"""


def ini(**options: str) -> str:
    """A pytest.ini as strict as ours, with the given options."""
    lines = [
        "[pytest]",
        "addopts = -p no:cacheprovider --strict-markers --strict-config",
        "asyncio_mode = auto",
        "asyncio_default_fixture_loop_scope = function",
        "filterwarnings = error",
    ]
    lines += [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def shop(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with ``shop.py`` (the app and its tasks) importable from its tests."""
    pytester.makepyfile(shop=SHOP)
    pytester.syspathinsert()
    return pytester


def dedent(source: str) -> str:
    return textwrap.dedent(source).lstrip()

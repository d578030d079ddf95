"""``django.tasks`` tasks (Django 6+) run through taskq. Not named ``tasks.py``: the worker
command imports every app's ``tasks`` module, and on Django 5.2 this one cannot import."""

from __future__ import annotations

from typing import Any

from django.tasks import TaskContext, task


@task(queue_name="high")
def add(a: int, b: int) -> int:
    return a + b


@task()
def fail() -> None:
    raise ValueError("the card was declined")


@task(takes_context=True)
def attempt(context: TaskContext[..., dict[str, Any]], x: int) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id, "x": x}


@task()
async def double(n: int) -> int:
    return 2 * n

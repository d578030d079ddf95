"""taskq as the backend of Django's tasks framework (``django.tasks``, Django 6.0+)::

    TASKS = {"default": {"BACKEND": "taskq_django.backend.TaskqBackend"}}

    # shop/tasks.py
    from django.tasks import task

    @task(queue_name="high")
    def send_receipt(order_id: int) -> str: ...

    result = send_receipt.enqueue(42)      # a django.tasks.TaskResult; result.id is taskq's id
    result.refresh(); result.status        # READY, RUNNING, SUCCESSFUL or FAILED

Each Django task function gets a taskq task of its own, named ``django:<module path>``,
registered when the function is defined (Django validates a task with its backend then) in
every TaskQueue that ``settings.TASKQ`` gives, so ``manage.py taskq_worker`` (which imports
the ``tasks`` module of every installed app) runs it through taskq's registry like any other
task. ``queue_name`` is the taskq queue; ``run_after`` delays the task (``supports_defer``);
``async def`` tasks run on the worker's loop; results are read back from taskq
(``supports_get_result``), from any process. Priorities other than 0 are refused: taskq
orders work by queue (``high``, ``default``, ``low``), so give ``queue_name`` instead.
Retries follow taskq's retry settings; a task waiting for its retry reads as READY, with
``worker_ids`` (one per attempt, so ``attempts``) and ``errors`` (one per failed attempt) as
they stand.

What taskq drops once a task is done is kept beside it, for ``get_result``, as long as its
result (``result_ttl``): the call's arguments (they were in the message, in the same Redis,
readable by the same clients, so nothing is exposed that was not) and the record of each
attempt. ``get_result`` works in a process that never imported the task's module: the task
is then described by its stored path alone (``TaskResult.task.func`` only raises), since a
name read from Redis is never imported.
"""

from __future__ import annotations

import contextlib
import os
import socket
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from inspect import iscoroutinefunction
from typing import Any

import orjson

try:
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError as exc:  # Django < 6.0
    import django

    raise ImportError(
        "taskq_django.backend needs Django 6.0 or later (django.tasks), "
        f"this is Django {django.get_version()}"
    ) from exc

from django.conf import settings
from django.utils import timezone

from taskq_core import TaskQueue
from taskq_core.current import current_task
from taskq_core.errors import InvalidName, TaskqError
from taskq_core.handle import describe
from taskq_core.message import Message, stored_dict
from taskq_core.middleware import Middleware
from taskq_core.validation import check_queue_name
from taskq_core.worker import Worker

from .conf import get_taskqueue, on_taskqueue
from .kept import kept as _store

#: taskq name -> the Django task defined under it (the registry the worker looks names up in)
_known: dict[str, Task[..., Any]] = {}
#: taskq name -> the function registered with taskq, one per name so it registers anywhere
_runners: dict[str, Callable[..., Any]] = {}
#: TaskQueues served by taskq_django, each given every known task
_queues: weakref.WeakSet[TaskQueue] = weakref.WeakSet()
#: the message of the task running in this thread (or asyncio task), for TaskContext
_running: ContextVar[tuple[Message, str] | None] = ContextVar("taskq_django_task", default=None)

_STATUS = {
    "queued": TaskResultStatus.READY,
    "scheduled": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "dead": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


def task_name(task: Task[..., Any]) -> str:
    """The taskq name of a Django task."""
    return f"django:{task.module_path}"


class TaskqBackend(BaseTaskBackend):
    """``django.tasks`` backend over taskq; see the module docstring.

    ``QUEUES`` in the backend's settings limits the queue names tasks may use (default: any
    name taskq accepts).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues = set()  # any queue: taskq checks the name when a task is enqueued

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks and taskq's queue name rule (``InvalidTask`` either way), then the
        task is known to taskq (this runs when it is defined, and on ``using()``)."""
        super().validate_task(task)
        if not self.queues:
            try:
                check_queue_name(task.queue_name)
            except InvalidName as exc:
                raise InvalidTask(str(exc)) from None
        if getattr(task.func, _DESCRIPTOR, False):
            return  # a task described from stored data: nothing to run, nothing to register
        name = task_name(task)
        _known.setdefault(name, task)
        for tq in list(_queues):
            _register(tq, name)

    def enqueue(self, task: Task[..., Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        self.validate_task(task)
        handle = _bound(task).enqueue(*args, **kwargs)
        _store(get_taskqueue(), handle.id).call(args, kwargs)
        return self._enqueued(task, handle.id, args, kwargs)

    async def aenqueue(self, task: Task[..., Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        self.validate_task(task)
        handle = await _bound(task).enqueue_async(*args, **kwargs)
        _store(get_taskqueue(), handle.id).call(args, kwargs)
        return self._enqueued(task, handle.id, args, kwargs)

    def _enqueued(
        self, task: Task[..., Any], task_id: str, args: Any, kwargs: Any
    ) -> TaskResult[Any, Any]:
        result = TaskResult(
            task=task,
            id=task_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The task's state in taskq, as a TaskResult; ``TaskResultDoesNotExist`` when taskq
        has no such task (or its result expired) or it is not a ``django.tasks`` task."""
        tq = get_taskqueue()
        handle = tq.find(result_id)
        state = tq.broker.get(handle.queue, result_id) if handle is not None else None
        info = describe(state)
        if state is None or info is None:
            raise TaskResultDoesNotExist(result_id)
        name = str(info.get("task"))
        if not name.startswith("django:"):
            raise TaskResultDoesNotExist(f"{result_id} is not a django.tasks task")
        task = _known.get(name)
        if task is None:  # its module is not imported here: describe it, never import it
            task = _described(name, self.alias, state.queue)
        elif task.queue_name != state.queue:
            task = replace(task, queue_name=state.queue)
        message = stored_dict(state.message)
        record: dict[str, Any] = orjson.loads(state.record) if state.record else {}
        status = _STATUS.get(str(info["status"]), TaskResultStatus.READY)
        error = info.get("error")
        worker = record.get("worker")
        kept = _store(tq, result_id).read()
        call = kept.get("call") or {}
        args = message["args"] if "args" in message else call.get("args", [])
        kwargs = message["kwargs"] if "kwargs" in message else call.get("kwargs", {})
        workers = kept.get("workers") or []
        errors = [_error(e) for e in kept.get("errors") or []]
        if not errors and isinstance(error, dict):
            errors = [_error(error)]  # a task that failed before taskq_django recorded it
        if not workers and worker:
            workers = [str(worker)] * int(info.get("attempts") or 1)
        last = kept.get("last_attempted_at")
        result = TaskResult(
            task=task,
            id=result_id,
            status=status,
            enqueued_at=_time(info.get("enqueued_at")),
            started_at=_time(record.get("started_at")),
            finished_at=_time(info.get("finished_at")),
            last_attempted_at=_time(last if last is not None else record.get("started_at")),
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=errors,
            worker_ids=[str(w) for w in workers],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", info.get("result"))
        return result


class _CurrentTask(Middleware):
    """Task middleware: remembers, in the task's own thread, which message it runs (for
    ``takes_context`` tasks)."""

    def __init__(self) -> None:
        self._workers: dict[str, str] = {}

    def before_task(self, worker: Worker, message: Message) -> None:
        if message.task in _known:
            self._workers[message.id] = worker.id

    @contextlib.contextmanager
    def wrap(self, message: Message) -> Iterator[None]:
        if message.task not in _known:
            yield
            return
        worker = self._workers.pop(message.id, f"{socket.gethostname()}:{os.getpid()}")
        token = _running.set((message, worker))
        try:
            yield
        finally:
            _running.reset(token)


def _install(tq: TaskQueue) -> None:
    if not any(isinstance(m, _CurrentTask) for m in tq.middleware):
        tq.middleware.append(_CurrentTask())
    _queues.add(tq)
    for name in list(_known):
        _register(tq, name)


def _register(tq: TaskQueue, name: str) -> None:
    if name in tq.registry:
        return
    runner = _runners.get(name)
    if runner is None:
        runner = _runners[name] = _make_runner(name, iscoroutinefunction(_known[name].func))
    tq.task(name=name)(runner)


def _bound(task: Task[..., Any]) -> Any:
    """The taskq task of ``task`` in the current TaskQueue, with its queue and delay."""
    tq = get_taskqueue()
    name = task_name(task)
    _register(tq, name)
    options: dict[str, Any] = {"queue": task.queue_name}
    if task.run_after is not None:
        run_after = task.run_after
        if timezone.is_naive(run_after):  # USE_TZ = False: local time, as Django means it
            run_after = timezone.make_aware(run_after)
        options["eta"] = run_after
    return tq.registry[name].options(**options)


def _make_runner(name: str, is_async: bool) -> Callable[..., Any]:
    """The function taskq runs for the Django task ``name``: it calls the task's function
    (with a TaskContext when it takes one) and sends Django's task signals."""
    if is_async:

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            task, result = _started(name, args, kwargs)
            try:
                if task.takes_context:
                    value = await task.func(TaskContext(task_result=result), *args, **kwargs)
                else:
                    value = await task.func(*args, **kwargs)
            except BaseException as exc:
                _finished(result, exc)
                raise
            _finished(result, None)
            return value

        return run_async

    def run(*args: Any, **kwargs: Any) -> Any:
        task, result = _started(name, args, kwargs)
        try:
            if task.takes_context:
                value = task.func(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = task.func(*args, **kwargs)
        except BaseException as exc:
            _finished(result, exc)
            raise
        _finished(result, None)
        return value

    return run


def _started(name: str, args: Any, kwargs: Any) -> tuple[Task[..., Any], TaskResult[Any, Any]]:
    task = _known[name]
    message, worker = _running.get() or (None, "")
    try:
        # the attempt's start as the worker recorded it: started_at and last_attempted_at
        # of a first attempt are then one moment, not two readings of the clock
        now = _time(current_task().started_ms) or timezone.now()
    except TaskqError:  # run outside a worker (a direct call): now
        now = timezone.now()
    result = TaskResult(
        task=task,
        id=message.id if message is not None else "",
        status=TaskResultStatus.RUNNING,
        enqueued_at=_time(message.enqueued_at) if message is not None else None,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=list(args),
        kwargs=dict(kwargs),
        backend=task.backend,
        errors=[],
        worker_ids=[worker] * ((message.attempt if message is not None else 0) + 1),
    )
    if message is not None:
        _store(get_taskqueue(), message.id).attempt(worker, now)
    task_started.send(TaskqBackend, task_result=result)
    return task, result


def _finished(result: TaskResult[Any, Any], exc: BaseException | None) -> None:
    object.__setattr__(result, "finished_at", timezone.now())
    if exc is None:
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    else:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        kind = type(exc)
        error = TaskError(
            exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
            traceback="".join(traceback.format_exception(exc)),
        )
        result.errors.append(error)
        if result.id:
            _store(get_taskqueue(), result.id).failed(error)
    task_finished.send(TaskqBackend, task_result=result)


def _time(ms: object) -> datetime | None:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def _error(error: dict[str, Any]) -> TaskError:
    if "exception_class_path" in error:  # recorded by taskq_django
        return TaskError(
            exception_class_path=str(error["exception_class_path"]),
            traceback=str(error.get("traceback", "")),
        )
    kind = str(error.get("type", "Exception"))
    # taskq names builtins by their bare name; Django imports the path to get the class
    path = kind if "." in kind else f"builtins.{kind}"
    return TaskError(exception_class_path=path, traceback=str(error.get("traceback", "")))


#: marks the function of a task described from stored data (its module not imported)
_DESCRIPTOR = "_taskq_described"


def _described(name: str, backend: str, queue: str) -> Task[..., Any]:
    """A Task for the stored name ``django:<module>.<function>``, without importing it: a
    function that only raises, carrying the path (``Task.module_path`` gives it back)."""
    path = name.removeprefix("django:")
    module, _, qualname = path.rpartition(".")

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"the task {path} is not imported in this process: import its module to call it"
        )

    unavailable.__module__ = module
    unavailable.__qualname__ = unavailable.__name__ = qualname
    setattr(unavailable, _DESCRIPTOR, True)
    return Task(func=unavailable, backend=backend, queue_name=queue)


on_taskqueue(_install)

__all__ = ["TaskqBackend", "task_name"]

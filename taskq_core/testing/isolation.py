"""Isolated apps: a TaskQueue whose broker is a fresh in-memory one, or Redis under a key
prefix of its own that is deleted afterwards, wrapped in a :class:`TestBroker`."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from ..app import TaskQueue, make_broker
from ..brokers.base import Broker
from ..clock import Clock
from ..errors import TaskqError, UnusedConfigWarning
from ..settings import Settings
from ..task import Task
from .broker import TestBroker
from .records import Enqueued, Recorder

#: the isolated apps in use, innermost last: what the module-level assertions look at
_active: list[TaskQueue] = []


class NotIsolated(TaskqError, RuntimeError):
    """A test helper was given an app that is not isolated (or none is active)."""


def broker_of(app: TaskQueue | None = None) -> TestBroker:
    """The test broker of ``app``, or of the innermost isolated app."""
    if app is None:
        if not _active:
            raise NotIsolated(
                "no isolated TaskQueue is active: use the taskq_app fixture, or "
                "`with taskq_core.testing.isolated(tq):`"
            )
        app = _active[-1]
    broker = app.broker
    if not isinstance(broker, TestBroker):
        raise NotIsolated(
            f"{app!r} is not isolated for tests: use the taskq_app fixture, or "
            "`with taskq_core.testing.isolated(tq):`"
        )
    return broker


def recorder(app: TaskQueue | None = None) -> Recorder:
    """What ``app`` (default: the innermost isolated app) has enqueued."""
    return broker_of(app).recorder


@contextlib.contextmanager
def isolated(
    app: TaskQueue | None = None,
    *,
    redis_url: str | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> Iterator[TaskQueue]:
    """An app for one test.

    Without ``app``, a new ``TaskQueue`` (``options`` are its settings). With ``app``, that
    very object (the one your code imports) gets a broker of its own for the duration, and
    its broker, clock and settings are put back afterwards. The broker is a fresh
    ``memory://`` one, or with ``redis_url`` Redis under a random key prefix whose keys are
    deleted at the end. ``clock`` (say a :class:`~taskq_core.testing.TestClock`) becomes
    the app's clock.
    """
    prefix = f"taskq-test-{uuid.uuid4().hex[:12]}"
    url = redis_url or "memory://"
    saved: tuple[Broker, Clock, Settings] | None = None
    if app is None:
        with warnings.catch_warnings():
            # a test's app ignores TASKQ_* variables on purpose: their warning is noise here
            warnings.simplefilter("ignore", UnusedConfigWarning)
            app = TaskQueue(url, key_prefix=prefix, clock=clock, **options)
        inner = app.broker
    else:
        if options:
            raise TypeError(f"options apply to a new app only, got {sorted(options)}")
        if isinstance(app.broker, TestBroker):
            raise NotIsolated(f"{app!r} is already isolated")
        saved = (app.broker, app.clock, app.settings)
        # custom metrics updated before go to the app's own broker, never to the test's
        _settle_metrics(app)
        app.settings = app.settings.model_copy(update={"broker_url": url, "key_prefix": prefix})
        app.clock = clock or app.clock
        inner = make_broker(app.settings)
    app.broker = cast(Broker, TestBroker(inner, app))
    _active.append(app)
    try:
        yield app
    finally:
        _active.remove(app)
        # and those the test updated go to its broker, never to the app's own
        _settle_metrics(app)
        try:
            if redis_url is not None:
                _delete_prefix(redis_url, prefix)
        finally:
            inner.close()
            if saved is not None:
                app.broker, app.clock, app.settings = saved
            else:
                app.broker = inner


def _settle_metrics(app: TaskQueue) -> None:
    """Write the app's buffered custom metrics to its current broker (a failure is logged)
    and drop whatever could not be written, so none crosses into another broker."""
    app.metrics.close()
    app.metrics.discard()


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for n in range(0, len(keys), 500):
            client.delete(*keys[n : n + 500])
    finally:
        client.close()


@contextlib.contextmanager
def eager(app: TaskQueue | None = None) -> Iterator[TaskQueue]:
    """Run every task ``app`` (default: the innermost isolated app) enqueues inline, in the
    caller, for the duration: ``enqueue`` returns once the task has run, its exception
    propagates, and the handle's ``result()`` is its return value. Delays and ETAs are not
    waited for; retries are not made; worker middleware does not run."""
    broker = broker_of(app)
    before, broker.eager = broker.eager, True
    try:
        yield broker.app
    finally:
        broker.eager = before


def enqueued(task: Task[Any, Any] | str | None = None) -> list[Enqueued]:
    """What the innermost isolated app has enqueued (only ``task``'s, if given)."""
    return recorder().enqueued(task)


def assert_enqueued(
    task: Task[Any, Any] | str,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    count: int | None = None,
) -> list[Enqueued]:
    """:meth:`Recorder.assert_enqueued` on the innermost isolated app."""
    __tracebackhide__ = True  # pytest: failures point at the caller
    return recorder().assert_enqueued(task, args=args, kwargs=kwargs, queue=queue, count=count)


def assert_not_enqueued(
    task: Task[Any, Any] | str,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
) -> None:
    """:meth:`Recorder.assert_not_enqueued` on the innermost isolated app."""
    __tracebackhide__ = True  # pytest: failures point at the caller
    recorder().assert_not_enqueued(task, args=args, kwargs=kwargs, queue=queue)

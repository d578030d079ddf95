"""OpenTelemetry traces (extra ``otel``): a span for each enqueue and one for each execution,
linked through the W3C trace context that the message carries.

::

    from taskq_core.observability.tracing import instrument

    instrument(tq)                     # or set monitoring.tracing = true
    instrument(tq, tracer_provider=provider)

``instrument`` is idempotent. The enqueue span (``send <task>``, kind PRODUCER) is a child of
the span current where ``enqueue`` is called, or of the ``traceparent`` header of the web
request being handled (the web integrations carry it), and its context is written into
the message. The execution span (``process <task>``, kind CONSUMER) is its child and is
current while the task runs, so spans the task opens nest under it; an exception the task
raises is recorded on it. OpenTelemetry is imported only here, only when asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra
from ..middleware import Middleware

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from ..app import TaskQueue
    from ..message import Message

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError:  # pragma: no cover - exercised without the extra installed
    _HAVE_OTEL = False
else:
    _HAVE_OTEL = True


def _require() -> None:
    if not _HAVE_OTEL:
        raise MissingExtra("taskq_core.observability.tracing", "otel")


def _attributes(task: str, queue: str, task_id: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "taskq",
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": task_id,
        "taskq.task": task,
    }


class EnqueueTracer:
    """Called by ``TaskQueue`` for each message it builds: opens the enqueue span and
    returns the trace context the message will carry."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def __call__(
        self, carried: dict[str, str] | None, task: str, queue: str, task_id: str
    ) -> dict[str, str] | None:
        context = None
        if not trace.get_current_span().get_span_context().is_valid and carried:
            # no span here, but the web request brought a traceparent: continue that trace
            context = propagate.extract(carried)
        with self.tracer.start_as_current_span(
            f"send {task}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes=_attributes(task, queue, task_id, "send"),
        ):
            out = dict(carried or {})
            propagate.inject(out)
        return out


class TracingMiddleware(Middleware):
    """Runs each task inside its execution span."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def wrap(self, message: Message) -> Iterator[None]:
        parent = propagate.extract(message.trace or {})
        attributes = _attributes(message.task, message.queue, message.id, "process")
        attributes["taskq.attempt"] = message.attempt + 1
        with self.tracer.start_as_current_span(
            f"process {message.task}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            yield


def instrument(app: TaskQueue, tracer_provider: TracerProvider | None = None) -> None:
    """Trace ``app``'s enqueues and executions; a second call does nothing."""
    _require()
    if app.trace_hook is not None:
        return
    from .. import __version__

    tracer = trace.get_tracer("taskq", __version__, tracer_provider=tracer_provider)
    app.trace_hook = EnqueueTracer(tracer)
    app.middleware.append(TracingMiddleware(tracer))


def uninstrument(app: TaskQueue) -> None:
    """Stop tracing ``app`` (workers made before keep their middleware)."""
    app.trace_hook = None
    app.middleware[:] = [m for m in app.middleware if not isinstance(m, TracingMiddleware)]

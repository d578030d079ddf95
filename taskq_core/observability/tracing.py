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

from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra
from ..middleware import Middleware

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ..app import TaskQueue
    from ..message import Message

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
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
    """Called by ``TaskQueue`` for each message it builds: makes the enqueue span and
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
        span = self.tracer.start_span(
            f"send {task}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes=_attributes(task, queue, task_id, "send"),
        )
        # the span is injected, not made current: nothing runs inside it but the inject
        out = dict(carried or {})
        propagate.inject(out, context=trace.set_span_in_context(span, context))
        span.end()
        return out


class TracingMiddleware(Middleware):
    """Runs each task inside its execution span."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def wrap(self, message: Message) -> _ProcessSpan:
        return _ProcessSpan(self.tracer, message)


class _ProcessSpan:
    """The execution span, current while the task runs: what ``start_as_current_span``
    does, as a plain class rather than two generator context managers (a third of the
    tracing cost of a short task went into those)."""

    __slots__ = ("_message", "_span", "_token", "_tracer")

    def __init__(self, tracer: Tracer, message: Message) -> None:
        self._tracer = tracer
        self._message = message

    def __enter__(self) -> None:
        m = self._message
        attributes = _attributes(m.task, m.queue, m.id, "process")
        attributes["taskq.attempt"] = m.attempt + 1
        span = self._span = self._tracer.start_span(
            f"process {m.task}",
            context=propagate.extract(m.trace) if m.trace else None,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span: Span = self._span
        otel_context.detach(self._token)
        try:
            # as use_span does: an Exception is an error; BaseExceptions (a cancelled
            # coroutine, GeneratorExit) are not
            if isinstance(exc, Exception) and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()


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

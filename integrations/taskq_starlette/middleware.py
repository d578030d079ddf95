"""Pure-ASGI middleware opening a taskq request scope around each HTTP request."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from taskq_core import TaskQueue
from taskq_core.asgi import run_in_request_scope


class TaskqMiddleware:
    """Correlation id, trace context and (with ``defer=True``) deferred enqueues per request.

    ``Middleware(TaskqMiddleware, tq=tq, defer=True)`` or
    ``app.add_middleware(TaskqMiddleware, tq=tq)``. The correlation id comes from
    ``X-Request-ID`` or ``traceparent`` (else a new one), reaches every task enqueued while
    the request is handled (``taskq_core.context.current_trace()`` inside the task) and is
    echoed in the ``X-Request-ID`` response header. With ``defer=True`` enqueues are held and
    sent in one round trip just before a response below 400 starts; they are dropped for 4xx
    and 5xx responses and when the handler raises.
    """

    def __init__(self, app: ASGIApp, *, tq: TaskQueue, defer: bool = False) -> None:
        self.app = app
        self.tq = tq
        self.defer = defer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await run_in_request_scope(
            self.tq, self.app, scope, receive, send, defer=self.defer, route_of=_route_template
        )


def _route_template(scope: Scope) -> str | None:
    # Starlette's router leaves the matched route in the scope (FastAPI's APIRoute too)
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None

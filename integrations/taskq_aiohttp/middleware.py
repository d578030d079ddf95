"""An aiohttp middleware opening a taskq request scope around each request."""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from taskq_core import TaskQueue
from taskq_core.asgi import send_held
from taskq_core.web import RequestScope, active_scope


def middleware(tq: TaskQueue, *, defer: bool = False) -> Middleware:
    """``web.Application(middlewares=[taskq_aiohttp.middleware(tq, defer=True)])``.

    The correlation id comes from ``X-Request-ID`` or ``traceparent`` (else a new one),
    reaches every task enqueued while the request is handled and is echoed in the
    ``X-Request-ID`` response header. With ``defer=True`` enqueues are held and sent in one
    round trip before the response is returned, if its status is below 400 (a raised
    ``HTTPFound`` and the like count as success); 4xx and 5xx responses and exceptions drop
    them.
    """

    @web.middleware
    async def taskq_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        outer = active_scope()
        if outer is not None and outer.app is tq:
            return await handler(request)  # installed twice: the outer layer does the work
        async with RequestScope(tq, request.headers, route=_route(request), defer=defer) as rs:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                # aiohttp raises redirects and errors as responses
                await _finish(rs, exc.status, exc.headers)
                raise
            await _finish(rs, response.status, None if response.prepared else response.headers)
            return response

    return taskq_middleware


async def _finish(rs: RequestScope, status: int, headers: MutableMapping[str, str] | None) -> None:
    """Send or drop held tasks by status, before the response leaves; echo the id."""
    if status >= 400:
        rs.succeeded = False
    elif rs.pending:
        await send_held(rs)
    if headers is not None and "X-Request-ID" not in headers:
        headers["X-Request-ID"] = rs.correlation_id


def _route(request: web.Request) -> str | None:
    # the matched resource's template (/orders/{id}), for the per-route enqueue counters
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None

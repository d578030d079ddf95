"""The request scope as plain ASGI, shared by the Starlette (and FastAPI), Litestar and Quart
adapters.

No framework is imported: :func:`run_in_request_scope` wraps one ASGI ``http`` call in a
:class:`~taskq_core.web.RequestScope` and watches the ``http.response.start`` message go by:

- the correlation id is echoed in an ``X-Request-ID`` response header (unless the
  application set one itself);
- with ``defer=True``, tasks held while the handler ran are sent in one round trip *before*
  the response starts, so a client that reads a task id from the response can rely on the
  task being queued; if sending fails the exception propagates and the client gets a 500
  instead of a success for work that was never queued;
- a status of 400 or more marks the request failed: its held tasks are dropped. 4xx counts
  as a failure on purpose: a request refused for bad input must not leave work behind.
  Tasks enqueued after the response started (background tasks) are sent when the call
  returns, unless it raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .clock import script_ms
from .web import RequestScope, active_scope

if TYPE_CHECKING:
    from .app import TaskQueue

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = b"x-request-id"


def scope_headers(scope: Scope) -> dict[str, str]:
    """The request headers of an ASGI scope, names lower-cased (the last of repeats wins)."""
    return {
        bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
        for k, v in scope.get("headers") or ()
    }


async def send_held(scope: RequestScope) -> None:
    """Send the tasks a deferring scope holds now, in one round trip."""
    items = scope.take_pending()
    if items:
        await scope.app.broker.enqueue_async(items, script_ms(scope.app.clock))


async def run_in_request_scope(
    tq: TaskQueue,
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    defer: bool = False,
    route_of: Callable[[Scope], str | None] = lambda scope: None,
) -> None:
    """Call ``app`` inside a request scope of ``tq``; see the module docstring.

    ``route_of(scope)`` names the matched route template after the call (frameworks route
    inside the call), for the per-route enqueue counters. A scope of the same TaskQueue
    already active (the middleware installed twice) makes this a plain call.
    """
    outer = active_scope()
    if scope["type"] != "http" or (outer is not None and outer.app is tq):
        await app(scope, receive, send)
        return
    rs = RequestScope(tq, scope_headers(scope), defer=defer)
    echo = (_REQUEST_ID, rs.correlation_id.encode("latin-1"))

    async def watch(message: Message) -> None:
        if message["type"] == "http.response.start":
            if int(message["status"]) >= 400:
                rs.succeeded = False
            elif rs.pending:
                await send_held(rs)
            headers = list(message.get("headers") or ())
            if not any(bytes(k).lower() == _REQUEST_ID for k, _ in headers):
                message = {**message, "headers": [*headers, echo]}
        await send(message)

    async with rs:
        try:
            await app(scope, receive, watch)
        finally:
            rs.route = route_of(scope) or rs.route

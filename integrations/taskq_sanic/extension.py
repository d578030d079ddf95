"""The Sanic extension: ``TaskQ(app, tq)`` or ``TaskQ(tq=tq).init_app(app)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, cast
from urllib.parse import unquote

from sanic import HTTPResponse, Request, Sanic
from sanic.constants import HTTP_METHODS
from sanic.exceptions import ServerError
from sanic.response import BaseHTTPResponse

from taskq_core import TaskQueue, Worker
from taskq_core.asgi import send_held
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body_async
from taskq_core.http.routes import RouteTable
from taskq_core.web import RequestScope, active_scope

log = logging.getLogger("taskq.sanic")


class TaskQ:
    """The Sanic extension; see the package docstring.

    ``auth(request) -> bool`` decides who may use the routes that change state (retry,
    purge, cancel) and the read routes that can carry private data (results, errors, hosts,
    configuration), which answer 401 without it; ``request.native`` is the Sanic request.
    ``public_read=False`` (default: the ``http.public_read`` setting) puts the aggregate
    read routes behind ``auth`` too; ``expose_private`` (default: the ``http.expose_private``
    setting) opens private route classes (docs/security.md). ``queues`` and ``concurrency``
    go to the embedded workers.
    """

    def __init__(
        self,
        app: Sanic[Any, Any] | None = None,
        tq: TaskQueue | None = None,
        *,
        prefix: str | None = None,
        auth: AuthCallable | None = None,
        defer: bool = False,
        embedded_workers: int = 0,
        public_read: bool | None = None,
        expose_private: Sequence[str] | None = None,
        queues: list[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        if tq is None:
            raise TypeError("TaskQ needs the TaskQueue: TaskQ(app, tq) or TaskQ(tq=tq)")
        self.tq = tq
        self.table = RouteTable(
            tq,
            prefix=prefix,
            auth=auth,
            public_read=public_read,
            expose_private=expose_private,
        )
        self.defer = defer
        # built (and so validated) now: a bad count fails at import, not at server start
        self.embedded = EmbeddedWorkers(
            tq, embedded_workers, queues=queues, concurrency=concurrency
        )
        if app is not None:
            self.init_app(app)

    @property
    def workers(self) -> list[Worker]:
        """The embedded workers running in this process (empty outside the server's run)."""
        return self.embedded.workers

    def init_app(self, app: Sanic[Any, Any]) -> None:
        """Install on ``app``: the routes, the middleware and the server listeners.

        A second call for the same app (from this extension or another) does nothing.
        """
        if getattr(app.ctx, "taskq", None) is not None:
            log.debug("taskq is already installed on %s", app.name)
            return
        app.ctx.taskq = self
        root = self.table.prefix  # normalised: "" or "/x" without a trailing slash
        # every method Sanic's router knows; stream=True so that the body is not read before
        # the core says how much of it the route takes
        for uri, name in [(root or "/", "taskq_root"), (root + "/<path:path>", "taskq_path")]:
            app.add_route(
                self._handler(), uri, HTTP_METHODS, strict_slashes=False, stream=True, name=name
            )
        # the scope opens before any other middleware and closes after every other one (Sanic
        # runs request middleware by falling priority and response middleware by rising
        # priority), so it sees the status that goes out
        app.register_middleware(self._open_scope, "request", priority=1_000_000)
        app.register_middleware(self._odd_method, "request", priority=999_999)
        app.register_middleware(self._finish, "response", priority=1_000_000)
        app.register_listener(self._start, "before_server_start")
        app.register_listener(self._stop, "after_server_stop")

    # -- the routes

    def _under_prefix(self, path: str) -> str | None:
        root = self.table.prefix
        if path == root or path.startswith(root + "/"):
            return path[len(root) :] or "/"
        return None

    def _handler(self) -> Callable[..., Coroutine[Any, Any, HTTPResponse]]:
        # a function of its own per route: Sanic marks its handlers with attributes, which
        # a bound method cannot take
        async def taskq_routes(request: Request, path: str = "") -> HTTPResponse:
            return await self._answer(request, "/" + path)

        return taskq_routes

    async def _odd_method(self, request: Request) -> HTTPResponse | None:
        # a request Sanic's router refused (a method it does not know, as PROPFIND) comes
        # through the request middleware without a route: under the prefix, the core answers
        path = self._under_prefix(request.path)
        if request.route is not None or path is None:
            return None
        return await self._answer(request, path)

    async def _answer(self, request: Request, path: str) -> HTTPResponse:
        # Sanic routes on the raw path: decoded here, as every other framework hands it over
        path = unquote(path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        # routed first: only a route that takes a body has it read, and no more than its cap
        limit = self.table.read_limit(request.method, path, headers)
        core = CoreRequest(
            method=request.method,
            path=path,
            query={k: list(v) for k, v in request.args.items()},
            headers=headers,
            body=await read_body_async(_chunks(request), limit),
            native=request,
        )
        out = await self.table.dispatch_async(core)
        return HTTPResponse(out.body, status=out.status, headers=out.headers, content_type=None)

    # -- the middleware

    async def _open_scope(self, request: Request) -> None:
        outer = active_scope()
        if outer is not None and outer.app is self.tq:
            return  # an enclosing scope of the same TaskQueue (a nested app) already counts
        # request middleware runs in the handler's task, so the scope reaches the handler
        scope = RequestScope(self.tq, dict(request.headers.items()), defer=self.defer)
        scope.__enter__()
        request.ctx.taskq_scope = scope

    async def _finish(self, request: Request, response: BaseHTTPResponse) -> HTTPResponse | None:
        scope: RequestScope | None = getattr(request.ctx, "taskq_scope", None)
        if scope is None:
            return None
        request.ctx.taskq_scope = None
        if request.uri_template is not None:
            scope.route = request.uri_template
        replaced: HTTPResponse | None = None
        try:
            if response.status >= 400:
                # 4xx too: a request refused for bad input must not leave work behind
                scope.succeeded = False
            elif scope.pending:
                await send_held(scope)  # before the response goes out
        except Exception:
            # Sanic logs what a response middleware raises and sends the response anyway:
            # a success for work never queued. Answer 500 instead, as the other adapters do
            log.exception("could not send the tasks held by %s %s", request.method, request.path)
            scope.succeeded = False
            replaced = response = request.app.error_handler.default(
                request, ServerError("The tasks of this request could not be queued.")
            )
        finally:
            await scope.__aexit__(None, None, None)
        response.headers.setdefault("X-Request-ID", scope.correlation_id)
        return replaced

    # -- the listeners

    async def _start(self, app: Sanic[Any, Any]) -> None:
        await self.embedded.start()

    async def _stop(self, app: Sanic[Any, Any]) -> None:
        try:
            await self.embedded.stop()  # running tasks get the grace period
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await self.tq.aclose()


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    # the body as it arrives (a stream route, or a request no route took)
    stream: Any = cast(Any, request.stream)  # Sanic's Stream protocol omits read()
    if stream is None:
        return
    while (chunk := await stream.read()) is not None:
        yield chunk


__all__ = ["TaskQ"]

"""The Litestar plugin: routes, middleware and lifespan in ``on_app_init`` (like ChannelsPlugin)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from litestar import Request, Response, route
from litestar.config.app import AppConfig
from litestar.enums import HttpMethod, ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.plugins import InitPlugin
from litestar.types import ASGIApp, Receive, Scope, Send

from taskq_core import TaskQueue, Worker
from taskq_core.asgi import run_in_request_scope
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.routes import RouteTable

#: every method goes to the core, so 404, 405 and 400 are decided there, as in every framework
METHODS = [HttpMethod(m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")]


class TaskqPlugin(InitPlugin, AbstractAsyncContextManager["TaskqPlugin"]):
    """``Litestar(plugins=[TaskqPlugin(tq, prefix="/tasks", auth=None, defer=False)])``.

    ``prefix`` defaults to the ``http.prefix`` setting, ``/tasks``. ``auth(request) -> bool``
    decides who may use the routes that change state (retry, purge, cancel);
    ``request.native`` is the Litestar request. ``public_read=False`` (default: the
    ``http.public_read`` setting) puts the read routes behind ``auth`` too. ``defer=True``
    holds the tasks a request enqueues until its response is known to succeed.
    ``embedded_workers`` workers (default 0) run in the server's loop while the app runs.
    """

    def __init__(
        self,
        tq: TaskQueue,
        *,
        prefix: str | None = None,
        auth: AuthCallable | None = None,
        defer: bool = False,
        embedded_workers: int = 0,
        public_read: bool | None = None,
        queues: list[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.tq = tq
        self.table = RouteTable(tq, prefix=prefix, auth=auth, public_read=public_read)
        self.defer = defer
        # built (and so validated) now: a bad count fails at import, not at server start
        self._spec = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)
        self._entered: list[EmbeddedWorkers] = []

    @property
    def workers(self) -> list[Worker]:
        """The embedded workers running now (empty outside the application's lifespan)."""
        return self._entered[-1].workers if self._entered else []

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the route handler, the middleware and this plugin as a lifespan context."""
        if any(isinstance(p, TaskqPlugin) and p.tq is self.tq for p in app_config.lifespan):
            return app_config  # installed twice: the first one does the work
        app_config.route_handlers.append(self._route_handler())
        app_config.middleware.append(_TaskqMiddleware(self.tq, self.defer))
        app_config.lifespan.append(self)
        return app_config

    def _route_handler(self) -> HTTPRouteHandler:
        table = self.table

        async def taskq_routes(request: Request[Any, Any, Any]) -> Response[bytes]:
            core = CoreRequest(
                method=request.method,
                path="/" + str(request.path_params.get("path", "")).lstrip("/"),
                query=request.query_params.dict(),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                native=request,
            )
            out = await table.dispatch_async(core)
            # the core's content-type goes in the headers, where Litestar keeps it as is (as
            # media_type it would append a second "; charset=utf-8" to text/plain)
            return Response(
                out.body,
                status_code=out.status,
                headers=out.headers,
                media_type=out.headers.get("content-type"),
            )

        prefix = table.prefix  # normalised: "" or "/x" without a trailing slash
        paths = [prefix + "/{path:path}"]
        if prefix:
            paths.insert(0, prefix)  # the bare prefix too, as in the other frameworks
        return route(paths, http_method=METHODS, name="taskq", include_in_schema=False)(
            taskq_routes
        )

    async def __aenter__(self) -> TaskqPlugin:
        # a fresh handle on each start: handles of one TaskQueue share one pool
        s = self._spec
        w = EmbeddedWorkers(s.app, s.count, queues=s.queues, concurrency=s.concurrency)
        await w.start()
        self._entered.append(w)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._entered:
                await self._entered.pop().stop()
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await self.tq.aclose()


class _TaskqMiddleware(ASGIMiddleware):
    """Opens a taskq request scope around each HTTP request (see taskq_core.asgi)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, tq: TaskQueue, defer: bool) -> None:
        self.tq = tq
        self.defer = defer

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await run_in_request_scope(
            self.tq,
            cast(Any, next_app),
            cast(Any, scope),
            cast(Any, receive),
            cast(Any, send),
            defer=self.defer,
            route_of=_route_template,
        )


def _route_template(scope: Any) -> str | None:
    # Litestar routes before its middleware runs and leaves the template in the scope
    template = scope.get("path_template")
    return template if isinstance(template, str) and template else None

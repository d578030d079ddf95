"""The Litestar plugin: routes, middleware and lifespan in ``on_app_init`` (like ChannelsPlugin)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from litestar import Request, asgi
from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.handlers import ASGIRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.plugins import InitPlugin
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from taskq_core import TaskQueue, Worker
from taskq_core.asgi import run_in_request_scope
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import asgi_body_chunks, read_body_async
from taskq_core.http.routes import RouteTable


class TaskqPlugin(InitPlugin, AbstractAsyncContextManager["TaskqPlugin"]):
    """``Litestar(plugins=[TaskqPlugin(tq, prefix="/tasks", auth=None, defer=False)])``.

    ``prefix`` defaults to the ``http.prefix`` setting, ``/tasks``. ``auth(request) -> bool``
    decides who may use the routes that change state (retry, purge, cancel) and the read
    routes that can carry private data (results, errors, hosts, configuration);
    ``request.native`` is the Litestar request. ``public_read=False`` (default: the
    ``http.public_read`` setting) puts the aggregate read routes behind ``auth`` too;
    ``expose_private`` (default: the ``http.expose_private`` setting) opens private route
    classes (docs/security.md). ``defer=True``
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
        expose_private: Sequence[str] | None = None,
        queues: list[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
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

    def _route_handler(self) -> ASGIRouteHandler:
        table = self.table
        prefix = table.prefix  # normalised: "" or "/x" without a trailing slash

        async def taskq_routes(scope: Scope, receive: Receive, send: Send) -> None:
            # a mount hands over the path below the prefix in scope["path"] ("/" for the
            # bare prefix), whatever the method
            request: Request[Any, Any, Any] = Request(scope, receive)
            path = str(scope["path"])
            full = bytes(scope.get("raw_path") or b"").decode("latin-1").split("?", 1)[0]
            if prefix and full and full != prefix and not full.startswith(prefix + "/"):
                # Litestar's mount matches /tasksx too: that path is not below the prefix
                path = full
            headers = {k.lower(): v for k, v in request.headers.items()}
            # routed first: only a route that takes a body has it read, up to its cap
            limit = table.read_limit(request.method, path, headers)
            core = CoreRequest(
                method=request.method,
                path=path,
                query=request.query_params.dict(),
                headers=headers,
                # receive, not request.stream(): the latter wants an HTTP route handler
                body=await read_body_async(asgi_body_chunks(receive), limit),
                native=request,
            )
            out = await table.dispatch_async(core)
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out.headers.items()]
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": out.status,
                "headers": raw,
            }
            await send(start)
            body: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": out.body,
                "more_body": False,
            }
            await send(body)

        # an ASGI mount, not an HTTP route: Litestar routes every method to a mount (an
        # HTTP handler takes a fixed list), so the core answers odd methods as elsewhere
        return asgi(prefix or "/", is_mount=True, copy_scope=True, name="taskq")(taskq_routes)

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

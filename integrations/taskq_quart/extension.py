"""The Quart extension: ``TaskQ(app, tq)`` or ``TaskQ(tq=tq).init_app(app)``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from quart import Quart, Response, current_app, request
from werkzeug.routing import PathConverter

from taskq_core import TaskQueue, Worker
from taskq_core.asgi import ASGIApp, Receive, Scope, Send, run_in_request_scope
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body_async
from taskq_core.http.routes import ANY_PATH, RouteTable

log = logging.getLogger("taskq.quart")

#: where a before_request hook leaves the matched rule for the middleware, which runs
#: outside Quart's request context
_ROUTE_KEY = "taskq.route"


class _AnyPath(PathConverter):
    """Everything after the prefix, newlines included (``routes.ANY_PATH``)."""

    regex = r"[^/]" + ANY_PATH


@dataclass(slots=True)
class TaskqState:
    """What ``app.extensions["taskq"]`` holds."""

    ext: TaskQ
    tq: TaskQueue
    table: RouteTable
    workers: EmbeddedWorkers


class TaskQ:
    """The Quart extension; see the package docstring.

    ``auth(request) -> bool`` decides who may use the routes that change state (retry,
    purge, cancel) and the read routes that can carry private data (results, errors, hosts,
    configuration), which answer 401 without it; ``request.native`` is the Quart request.
    ``public_read=False`` (default: the ``http.public_read`` setting) puts the aggregate
    read routes behind ``auth`` too; ``expose_private`` (default: the ``http.expose_private``
    setting) opens private route classes (docs/security.md). ``queues`` and ``concurrency``
    go to the embedded workers.
    """

    def __init__(
        self,
        app: Quart | None = None,
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
        self._spec = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Install on ``app``: the routes, the middleware and the serving hooks.

        A second call for the same app (from this extension or another) does nothing.
        """
        if "taskq" in app.extensions:
            log.debug("taskq is already installed on %s", app.name)
            return
        s = self._spec
        workers = EmbeddedWorkers(s.app, s.count, queues=s.queues, concurrency=s.concurrency)
        app.extensions["taskq"] = TaskqState(self, self.tq, self.table, workers)
        root = self.table.prefix  # normalised: "" or "/x" without a trailing slash
        # rules without a method list, added to the map directly (add_url_rule always sets
        # one): every method reaches the core, which answers odd ones as everywhere
        # (a path converter of our own: werkzeug's stops at a newline; routes.ANY_PATH)
        app.url_map.converters["taskq_path"] = _AnyPath
        rules = [(root or "/", "taskq.root"), (root + "/<taskq_path:path>", "taskq.path")]
        for path, endpoint in rules:
            app.url_map.add(app.url_rule_class(path, endpoint=endpoint, strict_slashes=False))
            app.view_functions[endpoint] = _dispatch
        app.before_request(_note_route)
        app.before_serving(workers.start)
        app.after_serving(_stopper(workers, self.tq))
        # Quart's documented way to add ASGI middleware (the app stays a Quart instance)
        inner: ASGIApp = cast(Any, app.asgi_app)
        cast(Any, app).asgi_app = _Middleware(inner, self.tq, self.defer)

    def state(self, app: Quart | None = None) -> TaskqState:
        """The extension's state on ``app`` (default: the current app)."""
        found: TaskqState | None = (app or current_app).extensions.get("taskq")
        if found is None:
            raise RuntimeError("taskq is not installed on this Quart app")
        return found

    def workers(self, app: Quart | None = None) -> list[Worker]:
        """The embedded workers running now (empty outside the serving hooks)."""
        return self.state(app).workers.workers


def _stopper(workers: EmbeddedWorkers, tq: TaskQueue) -> Any:
    async def stop() -> None:
        try:
            await workers.stop()  # running tasks get the grace period
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await tq.aclose()

    return stop


async def _dispatch(path: str = "") -> Response:
    state: TaskqState = current_app.extensions["taskq"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    # routed first: only a route that takes a body has it read, and no more than its cap
    limit = state.table.read_limit(request.method, "/" + path, headers)
    core = CoreRequest(
        method=request.method,
        path="/" + path,
        query={k: request.args.getlist(k) for k in request.args},
        headers=headers,
        body=await read_body_async(request.body, limit) if limit else b"",
        native=request._get_current_object(),  # type: ignore[attr-defined]
    )
    out = await state.table.dispatch_async(core)
    response: Response = current_app.response_class(out.body, status=out.status)
    # exactly the core's headers: no default text/html content type where it set none
    del response.headers["Content-Type"]
    for name, value in out.headers.items():
        response.headers[name] = value
    return response


async def _note_route() -> None:
    rule = request.url_rule
    if rule is not None:
        cast(dict[str, Any], request.scope)[_ROUTE_KEY] = rule.rule


class _Middleware:
    """Wraps ``app.asgi_app`` in a taskq request scope (see taskq_core.asgi)."""

    def __init__(self, app: ASGIApp, tq: TaskQueue, defer: bool) -> None:
        self.app = app
        self.tq = tq
        self.defer = defer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await run_in_request_scope(
            self.tq, self.app, scope, receive, send, defer=self.defer, route_of=_route_of
        )


def _route_of(scope: Scope) -> str | None:
    route = scope.get(_ROUTE_KEY)
    return route if isinstance(route, str) else None


__all__ = ["TaskQ", "TaskqState"]

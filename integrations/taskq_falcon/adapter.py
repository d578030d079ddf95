"""The sink, the request middleware and the embedded workers; one translation for both
flavours of Falcon (the WSGI ``falcon.App`` and the ASGI ``falcon.asgi.App``)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import falcon
import falcon.asgi

from taskq_core import TaskQueue, Worker
from taskq_core import asgi as async_send
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http import Response as CoreResponse
from taskq_core.http.access import read_body, read_body_async
from taskq_core.http.routes import RouteTable
from taskq_core.web import RequestScope, active_scope
from taskq_core.wsgi import WorkerThread, send_held

#: the embedded worker threads of this process's WSGI installs (one per TaskQueue, shared
#: by every install of it), for the gunicorn hooks; each app keeps its own alive
_threads: weakref.WeakSet[WorkerThread] = weakref.WeakSet()


class TaskqMiddleware:
    """Falcon middleware: correlation id, trace context, per-route counts and (with
    ``defer=True``) enqueues sent only once the response succeeded; see the package
    docstring. Works in both flavours (the ASGI methods carry Falcon's ``_async`` suffix);
    in an ASGI app it also runs ``embedded_workers`` workers from startup to shutdown."""

    def __init__(
        self,
        tq: TaskQueue,
        *,
        defer: bool = False,
        embedded_workers: int = 0,
        queues: list[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.tq = tq
        self.defer = defer
        # built (and so validated) now: a bad count fails at import, not at server start
        self._spec = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)
        self._pool: EmbeddedWorkers | None = None
        #: WSGI: the embedded worker thread, held here so that it lives as long as the app
        self.thread: WorkerThread | None = None
        #: the route table of the sink that :func:`install` added with this middleware
        self.table: RouteTable | None = None

    @property
    def workers(self) -> list[Worker]:
        """The embedded workers running now (either flavour)."""
        if self.thread is not None:
            return self.thread.workers
        return self._pool.workers if self._pool is not None else []

    def start_workers(self) -> None:
        """WSGI: start the embedded worker thread now, in the serving process (gunicorn:
        :func:`post_worker_init` does it). An ASGI app starts its workers at startup."""
        if self.thread is not None:
            self.thread.start()

    def stop_workers(self) -> None:
        """WSGI: stop the embedded workers (running tasks get the grace period)."""
        if self.thread is not None:
            self.thread.stop()

    def _open(self, req: falcon.Request | falcon.asgi.Request) -> None:
        outer = active_scope()
        if outer is not None and outer.app is self.tq:
            return  # installed twice: the outer layer does the work
        rs = RequestScope(self.tq, dict(req.headers), defer=self.defer)
        rs.__enter__()
        req.context.taskq_scope = (self, rs)

    def _finishing(self, req: Any, resp: Any, succeeded: bool) -> RequestScope | None:
        """This layer's scope, marked failed for an error or a status of 400 or more."""
        owner, rs = getattr(req.context, "taskq_scope", (None, None))
        if owner is not self or not isinstance(rs, RequestScope):
            return None
        if not succeeded or falcon.http_status_to_code(resp.status) >= 400:
            rs.succeeded = False  # 4xx too: a request refused must not leave work behind
        if resp.get_header("X-Request-ID") is None:
            resp.set_header("X-Request-ID", rs.correlation_id)
        rs.route = req.uri_template or rs.route
        return rs

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Open the request scope (WSGI)."""
        self._open(req)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        """Send or drop the held tasks before the response goes out; close the scope."""
        rs = self._finishing(req, resp, req_succeeded)
        if rs is not None:
            try:
                if rs.succeeded and rs.pending:
                    send_held(rs)  # if it fails, Falcon answers 500: no success for lost work
            finally:
                rs.__exit__(None, None, None)  # the thread serves other requests next

    async def process_request_async(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Open the request scope (ASGI)."""
        self._open(req)

    async def process_response_async(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        """Send or drop the held tasks before the response starts; close the scope."""
        rs = self._finishing(req, resp, req_succeeded)
        if rs is not None:
            try:
                if rs.succeeded and rs.pending:
                    await async_send.send_held(rs)
            finally:
                await rs.__aexit__(None, None, None)

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """ASGI lifespan startup: start the embedded workers in the server's loop."""
        s = self._spec
        # a fresh handle per startup; handles of one TaskQueue share one pool per loop
        self._pool = EmbeddedWorkers(s.app, s.count, queues=s.queues, concurrency=s.concurrency)
        await self._pool.start()

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """ASGI lifespan shutdown: stop the workers, close the loop's Redis client."""
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                await pool.stop()
        finally:
            await self.tq.aclose()  # redis-py's asyncio connections belong to this loop


def install(
    app: falcon.App[Any, Any],
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
) -> TaskqMiddleware:
    """Add taskq's routes (a sink under ``prefix``) and :class:`TaskqMiddleware` to ``app``;
    return the middleware (its ``table``, ``workers``, ``start_workers()``...).

    ``auth(request) -> bool`` decides who may use the routes that change state (retry,
    purge, cancel) and the read routes that can carry private data (results, errors, hosts,
    configuration); without it they answer 401. ``public_read=False`` (default: the
    ``http.public_read`` setting) puts the aggregate read routes behind ``auth`` too;
    ``expose_private`` (default: the ``http.expose_private`` setting) opens private route
    classes (docs/security.md). ``embedded_workers``: see the package docstring.
    """
    table = RouteTable(
        tq,
        prefix=prefix,
        auth=auth,
        public_read=public_read,
        expose_private=expose_private,
    )
    is_asgi = isinstance(app, falcon.asgi.App)
    middleware = TaskqMiddleware(
        tq, defer=defer, embedded_workers=embedded_workers, queues=queues, concurrency=concurrency
    )
    # the bare prefix too, and nothing that merely starts like it (/tasksfoo)
    pattern = re.compile(re.escape(table.prefix) + r"(?P<taskq_path>/.*)?\Z", re.DOTALL)
    if is_asgi:
        app.add_sink(_async_sink(table), pattern)
    else:
        app.add_sink(_sync_sink(table), pattern)
        thread = next((t for t in _threads if t.tq is tq), None)
        if thread is None and embedded_workers:
            thread = WorkerThread(tq, embedded_workers, queues=queues, concurrency=concurrency)
            _threads.add(thread)
        middleware.thread = thread
    middleware.table = table
    app.add_middleware(middleware)
    return middleware


def _core_request(req: Any, path: str, headers: dict[str, str], body: bytes) -> CoreRequest:
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(req.query_string, keep_blank_values=True):
        query.setdefault(k, []).append(v)
    return CoreRequest(
        method=req.method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        native=req,
    )


def _respond(resp: Any, out: CoreResponse) -> None:
    resp.status = out.status
    resp.data = out.body
    for name, value in out.headers.items():
        resp.set_header(name, value)


def _sync_sink(table: RouteTable) -> Any:
    def taskq_sink(req: falcon.Request, resp: falcon.Response, taskq_path: str | None) -> None:
        path, headers = taskq_path or "/", _lower(req)
        # routed first: only a route that takes a body has it read, and no more than its cap
        limit = table.read_limit(req.method, path, headers)
        body = read_body(req.bounded_stream.read, limit) if limit else b""
        _respond(resp, table.dispatch(_core_request(req, path, headers, body)))

    return taskq_sink


def _async_sink(table: RouteTable) -> Any:
    async def taskq_sink(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        ws: object = None,
        taskq_path: str | None = None,
    ) -> None:
        if ws is not None:
            return  # taskq has no WebSocket route: Falcon closes the connection
        path, headers = taskq_path or "/", _lower(req)
        limit = table.read_limit(req.method, path, headers)
        body = await read_body_async(req.stream, limit)
        _respond(resp, await table.dispatch_async(_core_request(req, path, headers, body)))

    return taskq_sink


def _lower(req: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in req.headers.items()}


def post_worker_init(worker: object) -> None:
    """gunicorn hook (``post_worker_init = taskq_falcon.post_worker_init`` in
    gunicorn.conf.py): start the embedded workers of every WSGI install in this worker
    process, after the fork and before it serves a request; the master runs none."""
    for thread in list(_threads):
        thread.start()


def worker_exit(server: object, worker: object) -> None:
    """gunicorn hook (``worker_exit = taskq_falcon.worker_exit``): stop them when the worker
    process exits (running tasks get the grace period; atexit would do it too)."""
    for thread in list(_threads):
        thread.stop()

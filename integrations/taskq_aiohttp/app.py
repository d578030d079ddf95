"""The sub-application: the core's route table behind one catch-all route, and its lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from taskq_core import TaskQueue
from taskq_core.embedded import EmbeddedWorkers
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body_async
from taskq_core.http.routes import ANY_PATH, RouteTable

TASKQ = web.AppKey("taskq", TaskQueue)
ROUTE_TABLE = web.AppKey("taskq_route_table", RouteTable)
EMBEDDED = web.AppKey("taskq_embedded", EmbeddedWorkers)


def create_app(
    tq: TaskQueue,
    auth: AuthCallable | None = None,
    embedded_workers: int = 0,
    *,
    prefix: str | None = None,
    public_read: bool | None = None,
    expose_private: Sequence[str] | None = None,
    queues: list[str] | None = None,
    concurrency: int | None = None,
) -> web.Application:
    """The sub-application to mount with ``app.add_subapp(prefix, ...)``.

    ``prefix`` only goes into taskq's OpenAPI document and index: pass the one you mount at
    (default: the ``http.prefix`` setting, ``/tasks``). ``auth(request) -> bool`` decides
    who may use the routes that change state (retry, purge, cancel) and the read routes that
    can carry private data (results, errors, hosts, configuration); ``request.native`` is
    the aiohttp request. ``public_read=False`` (default: the ``http.public_read`` setting)
    puts the aggregate read routes behind ``auth`` too; ``expose_private`` (default: the
    ``http.expose_private`` setting) opens private route classes (docs/security.md).
    ``embedded_workers`` workers (default 0) run
    in the server's loop from start-up to shutdown.
    """
    sub = web.Application()
    sub[TASKQ] = tq
    sub[ROUTE_TABLE] = RouteTable(
        tq,
        prefix=prefix,
        auth=auth,
        public_read=public_read,
        expose_private=expose_private,
    )
    sub[EMBEDDED] = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)
    # every method, and the bare prefix too: 404, 405 and 400 are decided by the core
    sub.router.add_route("*", "", _dispatch)
    sub.router.add_route("*", "/{path:" + ANY_PATH + "}", _dispatch)
    sub.cleanup_ctx.append(_lifecycle)
    return sub


async def _dispatch(request: web.Request) -> web.Response:
    query: dict[str, list[str]] = {}
    for k, v in request.query.items():
        query.setdefault(k, []).append(v)
    table = request.app[ROUTE_TABLE]
    path = "/" + request.match_info.get("path", "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    # routed first: only a route that takes a body has it read, and no more than its cap
    limit = table.read_limit(request.method, path, headers)
    core = CoreRequest(
        method=request.method,
        path=path,
        query=query,
        headers=headers,
        body=await read_body_async(request.content.iter_any(), limit),
        native=request,
    )
    out = await table.dispatch_async(core)
    return web.Response(body=out.body, status=out.status, headers=out.headers)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    workers = app[EMBEDDED]
    await workers.start()
    try:
        yield
    finally:
        try:
            await workers.stop()
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await app[TASKQ].aclose()

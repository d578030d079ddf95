"""The core's route table mounted as Starlette routes: one catch-all under the prefix."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body_async
from taskq_core.http.routes import ANY_PATH, RouteTable


class _AnyPath(Convertor[str]):
    """Everything after the prefix, newlines included (``routes.ANY_PATH``): Starlette's
    own ``path`` stops at a newline and answers with its text 404."""

    regex = ANY_PATH

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("taskq_path", _AnyPath())


def routes(
    tq: TaskQueue,
    prefix: str | None = None,
    auth: AuthCallable | None = None,
    *,
    public_read: bool | None = None,
    expose_private: Sequence[str] | None = None,
) -> list[BaseRoute]:
    """Starlette routes serving taskq's monitoring and admin API under ``prefix``.

    ``prefix`` defaults to the ``http.prefix`` setting, ``/tasks``. ``auth(request) -> bool``
    decides who may use the routes that change state (retry, purge, cancel) and the read
    routes that can carry private data (results, errors, hosts, configuration); without it
    they answer 401. ``request.native`` is the Starlette request. ``public_read=False``
    (default: the ``http.public_read`` setting) puts the aggregate read routes behind
    ``auth`` too; ``expose_private`` (default: the ``http.expose_private`` setting) opens
    private route classes (docs/security.md).
    """
    table = RouteTable(
        tq,
        prefix=prefix,
        auth=auth,
        public_read=public_read,
        expose_private=expose_private,
    )
    clean = table.prefix  # normalised: "" or "/x" without a trailing slash
    # an ASGI app rather than a function: Starlette then routes every method to it (for a
    # function it defaults to GET), and the core answers odd methods as everywhere
    endpoint = _Endpoint(table)
    found: list[BaseRoute] = [Route(clean + "/{path:taskq_path}", endpoint, name="taskq")]
    if clean:
        # the bare prefix too, so /tasks and /tasks/ are one path without a redirect
        found.insert(0, Route(clean, endpoint, name="taskq_root"))
    return found


class _Endpoint:
    def __init__(self, table: RouteTable) -> None:
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = "/" + str(request.path_params.get("path", ""))
        headers = {k.lower(): v for k, v in request.headers.items()}
        # routed first: only a route that takes a body has it read, and no more than its cap
        limit = self.table.read_limit(request.method, path, headers)
        core = CoreRequest(
            method=request.method,
            path=path,
            query=_multi(request.query_params.multi_items()),
            headers=headers,
            body=await read_body_async(request.stream(), limit),
            native=request,
        )
        out = await self.table.dispatch_async(core)
        await Response(out.body, status_code=out.status, headers=out.headers)(scope, receive, send)


def _multi(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for k, v in items:
        query.setdefault(k, []).append(v)
    return query

"""The core's route table mounted as Starlette routes: one catch-all under the prefix."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.routes import RouteTable

#: every method goes to the core, so 404, 405 and 400 are decided there, as in every framework
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes(
    tq: TaskQueue,
    prefix: str | None = None,
    auth: AuthCallable | None = None,
    *,
    public_read: bool | None = None,
) -> list[BaseRoute]:
    """Starlette routes serving taskq's monitoring and admin API under ``prefix``.

    ``prefix`` defaults to the ``http.prefix`` setting, ``/tasks``. ``auth(request) -> bool``
    decides who may use the routes that change state (retry, purge, cancel); without it they
    answer 401. ``request.native`` is the Starlette request. ``public_read=False`` (default:
    the ``http.public_read`` setting) puts the read routes behind ``auth`` too.
    """
    table = RouteTable(tq, prefix=prefix, auth=auth, public_read=public_read)
    clean = table.prefix  # normalised: "" or "/x" without a trailing slash

    async def endpoint(request: Request) -> Response:
        core = CoreRequest(
            method=request.method,
            path="/" + str(request.path_params.get("path", "")),
            query=_multi(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
            native=request,
        )
        out = await table.dispatch_async(core)
        return Response(out.body, status_code=out.status, headers=out.headers)

    found: list[BaseRoute] = [
        Route(clean + "/{path:path}", endpoint, methods=METHODS, name="taskq")
    ]
    if clean:
        # the bare prefix too, so /tasks and /tasks/ are one path without a redirect
        found.insert(0, Route(clean, endpoint, methods=METHODS, name="taskq_root"))
    return found


def _multi(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for k, v in items:
        query.setdefault(k, []).append(v)
    return query

"""The one view behind ``taskq_django.urls``: every request goes to the core's route table."""

from __future__ import annotations

import weakref

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body
from taskq_core.http.routes import RouteTable

from .conf import get_auth, get_taskqueue

_Key = tuple[str, AuthCallable | None, bool, tuple[str, ...]]
_tables: weakref.WeakKeyDictionary[TaskQueue, dict[_Key, RouteTable]] = weakref.WeakKeyDictionary()


def _table(tq: TaskQueue, prefix: str, auth: AuthCallable | None) -> RouteTable:
    http = tq.settings.http
    tables = _tables.setdefault(tq, {})
    key = (prefix, auth, http.public_read, tuple(http.expose_private))
    table = tables.get(key)
    if table is None:
        table = tables[key] = RouteTable(tq, prefix=prefix, auth=auth)
    return table


@csrf_exempt
def dispatch(request: HttpRequest, path: str = "") -> HttpResponse:
    """Forward the request to taskq's route table; its answer goes back unchanged.

    CSRF: the view is exempt from Django's check because the core makes the equivalent one
    for every route that changes state, in every framework alike (docs/security.md,
    "Cross-site requests"): a JSON body is required (an HTML form cannot send one, and a
    script on another site cannot without a CORS preflight), and a request whose ``Origin``
    or ``Sec-Fetch-Site`` names another site is refused. So a refusal is taskq's JSON error,
    as elsewhere, not Django's HTML page, and API clients need no CSRF token. Read routes
    change nothing.
    """
    tq = get_taskqueue()
    mount = request.path_info[: len(request.path_info) - len(path)]
    table = _table(tq, mount.rstrip("/") or "/", get_auth())
    method = request.method or "GET"
    headers = {k.lower(): v for k, v in request.headers.items()}
    # routed first: only a route that takes a body has it read, and no more than its cap
    limit = table.read_limit(method, "/" + path, headers)
    core = CoreRequest(
        method=method,
        path="/" + path,
        query={k: request.GET.getlist(k) for k in request.GET},
        headers=headers,
        body=read_body(request.read, limit) if limit else b"",
        native=request,
    )
    out = table.dispatch(core)
    response = HttpResponse(out.body, status=out.status)
    # exactly the core's headers: no default text/html content type where it set none
    del response["Content-Type"]
    for name, value in out.headers.items():
        response[name] = value
    return response

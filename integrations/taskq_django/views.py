"""The one view behind ``taskq_django.urls``: every request goes to the core's route table."""

from __future__ import annotations

import weakref

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.routes import RouteTable

from .conf import get_auth, get_taskqueue

_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_tables: weakref.WeakKeyDictionary[
    TaskQueue, dict[tuple[str, AuthCallable | None, bool], RouteTable]
] = weakref.WeakKeyDictionary()


def _table(tq: TaskQueue, prefix: str, auth: AuthCallable | None) -> RouteTable:
    public_read = tq.settings.http.public_read
    tables = _tables.setdefault(tq, {})
    key = (prefix, auth, public_read)
    table = tables.get(key)
    if table is None:
        table = tables[key] = RouteTable(tq, prefix=prefix, auth=auth, public_read=public_read)
    return table


@csrf_exempt
def dispatch(request: HttpRequest, path: str = "") -> HttpResponse:
    """Forward the request to taskq's route table; its answer goes back unchanged.

    CSRF: the routes that change state need the ``AUTH`` callable, which usually checks a
    header token, so the view is exempt; but a request that carries cookies and no
    ``Authorization`` header (a browser session) still goes through Django's CSRF check.
    """
    if request.method not in _SAFE and request.COOKIES and "authorization" not in request.headers:
        refused = _csrf_refusal(request)
        if refused is not None:
            return refused
    tq = get_taskqueue()
    mount = request.path_info[: len(request.path_info) - len(path)]
    table = _table(tq, mount.rstrip("/") or "/", get_auth())
    core = CoreRequest(
        method=request.method or "GET",
        path="/" + path,
        query={k: request.GET.getlist(k) for k in request.GET},
        headers={k.lower(): v for k, v in request.headers.items()},
        body=request.body,
        native=request,
    )
    out = table.dispatch(core)
    response = HttpResponse(out.body, status=out.status)
    # exactly the core's headers: no default text/html content type where it set none
    del response["Content-Type"]
    for name, value in out.headers.items():
        response[name] = value
    return response


def _csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    check = CsrfViewMiddleware(lambda r: HttpResponse())
    check.process_request(request)
    refused = check.process_view(request, lambda r: HttpResponse(), (), {})
    return refused if isinstance(refused, HttpResponse) else None

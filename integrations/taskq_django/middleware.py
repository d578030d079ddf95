"""``taskq_django.middleware.TaskqMiddleware``: a taskq request scope around each request."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.db import transaction
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from taskq_core import TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.clock import script_ms
from taskq_core.web import RequestScope, active_scope
from taskq_core.wsgi import send_held

from .conf import get_taskqueue, read_conf
from .workers import start_workers


class TransactionScope(RequestScope):
    """A request scope whose held enqueues follow the database transaction.

    With ``defer=True``, tasks enqueued while a transaction is open (``atomic()`` or
    ``ATOMIC_REQUESTS``) are sent by ``transaction.on_commit`` and dropped if it rolls back:
    once the data they refer to is committed they go, whatever the response. The others
    are held until the response succeeded, like in every framework.
    """

    def hold(self, items: list[EnqueueItem]) -> None:
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(partial(_send, self.app, items))
        else:
            super().hold(items)


def _send(tq: TaskQueue, items: list[EnqueueItem]) -> None:
    tq.broker.enqueue(items, script_ms(tq.clock))


class TaskqMiddleware:
    """Correlation id, trace context, per-route counts and (``DEFER_ENQUEUE``) deferred
    enqueues for every request. It also starts the embedded workers, if any and not yet
    running: a fallback for servers taskq does not recognise (``taskq_core.prefork``).

    The correlation id comes from ``X-Request-ID`` or ``traceparent`` (else a new one),
    reaches every task enqueued while the request is handled and is echoed in the
    ``X-Request-ID`` response header. Held tasks are sent in one round trip just before a
    response below 400 goes out, and dropped for 4xx and 5xx (a request refused for bad
    input must not leave work behind).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        conf = read_conf()
        tq = get_taskqueue()
        if conf.options.embedded_workers:
            start_workers()
        outer = active_scope()
        if outer is not None and outer.app is tq:
            return self.get_response(request)  # installed twice: the outer layer counts
        with TransactionScope(
            tq, dict(request.headers.items()), defer=conf.options.defer_enqueue
        ) as scope:
            response = self.get_response(request)
            match = request.resolver_match
            if match is not None and match.route:
                scope.route = "/" + match.route
            if response.status_code >= 400:
                scope.succeeded = False
            elif scope.pending:
                send_held(scope)
            if not response.has_header("X-Request-ID"):
                response["X-Request-ID"] = scope.correlation_id
        return response

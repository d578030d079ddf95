"""The route table behind one Tornado handler, and the request-scope base class."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import tornado.web
from tornado.iostream import StreamClosedError

from taskq_core import TaskQueue
from taskq_core.asgi import send_held
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.routes import RouteTable
from taskq_core.web import RequestScope, active_scope

log = logging.getLogger("taskq.tornado")
_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _EveryMethod(tuple[str, ...]):
    """Tornado answers a method outside ``SUPPORTED_METHODS`` with its own 405; the core
    decides here (405 with ``Allow``, 400 for a method it does not know), as everywhere."""

    def __contains__(self, method: object) -> bool:
        return True


@tornado.web.stream_request_body  # Tornado would parse (and 400) form bodies itself
class TaskqHandler(tornado.web.RequestHandler):
    """Serves taskq's routes: every method and path under the prefix goes to the core."""

    SUPPORTED_METHODS = _EveryMethod()

    def initialize(self, table: RouteTable) -> None:
        self.table = table
        self._limit = 0
        self._body = bytearray()

    def check_xsrf_cookie(self) -> None:
        """No-op: the core checks requests to routes that change state itself (JSON bodies
        only, same site only, then ``auth``), alike in every framework."""

    def compute_etag(self) -> None:
        """None: no ETag, no 304, exactly the core's headers."""

    async def prepare(self) -> None:
        path = (self.path_args or [""])[0] or "/"
        headers = {k.lower(): v for k, v in self.request.headers.get_all()}
        self._core = CoreRequest(
            method=self.request.method or "GET",
            path=path,
            query=_multi(self.request.query),
            headers=headers,
            native=self.request,
        )
        # routed first: only a route that takes a body has it read, and no more than its cap
        self._limit = self.table.read_limit(self._core.method, path, headers)
        if self._core.method not in _VERBS:
            # Tornado calls a method named like the verb after the body: an odd one (the
            # core answers 405 or 400) is answered now, and Tornado then closes the
            # connection, as it does for any answer sent before the request was read
            self.set_header("Connection", "close")
            await self._forward(b"")

    def data_received(self, chunk: bytes) -> None:
        room = self._limit - len(self._body)
        if room > 0:
            self._body += chunk[:room]

    async def _with_body(self, *args: str) -> None:
        await self._forward(bytes(self._body))

    # answered once the body is read (kept only by a route that takes one: admin ones)
    get = head = post = put = patch = delete = options = _with_body

    async def _forward(self, body: bytes) -> None:
        out = await self.table.dispatch_async(replace(self._core, body=body))
        self.set_status(out.status)
        self.clear_header("Content-Type")  # exactly the core's headers, not text/html
        for name, value in out.headers.items():
            self.set_header(name, value)
        await self.finish(out.body)


def _multi(query_string: str) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(k, []).append(v)
    return query


def routes(
    tq: TaskQueue,
    prefix: str | None = None,
    auth: AuthCallable | None = None,
    *,
    public_read: bool | None = None,
    expose_private: Sequence[str] | None = None,
) -> list[tuple[str, type[TaskqHandler], dict[str, Any]]]:
    """The rule serving taskq's monitoring and admin API under ``prefix`` (default: the
    ``http.prefix`` setting, ``/tasks``), to add to the Application's handlers.

    ``auth(request) -> bool`` decides who may use the routes that change state (retry,
    purge, cancel) and the read routes that can carry private data (results, errors, hosts,
    configuration); without it they answer 401. ``public_read=False`` (default: the
    ``http.public_read`` setting) puts the aggregate read routes behind ``auth`` too;
    ``expose_private`` (default: the ``http.expose_private`` setting) opens private route
    classes (docs/security.md).
    """
    table = RouteTable(
        tq,
        prefix=prefix,
        auth=auth,
        public_read=public_read,
        expose_private=expose_private,
    )
    return [(re.escape(table.prefix) + r"(/.*)?", TaskqHandler, {"table": table})]


class TaskqRequestHandler(tornado.web.RequestHandler):
    """Base class of application handlers whose requests run inside a taskq request scope
    (see the package docstring); the Application settings ``taskq`` (the TaskQueue) and
    ``taskq_defer`` configure it. ``taskq_route`` names the handler in the per-route enqueue
    counters (default: the class name)."""

    taskq_route: str | None = None
    _taskq_scope: RequestScope | None = None
    _taskq_release: asyncio.Future[None] | None = None

    async def _execute(
        self, transforms: list[tornado.web.OutputTransform], *args: bytes, **kwargs: bytes
    ) -> None:
        # the one method that runs a whole request as one coroutine: the scope's context
        # variables are set and reset in the same context around prepare, the verb and finish
        tq: TaskQueue | None = self.settings.get("taskq")
        outer = active_scope()
        if tq is None or (outer is not None and outer.app is tq):
            await super()._execute(transforms, *args, **kwargs)
            return
        route = self.taskq_route or type(self).__name__
        defer = bool(self.settings.get("taskq_defer", False))
        async with RequestScope(tq, dict(self.request.headers), route=route, defer=defer) as rs:
            self._taskq_scope = rs
            await super()._execute(transforms, *args, **kwargs)
            if self._taskq_release is not None:
                await self._taskq_release  # the held tasks, then the response, went out

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Before the response ends: the id echoed (unless flushed already), and held tasks
        sent (status below 400) or dropped; the response waits for them (a client reading a
        task id from it finds the task queued)."""
        rs = self._taskq_scope
        if self._taskq_release is not None:
            return self._taskq_release  # Tornado's own finish() after the handler's
        if rs is None:
            return super().finish(chunk)
        if self.get_status() >= 400:
            rs.succeeded = False  # 4xx too: a request refused must not leave work behind
        if not self._headers_written and "X-Request-ID" not in self._headers:
            self.set_header("X-Request-ID", rs.correlation_id)
        if not (rs.succeeded and rs.pending):
            return super().finish(chunk)
        if chunk is not None:
            self.write(chunk)
        self._taskq_release = asyncio.ensure_future(self._send_then_finish(rs))
        return self._taskq_release

    async def _send_then_finish(self, rs: RequestScope) -> None:
        try:
            await send_held(rs)
        except Exception:
            # a 500 rather than a success for work that was never queued
            log.exception("taskq: sending the tasks this request held failed")
            rs.succeeded = False
            if not self._headers_written:  # after an early flush the status is gone
                self.clear()
                self.set_status(500)
                self.set_header("X-Request-ID", rs.correlation_id)
        try:
            await super().finish()
        except StreamClosedError:
            log.debug("taskq: the client left before the response was sent")

"""Request scopes: what every web integration's middleware does, written once.

A :class:`RequestScope` wraps one HTTP request. It takes the correlation id from
``X-Request-ID`` (or the trace id of ``traceparent``), else makes one, and carries it with
the W3C trace context into every task enqueued while the request is handled. With
``defer=True`` those enqueues are held and sent in one round trip once the response
succeeded (or, in Django, once the transaction commits), and dropped if it failed. It also
counts enqueues per route (``TaskQueue.broker.read_counters("routes")``).

Adapters::

    scope = RequestScope(tq, headers, route="/orders", defer=True)
    with scope:                     # or: async with scope
        response = handle(request)
        scope.succeeded = response.status_code < 400
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING

from .brokers.base import EnqueueItem
from .clock import script_ms
from .context import reset_trace, set_trace

if TYPE_CHECKING:
    from .app import TaskQueue

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

#: the scope of the request being handled in this context, if any
_active: ContextVar[RequestScope | None] = ContextVar("taskq_request_scope", default=None)


def correlation_id(headers: Mapping[str, str]) -> str:
    """``X-Request-ID`` if it is sane, else the trace id of ``traceparent``, else new."""
    rid = headers.get("x-request-id", "").strip()
    if rid and _REQUEST_ID.fullmatch(rid):
        return rid
    m = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip())
    if m:
        return m.group(1)
    return uuid.uuid4().hex


def active_scope() -> RequestScope | None:
    """The request scope active in this context, if any."""
    return _active.get()


class RequestScope:
    """One web request's context for the tasks it enqueues; see the module docstring."""

    def __init__(
        self,
        app: TaskQueue,
        headers: Mapping[str, str],
        *,
        route: str | None = None,
        defer: bool = False,
    ) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        self.app = app
        self.route = route or "unknown"
        self.defer = defer
        self.correlation_id = correlation_id(lower)
        self.trace: dict[str, str] = {"correlation_id": self.correlation_id}
        for name in ("traceparent", "tracestate"):
            if lower.get(name):
                self.trace[name] = lower[name][:512]
        self.pending: list[EnqueueItem] = []
        self.enqueued = 0
        self.succeeded = True
        self._trace_token: object = None
        self._scope_token: Token[RequestScope | None] | None = None

    # -- entering and leaving

    def _enter(self) -> None:
        self._trace_token = set_trace(self.trace)
        self._scope_token = _active.set(self)

    def _leave(self, error: BaseException | None) -> list[EnqueueItem]:
        """Restore the context; the held items to send (none if the request failed)."""
        if error is not None:
            self.succeeded = False
        reset_trace(self._trace_token)
        if self._scope_token is not None:
            _active.reset(self._scope_token)
            self._scope_token = None
        if not self.succeeded:
            self.pending.clear()
        items, self.pending = self.pending, []
        return items

    def __enter__(self) -> RequestScope:
        self._enter()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        items = self._leave(e)
        if items:
            self.app.broker.enqueue(items, script_ms(self.app.clock))
        if self.enqueued:
            self.app.broker.incr_counters("routes", {self.route: self.enqueued})

    async def __aenter__(self) -> RequestScope:
        self._enter()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        items = self._leave(e)
        if items:
            await self.app.broker.enqueue_async(items, script_ms(self.app.clock))
        if self.enqueued:
            await self.app.broker.incr_counters_async("routes", {self.route: self.enqueued})

    # -- used by TaskQueue.enqueue_many

    def hold(self, items: list[EnqueueItem]) -> None:
        """Keep items to send when the request ends (called by ``TaskQueue``)."""
        self.pending.extend(items)

    def note(self, n: int) -> None:
        """Count enqueues made (or held) during the request."""
        self.enqueued += n

    def take_pending(self) -> list[EnqueueItem]:
        """Remove and return the held items (Django sends them from ``on_commit``)."""
        items, self.pending = self.pending, []
        return items

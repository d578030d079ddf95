"""The neutral request, response and route types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as an adapter hands it over.

    ``path`` is relative to the mount point (``/health``, ``/jobs/abc``); ``query`` maps each
    parameter to its values; header names are lower-case; ``native`` is the framework's own
    request object, passed only to the application's auth callable.
    """

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    native: Any = None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {"content-type": "application/json", "cache-control": "no-store"}
        all_headers.update(headers or {})
        return cls(status, all_headers, orjson.dumps(data))

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> Response:
        return cls(
            status, {"content-type": content_type, "cache-control": "no-store"}, text.encode()
        )


#: ``auth(request) -> bool``: may this request use the routes that change state, and the
#: read routes that can carry private data?
AuthCallable = Callable[[Request], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One route: ``path`` may hold ``{name}`` parameters. Keyword-only: every field is
    named where a route is declared (``taskq_core/http/handlers.py``).

    ``admin`` routes change state: POST, their arguments in a JSON body (``query`` declares
    its fields), auth and the cross-site check (:mod:`taskq_core.http.access`). ``exposes``
    names what a read route can reveal (see ``access.CLASSES``); it is served without auth
    only when the application opened every one of them. ``exactly_one`` names body fields of
    which exactly one must be given.
    """

    method: str
    path: str
    name: str
    handler: Callable[..., Response]
    admin: bool = False
    summary: str = ""
    response_schema: dict[str, Any] | None = None
    #: the media types of a route that answers with something other than JSON (its
    #: ``response_schema`` is None): what the OpenAPI document declares for it
    content_types: tuple[str, ...] = ("text/plain", "application/openmetrics-text")
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    # private unless declared otherwise: a new route leaks nothing by default
    exposes: tuple[str, ...] = ("results", "errors", "hosts", "config")
    #: an admin route's body must give exactly one of these fields (a non-empty array, a
    #: true boolean): enforced by the dispatcher, and a ``oneOf`` in the OpenAPI document
    exactly_one: tuple[str, ...] = ()

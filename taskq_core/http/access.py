"""Who may call which route: route classes, the auth check and the cross-site checks.

Every read route names what it can reveal (``Route.exposes``):

- ``health``: up or down, and why; always open, for load balancers and probes;
- ``metrics``: cluster totals, per-queue and per-task counts and timings, Prometheus text;
  open unless ``http.public_read`` is false;
- ``results`` (task results), ``errors`` (exception messages, lists of failed tasks),
  ``hosts`` (host names, pids, worker ids, alerts naming workers) and ``config``
  (configuration, versions, the task registry): private, served only to requests the
  application's auth callable admits, unless ``http.expose_private`` opens the class.

A route is open when every class it exposes is open. Routes that change state (``admin``)
always need auth, and refuse what a browser could be tricked into sending from another
site (:func:`check_admin_request`): a body that is not JSON (415: an HTML form cannot send
``Content-Type: application/json``, and a script on another site cannot either without a
CORS preflight the application never grants) and a request whose ``Origin`` or
``Sec-Fetch-Site`` says it comes from another site (403). A request without those headers
is not a browser's and passes on to the auth check.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
)
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .types import Request, Route

if TYPE_CHECKING:
    from .types import AuthCallable

log = logging.getLogger("taskq.http")

#: every route class, in the order docs/security.md lists them
CLASSES = ("health", "metrics", "results", "errors", "hosts", "config")
#: the classes ``http.expose_private`` may open
PRIVATE = ("results", "errors", "hosts", "config")
#: largest request body an admin route reads (its JSON arguments); read routes read none
MAX_BODY = 64 * 1024
#: headers that carry credentials: a refusal with one of them is 403, without them 401
CREDENTIALS = ("authorization", "proxy-authorization", "cookie", "x-api-key")
#: Sec-Fetch-Site values of a request the user made on this site, or typed in (none)
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CHALLENGE = {"www-authenticate": 'Bearer realm="taskq"'}


class Refused(Exception):
    """A request refused before its handler runs: status, message, headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def open_classes(public_read: bool, expose_private: Iterable[str]) -> frozenset[str]:
    """The route classes served without auth under these settings."""
    opened = {"health", *expose_private}
    unknown = opened - set(CLASSES)
    if unknown:
        raise ValueError(f"expose_private: unknown route class {sorted(unknown)[0]!r}")
    if public_read:
        opened.add("metrics")
    return frozenset(opened)


def needs_auth(route: Route, opened: Collection[str]) -> bool:
    """Does ``route`` need the auth callable when the classes ``opened`` are open?"""
    # a route that declares nothing is private, not open
    return route.admin or not route.exposes or not all(c in opened for c in route.exposes)


def authorize(request: Request, auth: AuthCallable | None) -> None:
    """Raise :class:`Refused` unless ``auth`` admits ``request``: 401 without an auth callable
    or without credentials, 403 with credentials it refuses, 500 if it raised."""
    if auth is None:
        message = "this route needs the application's auth callable; none is set"
        raise Refused(401, message, _CHALLENGE)
    try:
        allowed = bool(auth(request))
    except Exception:
        log.exception("taskq auth callable failed")
        raise Refused(500, "the auth check failed; the server log has the details") from None
    if allowed:
        return
    if not any(request.headers.get(h) for h in CREDENTIALS):
        raise Refused(401, "credentials are required for this route", _CHALLENGE)
    raise Refused(403, "these credentials may not use this route")


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` header as a number (None if absent or not ASCII digits)."""
    raw = headers.get("content-length", "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


def read_limit(route: Route | None, headers: Mapping[str, str]) -> int:
    """How many bytes of the body an adapter should read for ``route``: none for a read
    route (or no route), none when the declared length is already too long (the core
    answers 413 from the header), else one more than :data:`MAX_BODY`, so that a body
    over the cap shows as one."""
    if route is None or not route.admin:
        return 0
    declared = declared_length(headers)
    if declared is not None and declared > MAX_BODY:
        return 0
    return MAX_BODY + 1


def read_body(read: Callable[[int], bytes], limit: int) -> bytes:
    """At most ``limit`` bytes from a blocking ``read(n)`` (a WSGI input, a Django request):
    what a sync adapter passes on, ``limit`` being :meth:`RouteTable.read_limit`."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def read_body_async(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes from an async stream of chunks (ASGI, aiohttp): it stops
    reading there, so a client cannot make the server buffer more."""
    if limit <= 0:
        return b""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


async def asgi_body_chunks(receive: Callable[[], Awaitable[Any]]) -> AsyncIterator[bytes]:
    """The chunks of an ASGI request body, read from ``receive`` as they come."""
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return  # the client went away
        yield bytes(message.get("body", b""))
        if not message.get("more_body"):
            return


def check_admin_request(request: Request) -> None:
    """The checks of a request to a route that changes state, before its credentials:
    cross-site (403), body size (413), content type (415). See the module docstring."""
    _check_same_site(request.headers)
    declared = declared_length(request.headers)
    if len(request.body) > MAX_BODY or (declared is not None and declared > MAX_BODY):
        raise Refused(413, f"the request body is over {MAX_BODY} bytes")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        shown = media[:60] or "none"
        raise Refused(
            415,
            f"this route takes its arguments as a JSON object with Content-Type: "
            f"application/json (got {shown})",
        )


def _check_same_site(headers: Mapping[str, str]) -> None:
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site and fetch_site not in _SAME_SITE_FETCH:
        raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:20]})")
    origin = headers.get("origin", "").strip()
    if not origin:
        return
    hosts = {_host_of("http", h) for h in _own_hosts(headers)}
    if _origin_host(origin) not in hosts:
        raise Refused(403, "cross-site request refused (its Origin is not this host)")


def _own_hosts(headers: Mapping[str, str]) -> list[str]:
    # a proxy may rewrite Host and keep the original in X-Forwarded-Host; a browser cannot
    # set that header on a cross-site request without a preflight, so trusting it is safe
    found = [headers.get("host", "")]
    forwarded = headers.get("x-forwarded-host", "")
    if forwarded:
        found.append(forwarded.split(",", 1)[0])
    return [h.strip().lower() for h in found if h.strip()]


def _origin_host(origin: str) -> str | None:
    if origin.lower() == "null":
        return None  # sandboxed frames, file: pages, some redirects: never this host
    try:
        parts = urlsplit(origin.lower())
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return _host_of(parts.scheme, parts.netloc)


def _host_of(scheme: str, netloc: str) -> str:
    """``host`` without a default port (``example.com:443`` is ``example.com``)."""
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        if port in _DEFAULT_PORTS.values():
            return host
        return netloc
    return netloc

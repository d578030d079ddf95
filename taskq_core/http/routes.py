"""The one route table (contract 4) and its neutral dispatcher.

::

    table = RouteTable(tq, prefix="/tasks", auth=is_admin)
    response = table.dispatch(Request("GET", "/metrics/queues", {"limit": ["10"]}))
    response = await table.dispatch_async(request)   # handler runs in a worker thread

Adapters mount one catch-all route under the prefix and forward every method and path, so
what follows is the same in every framework:

- a method the HTTP parsers do not know is 400 (aiohttp's server refuses it before any
  application sees it, so the others do the same); an unknown path is 404; a known path
  with another method is 405 with an ``Allow`` header (HEAD is served wherever GET is);
  a trailing slash does not matter;
- query parameters are checked against the route's declared parameters (types, bounds,
  patterns, integers in ASCII digits only; unknown names are refused): 400 naming it;
- admin routes (POST: retry, purge, cancel) refuse cross-site requests (403), bodies over
  64 KiB (413) and bodies that are not ``application/json`` (415), then need the
  application's ``auth`` callable: none configured, or a refusal to a request without
  credentials, is 401; a refusal to a request with credentials is 403. Their arguments are
  the fields of the JSON object, checked like query parameters;
- read routes that can carry private data (results, error messages, hosts, configuration)
  need the auth callable too unless ``expose_private`` opens their class; the aggregate
  ones need it with ``public_read=False``; the ``/health`` routes never do
  (:mod:`taskq_core.http.access`);
- a broker that does not answer is 503, anything unexpected 500 (logged here, with its
  traceback, never sent). Every body is JSON with a schema, except the Prometheus text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError

from ..redact import redact_text
from ..validation import MAX_QUEUE_NAME, QUEUE_NAME_PATTERN, TASK_ID_PATTERN, check_queue_name
from . import access
from .types import AuthCallable, Request, Response, Route

if TYPE_CHECKING:
    from ..app import TaskQueue

log = logging.getLogger("taskq.http")

#: a queue name and a task id as parameters: the rule the core applies on enqueue
#: (:mod:`taskq_core.validation`), so a name the core accepts is never refused here
QUEUE_PARAM: dict[str, Any] = {
    "type": "string",
    "pattern": QUEUE_NAME_PATTERN,
    "minLength": 1,
    "maxLength": MAX_QUEUE_NAME,
}
ID_PARAM: dict[str, Any] = {"type": "string", "pattern": TASK_ID_PATTERN}
#: what the adapters' catch-all route matches after the prefix: anything, newlines (``%0A``)
#: included. A framework's own "path" pattern stops at a newline and answers with its own
#: (HTML or text) 404, unlike every other path; ours hands it to the core, which answers it.
ANY_PATH = r"[\s\S]*"
#: path parameters, checked like query parameters
#: a dashboard asset's file name (taskq_core/dashboard/static)
ASSET_PARAM: dict[str, Any] = {"type": "string", "pattern": r"^[a-z]{1,40}\.(js|css)$"}
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": ID_PARAM,
    "queue": QUEUE_PARAM,
    "asset": ASSET_PARAM,
}
#: the methods llhttp (aiohttp's parser, and node's) accepts; aiohttp answers 400 to any
#: other before the application sees it, so every adapter does (CONNECT aside: no route)
KNOWN_METHODS = frozenset(
    ("ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET", "HEAD", "LINK", "LOCK",
     "M-SEARCH", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MOVE", "NOTIFY", "OPTIONS",
     "PATCH", "POST", "PROPFIND", "PROPPATCH", "PURGE", "PUT", "QUERY", "REBIND", "REPORT",
     "SEARCH", "SOURCE", "SUBSCRIBE", "TRACE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE")
)  # fmt: skip
_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}


class HttpError(Exception):
    """Raised by handlers and checks: becomes an error response."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"status": status, "error": _REASONS.get(status, "error"), "message": message}
    return Response.json(status, body, headers)


@dataclass(frozen=True, slots=True)
class RouteCall:
    """What a handler receives: the table (and so the app), the request, and the checked
    path and query parameters."""

    table: RouteTable
    request: Request
    params: dict[str, str]
    query: dict[str, Any]

    @property
    def app(self) -> TaskQueue:
        return self.table.app


def _compile(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(f"^{pattern}$")


def _check(name: str, raw: str, schema: dict[str, Any]) -> Any:
    """One value parsed and checked against a parameter schema; HttpError 400 if bad."""
    kind = schema.get("type", "string")
    value: Any = raw
    if kind == "integer":
        # [0-9], not \d: \d and int() take full-width and other non-ASCII digits
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise HttpError(400, f"parameter {name!r} must be an integer, got {raw[:40]!r}")
        value = int(raw)
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise HttpError(400, f"parameter {name!r} must be between {low} and {high}")
    elif kind == "boolean":
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise HttpError(400, f"parameter {name!r} must be true or false")
        value = lowered in ("true", "1", "yes")
    else:
        enum = schema.get("enum")
        if enum is not None and raw not in enum:
            raise HttpError(400, f"parameter {name!r} must be one of {', '.join(enum)}")
        pattern = schema.get("pattern")
        too_long = len(raw) > schema.get("maxLength", len(raw))
        if too_long or (pattern is not None and not re.fullmatch(pattern, raw)):
            raise HttpError(400, f"parameter {name!r} has an invalid value {raw[:40]!r}")
        if pattern == QUEUE_NAME_PATTERN and "@" in raw:
            # a routed queue in its one spelling (default@gpu.eu is default@eu.gpu)
            value = check_queue_name(raw)
    return value


def _refuse_unknown(route: Route, given: Iterable[str], what: str) -> None:
    """400 naming the arguments ``route`` does not declare (query parameters or body
    fields: ``what`` is the phrase, with ``{names}`` where they go)."""
    unknown = sorted(key for key in given if key not in route.query)
    if unknown:
        allowed = ", ".join(sorted(route.query)) or "none"
        names = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise HttpError(400, f"unknown {what.format(names=names)} (allowed: {allowed})")


def parse_query(route: Route, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """The route's declared query parameters, parsed, with defaults filled in."""
    _refuse_unknown(route, query, "query parameter {names}")
    out: dict[str, Any] = {}
    for name, spec in route.query.items():
        schema = spec["schema"]
        values = list(query.get(name, []))
        if not values:
            if spec.get("required"):
                raise HttpError(400, f"query parameter {name!r} is required")
            out[name] = schema.get("default")
            continue
        if schema.get("type") == "array":
            limit = schema.get("maxItems", 100)
            if len(values) > limit:
                raise HttpError(400, f"query parameter {name!r} takes at most {limit} values")
            out[name] = [_check(name, value, schema["items"]) for value in values]
        elif len(values) > 1:
            raise HttpError(400, f"query parameter {name!r} given more than once")
        else:
            out[name] = _check(name, values[0], schema)
    return out


def parse_body(route: Route, body: bytes) -> dict[str, Any]:
    """An admin route's arguments: the fields of the JSON object in ``body`` (an empty body
    is ``{}``), checked against the route's declared parameters with JSON types (integers,
    booleans, strings, arrays of them), with defaults filled in."""
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"the request body is not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object")
    _refuse_unknown(route, data, "field {names} in the body")
    out: dict[str, Any] = {}
    for name, spec in route.query.items():
        schema = spec["schema"]
        if name not in data or data[name] is None:
            if spec.get("required"):
                raise HttpError(400, f"field {name!r} is required")
            out[name] = schema.get("default")
        elif schema.get("type") == "array":
            values = data[name]
            if not isinstance(values, list):
                raise HttpError(400, f"field {name!r} must be an array")
            limit = schema.get("maxItems", 100)
            if len(values) > limit:
                raise HttpError(400, f"field {name!r} takes at most {limit} values")
            out[name] = [_check_json(name, value, schema["items"]) for value in values]
        else:
            out[name] = _check_json(name, data[name], schema)
    given = [name for name in route.exactly_one if out.get(name)]
    if route.exactly_one and len(given) != 1:
        options = " or ".join(_given_form(name, route.query[name]) for name in route.exactly_one)
        raise HttpError(400, f"give exactly one of {options}")
    return out


def _given_form(name: str, spec: dict[str, Any]) -> str:
    """How a field of an ``exactly_one`` rule counts as given, for its error message."""
    kind = spec["schema"].get("type")
    return f"{name}=[...] (one or more)" if kind == "array" else f"{name}=true"


def _check_json(name: str, value: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type", "string")
    expected = {"integer": int, "boolean": bool, "string": str}[kind]
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        # JSON Schema counts 31.0 as an integer (the document promises what it says), and a
        # JSON parser may hand one over as a float: the bounds below still apply
        value = int(value)
    # bool is an int in Python, not in JSON
    if not isinstance(value, expected) or (kind == "integer" and isinstance(value, bool)):
        raise HttpError(400, f"field {name!r} must be a JSON {kind}")
    if kind == "boolean":
        return value
    return _check(name, str(value), schema)


class RouteTable:
    """Every route of taskq's HTTP surface, and the neutral handler (see module docstring).

    ``prefix`` (default: ``http.prefix`` setting, ``/tasks``) is where adapters mount the
    table; it appears in the OpenAPI document and the index, not in ``Request.path``.
    """

    def __init__(
        self,
        app: TaskQueue,
        *,
        prefix: str | None = None,
        auth: AuthCallable | None = None,
        public_read: bool | None = None,
        expose_private: Sequence[str] | None = None,
    ) -> None:
        from .handlers import build_routes

        http = app.settings.http
        self.app = app
        raw = http.prefix if prefix is None else prefix
        self.prefix = "/" + raw.strip("/") if raw.strip("/") else ""
        self.auth = auth
        self.public_read = http.public_read if public_read is None else public_read
        exposed = http.expose_private if expose_private is None else expose_private
        self.expose_private = tuple(exposed)
        #: the route classes served without auth (see access.open_classes)
        self.open = access.open_classes(self.public_read, self.expose_private)
        self.routes: list[Route] = build_routes()
        self._compiled = [(route, _compile(route.path)) for route in self.routes]

    def __repr__(self) -> str:
        return f"RouteTable({self.prefix or '/'!r}, routes={len(self.routes)})"

    def dispatch(self, request: Request) -> Response:
        """Handle one request; never raises, never puts a traceback in the body."""
        response = self._answer(request)
        if request.method == "HEAD":
            # errors too: every server drops a HEAD body, so the core does, alike everywhere
            return Response(response.status, response.headers, b"")
        return response

    def _answer(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except (HttpError, access.Refused) as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except (RedisError, OSError) as exc:
            detail = redact_text(f"{type(exc).__name__}: {exc}")[:300]
            log.warning("taskq route %s: broker error: %s", request.path[:200], detail)
            # the type only: the text names the broker's host and port (the log has it)
            shown = type(exc).__name__
            return error_response(503, f"the broker did not answer ({shown}); see the server log")
        except Exception:
            log.exception("taskq route %s %s failed", request.method, request.path[:200])
            return error_response(500, "internal error; the server log has the details")

    async def dispatch_async(self, request: Request) -> Response:
        """:meth:`dispatch` in a worker thread, so broker calls never block the loop."""
        return await asyncio.to_thread(self.dispatch, request)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this table."""
        from .openapi import document

        return document(self)

    def public_path(self, route: Route) -> str:
        """Where ``route`` is served, as the index and the OpenAPI document name it: the
        prefix itself for the index (``/tasks``; ``/tasks/`` is the same path)."""
        return (self.prefix + route.path) if route.path != "/" else (self.prefix or "/")

    def needs_auth(self, route: Route) -> bool:
        """Does ``route`` need the auth callable in this table?"""
        return access.needs_auth(route, self.open)

    def read_limit(self, method: str, path: str, headers: Mapping[str, str]) -> int:
        """How many bytes of the request body an adapter should read (at most): 0 unless the
        request goes to a route that takes a body. Adapters read no more than this, and
        route first: no read route reads a body."""
        try:
            route, _ = self.match(method, path)
        except HttpError:
            return 0
        return access.read_limit(route, headers)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` and ``path`` and its path parameters; 400, 404 or 405."""
        if method not in KNOWN_METHODS:
            raise HttpError(400, f"unknown HTTP method {method[:20]!r}")
        path = "/" + path.strip("/") if path.strip("/") else "/"
        if len(path) > 2000:
            raise HttpError(404, "no such route")
        allowed: list[str] = []
        for route, pattern in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, found.groupdict()
            allowed.append(route.method)
        if not allowed:
            raise HttpError(404, f"no route {path[:200]!r} here; GET {self.prefix}/ lists them")
        if "GET" in allowed:
            allowed.append("HEAD")
        allow = ", ".join(sorted(set(allowed)))
        raise HttpError(405, f"{path[:200]} allows {allow}", {"allow": allow})

    def _dispatch(self, request: Request) -> Response:
        route, params = self.match(request.method, request.path)
        params = {name: _check(name, value, PATH_PARAMS[name]) for name, value in params.items()}
        if route.admin:
            access.check_admin_request(request)
        if self.needs_auth(route):
            access.authorize(request, self.auth)
        if route.admin:
            if request.query:
                raise HttpError(
                    400, "this route takes its arguments in a JSON body, not the query string"
                )
            query = parse_body(route, request.body)
        else:
            query = parse_query(route, request.query)
        return route.handler(RouteCall(self, request, params, query))

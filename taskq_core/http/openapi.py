"""The OpenAPI 3.1 document, generated from the route table: one description of the API
that all five framework integrations serve alike."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import schemas
from .routes import PATH_PARAMS

if TYPE_CHECKING:
    from .routes import RouteTable
    from .types import Route

#: routes whose 503 answer is their own report rather than an error
UNHEALTHY_BODY = frozenset({"health", "health_ready"})
_ERRORS = {
    "400": "A query or path parameter is invalid.",
    "401": "Credentials are required (or no auth callable is configured).",
    "403": "The credentials may not use this route.",
    "403_admin": "A cross-site request (Origin or Sec-Fetch-Site), or credentials that may "
    "not use this route.",
    "413": "The request body is over 64 KiB.",
    "415": "The body is not Content-Type: application/json.",
    "404": "No such route or resource.",
    "405": "The path exists but not with this method.",
    "409": "The task is in a state that does not allow this.",
    "500": "An unexpected error (logged on the server).",
    "503": "The broker did not answer, or the service is unhealthy.",
}


def _error(description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _operation(table: RouteTable, route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
        for name in re.findall(r"\{(\w+)\}", route.path)
    ]
    for name, spec in {} if route.admin else route.query.items():
        p: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": bool(spec.get("required")),
            "description": spec["description"],
            "schema": spec["schema"],
        }
        if spec["schema"].get("type") == "array":
            p.update(style="form", explode=True)
        params.append(p)
    if route.response_schema is None:
        # the Prometheus exposition (in the format the Accept header asks for), the
        # dashboard's page and its assets
        content = {media: {"schema": {"type": "string"}} for media in route.content_types}
    else:
        content = {"application/json": {"schema": route.response_schema}}
    responses: dict[str, Any] = {"200": {"description": route.summary, "content": content}}
    codes = ["400", "404", "405", "500", "503"]
    if table.needs_auth(route):
        codes += ["401", "403"]
    if route.admin:
        codes += ["413", "415"]
    if route.name in ("job_cancel", "job_abort"):
        codes.append("409")
    if route.name == "dashboard_asset":
        responses["304"] = {"description": "Not modified: the If-None-Match ETag matches."}
    for code in sorted(codes):
        key = "403_admin" if code == "403" and route.admin else code
        responses[code] = _error(_ERRORS[key])
    if route.name in UNHEALTHY_BODY:
        responses["503"] = {
            "description": "Unhealthy (or not ready): the same report, with status 503.",
            "content": content,
        }
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": ["admin" if route.admin else route.path.strip("/").split("/")[0] or "index"],
        "parameters": params,
        "responses": responses,
    }
    if route.admin:
        op["requestBody"] = _body(route)
    # an empty list overrides nothing here (no global requirement); it says "no auth"
    op["security"] = [{"taskqAuth": []}] if table.needs_auth(route) else []
    op["x-taskq-exposes"] = [] if route.admin else list(route.exposes)
    return op


def _body(route: Route) -> dict[str, Any]:
    """An admin route's JSON object of arguments (the fields its ``query`` declares)."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {**spec["schema"], "description": spec["description"]}
            for name, spec in route.query.items()
        },
        "required": [name for name, spec in route.query.items() if spec.get("required")],
    }
    if route.exactly_one:
        schema["oneOf"] = [_only(route, name) for name in route.exactly_one]
    return {
        # required: the Content-Type is, so a body (at least {}) always goes with it
        "required": True,
        "description": "Arguments as a JSON object (an empty body is {}); Content-Type: "
        "application/json is required, which a cross-site form cannot send.",
        "content": {"application/json": {"schema": schema}},
    }


def _only(route: Route, given: str) -> dict[str, Any]:
    """The ``oneOf`` branch of an ``exactly_one`` rule in which ``given`` alone is given: a
    non-empty array or a true boolean, every other field of the rule absent or empty."""

    def state(name: str, present: bool) -> dict[str, Any]:
        if route.query[name]["schema"].get("type") == "array":
            return {"minItems": 1} if present else {"maxItems": 0}
        return {"const": present}

    return {
        "required": [given],
        "properties": {name: state(name, name == given) for name in route.exactly_one},
    }


def document(table: RouteTable) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``table``'s routes, under its prefix."""
    from .. import __version__

    paths: dict[str, dict[str, Any]] = {}
    for route in table.routes:
        operation = _operation(table, route)
        paths.setdefault(table.public_path(route), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskq monitoring and administration",
            "version": __version__,
            "description": "Health, metrics, alerts and dead-letter administration of a "
            "taskq cluster. Every figure is the whole cluster's, read from the broker.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": schemas.ERROR},
            "securitySchemes": {
                "taskqAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Decided by the application's auth callable; the "
                    "scheme shown is an example, the callable may read any header or cookie.",
                }
            },
        },
    }

"""The OpenAPI document validates, every schema in it is a valid JSON Schema, and
docs/monitoring.md documents every route, metric and alert rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import jsonschema
import orjson
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from taskq_core import TaskQueue
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.observability import prometheus
from taskq_core.observability.sla import RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def test_the_document_validates(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    for public_read in (True, False):
        doc = RouteTable(tq, prefix="/tasks", public_read=public_read).openapi()
        validate(doc)
    doc = RouteTable(tq).openapi()
    assert doc["openapi"] == "3.1.0"
    table = RouteTable(tq)
    assert len(doc["paths"]) == len({r.path for r in table.routes})
    for route in table.routes:
        path = "/tasks" + route.path if route.path != "/" else "/tasks"
        op = doc["paths"][path][route.method.lower()]
        assert op["operationId"] == route.name
        for code, response in op["responses"].items():
            for media in response.get("content", {}).values():
                schema = media["schema"]
                if "$ref" not in schema:
                    jsonschema.Draft202012Validator.check_schema(schema)
            assert code.isdigit()
        if route.admin:
            assert op["security"] == [{"taskqAuth": []}]
            assert {"401", "403", "413", "415"} <= set(op["responses"])
            # arguments in a JSON body (a cross-site form cannot send one), none in the URL
            assert [p["in"] for p in op["parameters"]] == ["path"] * route.path.count("{")
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert set(body["properties"]) == set(route.query)
            assert body["additionalProperties"] is False
        elif table.needs_auth(route):
            assert op["security"] == [{"taskqAuth": []}], route.path
            assert {"401", "403"} <= set(op["responses"])
            assert "requestBody" not in op
        else:
            assert op["security"] == [], route.path  # open: explicitly no requirement
        assert op["x-taskq-exposes"] == ([] if route.admin else list(route.exposes))
    private = {r.name for r in table.routes if table.needs_auth(r) and not r.admin}
    assert {"job", "failed", "diagnostics", "metrics_system"} <= private
    opened = RouteTable(tq, expose_private=["results", "errors"]).openapi()
    assert opened["paths"]["/tasks/failed"]["get"]["security"] == []
    served = RouteTable(tq).dispatch(Request("GET", "/openapi.json"))
    assert orjson.loads(served.body) == doc


def test_the_monitoring_guide_covers_every_route_metric_and_rule(
    make_app: Callable[..., TaskQueue],
) -> None:
    text = DOC.read_text()
    tq = make_app("memory")
    tq.task(name="doc.task")(lambda: None)
    for route in RouteTable(tq).routes:
        assert re.search(rf"`{route.method} {re.escape(route.path)}`", text), route.path
    names = [f.name for f in text_string_to_metric_families(prometheus.exposition(tq).decode())]
    for name in names:
        assert name in text, name
    for rule in RULES:
        assert f"`{rule}`" in text, rule


def test_admin_bodies_the_document_allows_are_the_ones_the_handler_takes(
    make_app: Callable[..., TaskQueue],
) -> None:
    """Retry and purge take exactly one of ``id`` and ``all``: the document says so with a
    ``oneOf`` and requires a body (the Content-Type is required), and for each body the
    schema's verdict is the handler's (400 when refused, 200 when taken)."""
    tq = make_app("memory")
    table = RouteTable(tq, auth=lambda request: True)
    doc = table.openapi()
    bodies: list[dict[str, object]] = [
        {},
        {"all": False},
        {"id": []},
        {"id": [], "all": False},
        {"id": ["a"], "all": True},
        {"id": ["a"]},
        {"id": ["a", "b"], "all": False},
        {"all": True},
        {"all": True, "limit": 5},
        {"all": True, "id": []},
        {"all": True, "limit": 5.0},  # an integer to JSON Schema
        {"all": True, "limit": 5.5},
    ]
    for action in ("retry", "purge"):
        op = doc["paths"][f"/tasks/failed/{{queue}}/{action}"]["post"]
        assert op["requestBody"]["required"] is True
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert len(schema["oneOf"]) == 2
        for body in bodies:
            allowed = jsonschema.Draft202012Validator(schema).is_valid(body)
            answer = table.dispatch(
                Request(
                    "POST",
                    f"/failed/default/{action}",
                    headers={"content-type": "application/json"},
                    body=orjson.dumps(body),
                )
            )
            assert answer.status in (200, 400), answer.body
            assert (answer.status == 200) == allowed, (action, body, answer.body)
            if not allowed and "limit" not in body:
                assert b"give exactly one of id=[...] (one or more) or all=true" in answer.body


def test_the_index_names_paths_as_the_document_does(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    for prefix in ("/tasks", ""):
        table = RouteTable(tq, prefix=prefix, auth=lambda request: True)
        listed = orjson.loads(table.dispatch(Request("GET", "/")).body)["routes"]
        documented = {
            (method.upper(), path)
            for path, ops in table.openapi()["paths"].items()
            for method in ops
        }
        assert {(r["method"], r["path"]) for r in listed} == documented
        assert ("GET", prefix or "/") in documented

"""The same HTTP requests to every framework give the same answers.

Each framework's app (its own test client, taskq's routes at ``/tasks``, real Redis) is
compared with the core's own handler, ``RouteTable.dispatch``, over the same seeded state:
every route of the table, bad query parameters and bodies (400), an unknown path (404), a
wrong method (405), odd methods, HEAD, trailing slashes, oversized bodies (413), admin
routes without auth (401/403), from another site or as a form (403/415) and with auth
(2xx), private read routes without auth (401) and public ones open. The route lists come
from the core's table, so a new route is covered by itself. Finally every framework
replays one transcript, state-changing admin calls included, over identical copies of the
state, and all transcripts must be equal. Values that change from one call to the next
(clocks, durations, round trips, uptime, memory) are masked the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.http import Request, Route
from taskq_core.http.access import MAX_BODY
from taskq_core.http.openapi import UNHEALTHY_BODY
from taskq_core.http.routes import RouteTable
from tests.contract.client import ContractClient, close
from tests.contract.conftest import (
    ABORT_ID,
    ADMIN_HEADERS,
    FAILED_ID,
    FRAMEWORKS,
    OK_ID,
    WAITING_ID,
    WORKFLOW_ID,
    admin_auth,
    factory,
)

PREFIX = "/tasks"

#: keys whose values move between two identical calls (clocks, durations, round trips,
#: uptime, memory, load, this process's pid and threads); masked wherever they appear
_VOLATILE = re.compile(
    r"(^|_)(at|now|time|timestamp|ts|ms|seconds|secs|seen|rtt|latency|uptime|rss|memory|mem|"
    r"bytes|ratio|load|cpu|threads|clients|duration|elapsed|age|running_for|took|pid|host|"
    r"hostname|version)($|_)",
    re.IGNORECASE,
)
#: keys whose values differ between frameworks by design: an install hook may register task
#: middleware on the TaskQueue (Flask's app context), which /diagnostics lists
_PER_FRAMEWORK = frozenset({"middleware"})
_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(\.\d+)?([eE][+-]?\d+)?")
#: headers that must agree; the rest (date, server, content-length) belong to the framework
_HEADERS = ("content-type", "allow", "cache-control", "www-authenticate")


def mask(value: Any) -> Any:
    """``value`` with every volatile field replaced by a placeholder."""
    if isinstance(value, dict):
        return {
            k: ("<volatile>" if _VOLATILE.search(str(k)) or k in _PER_FRAMEWORK else mask(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


@dataclass(frozen=True)
class Answer:
    """What one request got, reduced to what must be equal across frameworks."""

    status: int
    headers: dict[str, str]
    body: Any

    @classmethod
    def of(cls, status: int, headers: dict[str, str], body: bytes, key_prefix: str = "") -> Answer:
        """``key_prefix`` (each copy of the state has its own) is masked in the body."""
        if key_prefix:
            body = body.replace(key_prefix.encode(), b"<prefix>")
        lower = {k.lower(): v for k, v in headers.items()}
        kept = {k: lower[k] for k in _HEADERS if k in lower}
        if not body:
            parsed: Any = None  # HEAD
        elif lower.get("content-type", "").startswith("application/json"):
            parsed = mask(orjson.loads(body))
        else:
            # text exposition and the like: the lines must match, numbers aside
            parsed = _NUMBER.sub("N", body.decode())
        return cls(status, kept, parsed)


@dataclass(frozen=True)
class ContractCall:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def via(self, client: ContractClient, key_prefix: str = "") -> Answer:
        status, headers, body = client.request(
            self.method, self.path, params=self.params, headers=self.headers, body=self.body
        )
        return Answer.of(status, headers, body, key_prefix)

    def request(self) -> Request:
        """This call as the core's neutral request (path relative to the mount point)."""
        return Request(
            method=self.method,
            # decoded, as every framework hands the path to the core
            path=unquote(self.path.removeprefix(PREFIX)) or "/",
            query={k: [v] for k, v in self.params.items()},
            headers={
                **{k.lower(): v for k, v in self.headers.items()},
                **({"content-length": str(len(self.body))} if self.body else {}),
            },
            body=self.body,
        )

    def via_core(self, table: RouteTable) -> Answer:
        out = table.dispatch(self.request())
        return Answer.of(out.status, out.headers, out.body)


# -- building the calls from the core's route table


def fill(route: Route) -> str:
    """The route's path with each ``{param}`` replaced by a seeded value that fits."""
    path = route.path

    def value(m: re.Match[str]) -> str:
        name = m.group(1).lower()
        if name == "asset":
            return "dashboard.js"
        if "queue" in name:
            return "default"
        if ("task" in name and "id" not in name) or name == "name":
            return "contract.double"
        if any(w in path for w in ("dead", "failed", "dlq")):
            return FAILED_ID
        if "cancel" in path:
            return WAITING_ID
        if "abort" in path:
            return ABORT_ID
        if "workflows" in path:
            return WORKFLOW_ID
        return OK_ID

    return PREFIX + re.sub(r"\{(\w+)(?::[^}]*)?\}", value, path)


def routes(tq: TaskQueue) -> list[Route]:
    found = RouteTable(tq, prefix=PREFIX, auth=admin_auth).routes
    assert found, "the core's route table is empty"
    return found


def table(tq: TaskQueue) -> RouteTable:
    return RouteTable(tq, prefix=PREFIX, auth=admin_auth)


def read_calls(tq: TaskQueue) -> list[ContractCall]:
    """Every route that reads, with its parameters filled (and credentials if it needs
    them, so that the seeded state shows)."""
    t = table(tq)
    return [
        ContractCall(r.method, fill(r), headers=ADMIN_HEADERS if t.needs_auth(r) else {})
        for r in t.routes
        if not r.admin
    ]


def private_read_calls(tq: TaskQueue) -> list[ContractCall]:
    """Every read route that can carry private data, anonymously, GET and HEAD."""
    t = table(tq)
    private = [r for r in t.routes if not r.admin and t.needs_auth(r)]
    return [ContractCall(m, fill(r)) for r in private for m in ("GET", "HEAD")]


def public_read_calls(tq: TaskQueue) -> list[ContractCall]:
    """Every read route served without auth, anonymously."""
    t = table(tq)
    return [
        ContractCall(r.method, fill(r)) for r in t.routes if not r.admin and not t.needs_auth(r)
    ]


def json_call(path: str, data: Any, headers: dict[str, str] | None = None) -> ContractCall:
    """An admin call: ``data`` as the JSON body, with its content type."""
    sent = {"content-type": "application/json", **(headers or {})}
    return ContractCall("POST", path, headers=sent, body=orjson.dumps(data))


def bad_query_calls(tq: TaskQueue) -> list[ContractCall]:
    """Refused query strings: a malformed value for every typed parameter of every route,
    and an unknown parameter name on every route."""
    calls = []
    for r in routes(tq):
        if r.admin:
            # an admin route reads no query string at all: its arguments are a JSON body
            calls.append(
                ContractCall("POST", fill(r), {"no_such_parameter": "1"}, _JSON_ADMIN, b"{}")
            )
            calls.append(json_call(fill(r), {"no_such_field": 1}, ADMIN_HEADERS))
            calls.append(json_call(fill(r), [1], ADMIN_HEADERS))
            calls.append(ContractCall("POST", fill(r), {}, _JSON_ADMIN, b"{not json"))
        else:
            calls.append(ContractCall(r.method, fill(r), {"no_such_parameter": "1"}, ADMIN_HEADERS))
        for name, spec in r.query.items():
            schema = spec.get("schema", spec)
            if schema.get("type") == "array":
                schema = schema.get("items", {})
            kind = str(schema.get("type"))
            bad = {"integer": "not-a-number", "boolean": "perhaps"}.get(kind)
            if bad is None and schema.get("enum"):
                bad = "no-such-choice"
            if kind == "integer" and not r.admin:
                # digits int() takes but only ASCII digits may spell (full-width 12)
                calls.append(ContractCall(r.method, fill(r), {name: "\uff11\uff12"}, ADMIN_HEADERS))
            if bad is None:
                continue
            if r.admin:
                wrapped = [bad] if spec["schema"].get("type") == "array" else bad
                calls.append(json_call(fill(r), {name: wrapped}, ADMIN_HEADERS))
            else:
                calls.append(ContractCall(r.method, fill(r), {name: bad}, ADMIN_HEADERS))
    return calls


def bad_path_calls(tq: TaskQueue) -> list[ContractCall]:
    """Each route with a path parameter, given values its pattern refuses (one with a
    newline, ``%0A``: Flask's own path converter stopped at it, and answered in HTML)."""
    return [
        ContractCall(r.method, PREFIX + re.sub(r"\{\w+\}", bad, r.path), headers=_JSON_ADMIN)
        for r in routes(tq)
        if "{" in r.path
        for bad in ("bad!value", "bad%0Avalue")
    ]


def wrong_method_calls(tq: TaskQueue) -> list[ContractCall]:
    """For each path, a method it does not serve."""
    served: dict[str, set[str]] = {}
    for r in routes(tq):
        served.setdefault(fill(r), set()).add(r.method)
    calls = []
    for path, methods in served.items():
        wrong = next(m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in methods)
        calls.append(ContractCall(wrong, path))
    return calls


def admin_calls(tq: TaskQueue, headers: dict[str, str]) -> list[ContractCall]:
    """Every admin route, with what it needs to act (``"all": true`` for bulk routes)."""
    return [
        json_call(fill(r), {"all": True} if "all" in r.query else {}, headers)
        for r in routes(tq)
        if r.admin
    ]


#: what a browser sends when a page on another site submits a form to an admin route (or
#: a script posts without a preflight), with the session cookie of a signed-in user
COOKIE = {"cookie": "sessionid=admin-session"}
FORGED = [
    # a cross-site HTML form: form content type, Origin of the other site
    ({**COOKIE, "origin": "https://evil.example",
      "content-type": "application/x-www-form-urlencoded"}, b"all=true"),
    ({**COOKIE, "origin": "https://evil.example", "content-type": "text/plain"},
     b'{"all": true}'),
    ({**COOKIE, "sec-fetch-site": "cross-site", "content-type": "multipart/form-data; "
      "boundary=x"}, b"--x--"),
    ({**COOKIE, "origin": "null", "content-type": "application/x-www-form-urlencoded"},
     b"all=true"),
    # JSON from another site: only after a preflight the application granted
    ({**COOKIE, "origin": "https://evil.example", "content-type": "application/json"},
     b'{"all": true}'),
    ({**COOKIE, "sec-fetch-site": "same-site", "content-type": "application/json"},
     b'{"all": true}'),
    # the cookie alone: a form without Origin (an old browser), a body-less no-cors fetch
    ({**COOKIE, "content-type": "application/x-www-form-urlencoded"}, b"all=true"),
    ({**COOKIE, "content-type": "text/plain"}, b'{"all": true}'),
    (COOKIE, b""),
]  # fmt: skip


def forged_calls(tq: TaskQueue) -> list[ContractCall]:
    """Every admin route, as every forged browser request of :data:`FORGED`."""
    return [
        ContractCall("POST", fill(r), {}, headers, body)
        for r in routes(tq)
        if r.admin
        for headers, body in FORGED
    ]


def cookie_auth(request: Request) -> bool:
    """The pattern issue 15 warned about (like ``taskq_django.auth.is_staff``): a session
    cookie is enough."""
    return "sessionid=admin-session" in request.headers.get("cookie", "")


def oversized_calls(tq: TaskQueue) -> list[ContractCall]:
    """Every admin route with a JSON body one byte over the cap, and with credentials."""
    big = b'{"id": [' + b" " * (MAX_BODY - 9) + b"]}"
    assert len(big) == MAX_BODY + 1
    return [ContractCall("POST", fill(r), {}, _JSON_ADMIN, big) for r in routes(tq) if r.admin]


_JSON_ADMIN = {**ADMIN_HEADERS, "content-type": "application/json"}
UNKNOWN = [
    ContractCall("GET", f"{PREFIX}/no/such/route"),
    ContractCall("POST", f"{PREFIX}/nope", headers=_JSON_ADMIN, body=b"{}"),
    ContractCall("GET", f"{PREFIX}/health/live/extra"),
    ContractCall("HEAD", f"{PREFIX}/no/such/route"),
]
#: what each adapter routes itself: the bare prefix with and without its slash, and HEAD
EDGES = [
    ContractCall("GET", PREFIX),
    ContractCall("GET", f"{PREFIX}/"),
    ContractCall("HEAD", f"{PREFIX}/health/live"),
    ContractCall("HEAD", f"{PREFIX}/jobs/{OK_ID}", headers=ADMIN_HEADERS),
]
#: odd requests every adapter must answer alike: methods no route serves (405 with
#: Allow), HEAD where only POST is served, trailing slashes, a body on a read route
ODD = [
    ContractCall("PROPFIND", f"{PREFIX}/health"),
    ContractCall("OPTIONS", f"{PREFIX}/failed"),
    ContractCall("TRACE", f"{PREFIX}/metrics/summary"),
    ContractCall("PATCH", f"{PREFIX}/jobs/{OK_ID}/cancel"),
    ContractCall("HEAD", f"{PREFIX}/jobs/{OK_ID}/cancel"),
    ContractCall("GET", f"{PREFIX}/health/live/"),
    ContractCall("GET", f"{PREFIX}/jobs/{OK_ID}/", headers=ADMIN_HEADERS),
    ContractCall("GET", f"{PREFIX}/metrics/summary", headers={"content-type": "application/json"},
         body=b"x" * (MAX_BODY + 10)),
]  # fmt: skip
#: a method no HTTP parser of aiohttp's knows: its server answers 400 itself, before any
#: application sees the request, and the core gives the same status everywhere else
UNKNOWN_METHOD = ContractCall("FOO", f"{PREFIX}/health")


# -- each framework against the core's own handler


def same_as_core(
    tq: TaskQueue, client: ContractClient, calls: list[ContractCall], auth: Any = admin_auth
) -> list[Answer]:
    core = RouteTable(tq, prefix=PREFIX, auth=auth)
    answers = []
    for call in calls:
        got, expected = call.via(client), call.via_core(core)
        assert got == expected, f"{call.method} {call.path} {call.params}"
        answers.append(got)
    return answers


def test_every_read_route_answers_like_the_core(
    contract: tuple[TaskQueue, ContractClient],
) -> None:
    tq, client = contract
    calls = read_calls(tq)
    answers = same_as_core(tq, client, calls)
    # the seeded state shows through: these are not trivially empty answers
    shown = [orjson.dumps(a.body).decode() for a in answers if a.status == 200]
    assert shown
    assert any(s in text for text in shown for s in (OK_ID, FAILED_ID, "contract.boom"))
    # the seeded workflow: its chain of two steps, finished, with its result
    (flow,) = [a for c, a in zip(calls, answers, strict=True) if "/workflows/" in c.path]
    assert flow.status == 200
    assert flow.body["status"] == "succeeded"
    assert flow.body["result"] == 20
    assert [s["status"] for s in flow.body["steps"]] == ["succeeded", "succeeded"]


def test_bad_parameters_are_400(contract: tuple[TaskQueue, ContractClient]) -> None:
    tq, client = contract
    calls = [*bad_query_calls(tq), *bad_path_calls(tq)]
    assert len(calls) > len(routes(tq))  # typed parameters exist, not only unknown names
    for answer in same_as_core(tq, client, calls):
        assert answer.status == 400


def test_bare_prefix_and_head_answer_like_the_core(
    contract: tuple[TaskQueue, ContractClient],
) -> None:
    tq, client = contract
    bare, slash, *heads = same_as_core(tq, client, EDGES)
    assert bare == slash
    assert bare.status == 200
    assert all(h.status == 200 and h.body is None for h in heads)


def test_unknown_paths_are_404(contract: tuple[TaskQueue, ContractClient]) -> None:
    tq, client = contract
    for answer in same_as_core(tq, client, UNKNOWN):
        assert answer.status == 404


def test_wrong_methods_are_405(contract: tuple[TaskQueue, ContractClient]) -> None:
    tq, client = contract
    for answer in same_as_core(tq, client, wrong_method_calls(tq)):
        assert answer.status == 405
        assert "allow" in answer.headers


def test_odd_requests_are_answered_alike(contract: tuple[TaskQueue, ContractClient]) -> None:
    tq, client = contract
    answers = same_as_core(tq, client, ODD)
    assert [a.status for a in answers] == [405, 405, 405, 405, 405, 200, 200, 200]
    assert answers[0].headers["allow"] == "GET, HEAD"
    assert answers[4].headers["allow"] == "POST"  # HEAD is served only where GET is
    for answer in same_as_core(tq, client, oversized_calls(tq)):
        assert answer.status == 413
    # an unknown method: 400 from the core everywhere, and from aiohttp's own server (its
    # parser refuses the request line, so no application sees it: its body is not ours)
    status, _, _ = client.request(UNKNOWN_METHOD.method, UNKNOWN_METHOD.path)
    assert status == 400
    if not isinstance(client, _aiohttp_client_type()):
        assert UNKNOWN_METHOD.via(client) == UNKNOWN_METHOD.via_core(table(tq))


def _aiohttp_client_type() -> type:
    from tests.contract.clients_asgi import _AiohttpClient

    return _AiohttpClient


def test_private_reads_need_auth_and_public_reads_stay_open(
    contract: tuple[TaskQueue, ContractClient],
) -> None:
    tq, client = contract
    private = private_read_calls(tq)
    names = {c.path for c in private}
    assert {f"{PREFIX}/jobs/{OK_ID}", f"{PREFIX}/failed", f"{PREFIX}/diagnostics",
            f"{PREFIX}/metrics/system"} <= names  # fmt: skip
    for call, answer in zip(private, same_as_core(tq, client, private), strict=True):
        assert answer.status == 401, call.path
        assert answer.body is None or answer.body["error"] == "unauthorized"
    public = public_read_calls(tq)
    assert {f"{PREFIX}/health", f"{PREFIX}/metrics/prometheus"} <= {c.path for c in public}
    unhealthy_ok = {fill(r) for r in routes(tq) if r.name in UNHEALTHY_BODY}
    for call, answer in zip(public, same_as_core(tq, client, public), strict=True):
        assert answer.status == 200 or (answer.status == 503 and call.path in unhealthy_ok)


def test_without_an_auth_callable_private_and_admin_routes_are_401(
    framework: str, copies: Callable[[], TaskQueue]
) -> None:
    make = factory(framework)
    assert make is not None
    tq = copies()
    client = make(tq, None)
    try:
        calls = [*private_read_calls(tq), *admin_calls(tq, ADMIN_HEADERS)]
        for call, answer in zip(calls, same_as_core(tq, client, calls, None), strict=True):
            assert answer.status == 401, call.path  # not 500: no callable is a refusal
            assert "www-authenticate" in answer.headers
        for answer in same_as_core(tq, client, public_read_calls(tq), None):
            assert answer.status in (200, 503)
    finally:
        close(client)


@pytest.fixture
def cookie_contract(
    framework: str, copies: Callable[[], TaskQueue]
) -> Iterator[tuple[TaskQueue, ContractClient]]:
    """``(tq, client)``: the framework's app with an auth callable that trusts a session
    cookie, over a copy of the seeded state."""
    make = factory(framework)
    assert make is not None
    tq = copies()
    client = make(tq, cookie_auth)
    try:
        yield tq, client
    finally:
        close(client)


def test_forged_admin_requests_are_refused_alike(
    cookie_contract: tuple[TaskQueue, ContractClient],
) -> None:
    tq, client = cookie_contract
    calls = forged_calls(tq)
    assert len(calls) == len(FORGED) * sum(r.admin for r in routes(tq))
    for call, answer in zip(calls, same_as_core(tq, client, calls, cookie_auth), strict=True):
        assert answer.status in (403, 415), (call.path, call.headers)
        assert answer.body["error"] in ("forbidden", "unsupported_media_type")
    # nothing changed: the failed task is still dead-lettered, the waiting one still queued
    assert tq.handle(FAILED_ID, "default").status() == "failed"
    assert tq.handle(WAITING_ID, "default").status() == "queued"
    # the same cookie from the same site, with a JSON body, is served: the check is about
    # where the request comes from, not about cookies
    same_site = {**COOKIE, "content-type": "application/json", "sec-fetch-site": "same-origin"}
    for call in admin_calls(tq, same_site):
        answer = call.via(client)
        assert 200 <= answer.status < 300, f"{call.path}: {answer}"


def test_admin_routes_need_auth(contract: tuple[TaskQueue, ContractClient]) -> None:
    tq, client = contract
    if not admin_calls(tq, {}):
        pytest.skip("the core's table has no admin route")
    for headers in ({}, {"authorization": "Bearer wrong"}):
        for answer in same_as_core(tq, client, admin_calls(tq, headers)):
            assert answer.status in (401, 403)
    for call in admin_calls(tq, ADMIN_HEADERS):
        answer = call.via(client)
        assert 200 <= answer.status < 300, f"{call.method} {call.path}: {answer}"


# -- all frameworks, one transcript


@pytest.fixture
def every_client(
    copies: Callable[[], TaskQueue],
) -> Iterator[dict[str, tuple[TaskQueue, ContractClient]]]:
    """Each available framework's app over its own copy of the seeded state."""
    clients: dict[str, tuple[TaskQueue, ContractClient]] = {}
    skipped = []
    try:
        for fw in FRAMEWORKS:
            try:
                make = factory(fw)
            except pytest.skip.Exception as why:
                skipped.append(f"{fw}: {why}")
                continue
            tq = copies()
            clients[fw] = (tq, make(tq, admin_auth))
        if len(clients) < 2:
            pytest.skip(f"fewer than two frameworks to compare ({'; '.join(skipped)})")
        yield clients
    finally:
        for _, client in clients.values():
            close(client)


def transcript(tq: TaskQueue, client: ContractClient) -> list[tuple[ContractCall, Answer]]:
    calls = [
        *read_calls(tq),
        *bad_query_calls(tq),
        *bad_path_calls(tq),
        *UNKNOWN,
        *EDGES,
        *ODD,
        *wrong_method_calls(tq),
        *private_read_calls(tq),
        *public_read_calls(tq),
        *oversized_calls(tq),
        *forged_calls(tq),
        *admin_calls(tq, {}),
        *admin_calls(tq, {"authorization": "Bearer wrong"}),
        *admin_calls(tq, ADMIN_HEADERS),  # these change the state ...
        *read_calls(tq),  # ... which the reads must now show the same way
    ]
    return [(call, call.via(client, tq.settings.key_prefix)) for call in calls]


def test_every_framework_gives_the_same_transcript(
    every_client: dict[str, tuple[TaskQueue, ContractClient]], copies: Callable[[], TaskQueue]
) -> None:
    # the core's own handler, over one more copy, is the reference
    core_tq = copies()
    core = RouteTable(core_tq, prefix=PREFIX, auth=admin_auth)

    class Core:
        def request(
            self,
            method: str,
            path: str,
            *,
            params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None,
            body: bytes = b"",
        ) -> tuple[int, dict[str, str], bytes]:
            out = core.dispatch(
                ContractCall(method, path, params or {}, headers or {}, body).request()
            )
            return out.status, out.headers, out.body

    expected = transcript(core_tq, Core())
    assert len(expected) > 5
    for fw, (tq, client) in every_client.items():
        got = transcript(tq, client)
        for (call, want), (_, answer) in zip(expected, got, strict=True):
            assert answer == want, f"{fw}: {call.method} {call.path} {call.params} {call.headers}"

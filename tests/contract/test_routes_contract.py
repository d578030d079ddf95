"""The same HTTP requests to every framework give the same answers.

Each framework's app (its own test client, taskq's routes at ``/tasks``, real Redis) is
compared with the core's own handler, ``RouteTable.dispatch``, over the same seeded state:
every route of the table, bad query parameters (400), an unknown path (404), a wrong method
(405), and admin routes without auth (401/403) and with it (2xx). Finally every framework
replays one transcript, state-changing admin calls included, over identical copies of the
state, and all transcripts must be equal. Values that change from one call to the next
(clocks, durations, round trips, uptime, memory) are masked the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.http import Request, Route
from taskq_core.http.routes import RouteTable
from tests.contract.client import ContractClient, close
from tests.contract.conftest import (
    ADMIN_HEADERS,
    FAILED_ID,
    FRAMEWORKS,
    OK_ID,
    WAITING_ID,
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
class Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def via(self, client: ContractClient, key_prefix: str = "") -> Answer:
        status, headers, body = client.request(
            self.method, self.path, params=self.params, headers=self.headers
        )
        return Answer.of(status, headers, body, key_prefix)

    def request(self) -> Request:
        """This call as the core's neutral request (path relative to the mount point)."""
        return Request(
            method=self.method,
            path=self.path.removeprefix(PREFIX) or "/",
            query={k: [v] for k, v in self.params.items()},
            headers={k.lower(): v for k, v in self.headers.items()},
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
        if "queue" in name:
            return "default"
        if ("task" in name and "id" not in name) or name == "name":
            return "contract.double"
        if any(w in path for w in ("dead", "failed", "dlq")):
            return FAILED_ID
        if "cancel" in path:
            return WAITING_ID
        return OK_ID

    return PREFIX + re.sub(r"\{(\w+)(?::[^}]*)?\}", value, path)


def routes(tq: TaskQueue) -> list[Route]:
    found = RouteTable(tq, prefix=PREFIX, auth=admin_auth).routes
    assert found, "the core's route table is empty"
    return found


def read_calls(tq: TaskQueue) -> list[Call]:
    """Every route that reads, with its parameters filled."""
    return [Call(r.method, fill(r)) for r in routes(tq) if not r.admin]


def bad_query_calls(tq: TaskQueue) -> list[Call]:
    """Refused query strings: a malformed value for every typed parameter of every route,
    and an unknown parameter name on every route."""
    calls = []
    for r in routes(tq):
        headers = ADMIN_HEADERS if r.admin else {}
        calls.append(Call(r.method, fill(r), {"no_such_parameter": "1"}, headers))
        for name, spec in r.query.items():
            schema = spec.get("schema", spec)
            if schema.get("type") == "array":
                schema = schema.get("items", {})
            bad = {"integer": "not-a-number", "boolean": "perhaps"}.get(str(schema.get("type")))
            if bad is None and schema.get("enum"):
                bad = "no-such-choice"
            if bad is not None:
                calls.append(Call(r.method, fill(r), {name: bad}, headers))
    return calls


def bad_path_calls(tq: TaskQueue) -> list[Call]:
    """Each route with a path parameter, given a value its pattern refuses."""
    return [
        Call(r.method, PREFIX + re.sub(r"\{\w+\}", "bad!value", r.path), headers=ADMIN_HEADERS)
        for r in routes(tq)
        if "{" in r.path
    ]


def wrong_method_calls(tq: TaskQueue) -> list[Call]:
    """For each path, a method it does not serve."""
    served: dict[str, set[str]] = {}
    for r in routes(tq):
        served.setdefault(fill(r), set()).add(r.method)
    calls = []
    for path, methods in served.items():
        wrong = next(m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in methods)
        calls.append(Call(wrong, path))
    return calls


def admin_calls(tq: TaskQueue, headers: dict[str, str]) -> list[Call]:
    """Every admin route, with what it needs to act (``all=true`` for bulk routes)."""
    return [
        Call(r.method, fill(r), {"all": "true"} if "all" in r.query else {}, headers)
        for r in routes(tq)
        if r.admin
    ]


UNKNOWN = [Call("GET", f"{PREFIX}/no/such/route"), Call("POST", f"{PREFIX}/nope")]
#: what each adapter routes itself: the bare prefix with and without its slash, and HEAD
EDGES = [
    Call("GET", PREFIX),
    Call("GET", f"{PREFIX}/"),
    Call("HEAD", f"{PREFIX}/health/live"),
    Call("HEAD", f"{PREFIX}/jobs/{OK_ID}"),
]


# -- each framework against the core's own handler


def same_as_core(tq: TaskQueue, client: ContractClient, calls: list[Call]) -> list[Answer]:
    table = RouteTable(tq, prefix=PREFIX, auth=admin_auth)
    answers = []
    for call in calls:
        got, expected = call.via(client), call.via_core(table)
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
            assert make is not None
            tq = copies()
            clients[fw] = (tq, make(tq, admin_auth))
        if len(clients) < 2:
            pytest.skip(f"fewer than two frameworks to compare ({'; '.join(skipped)})")
        yield clients
    finally:
        for _, client in clients.values():
            close(client)


def transcript(tq: TaskQueue, client: ContractClient) -> list[tuple[Call, Answer]]:
    calls = [
        *read_calls(tq),
        *bad_query_calls(tq),
        *bad_path_calls(tq),
        *UNKNOWN,
        *EDGES,
        *wrong_method_calls(tq),
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
    table = RouteTable(core_tq, prefix=PREFIX, auth=admin_auth)

    class Core:
        def request(
            self,
            method: str,
            path: str,
            *,
            params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], bytes]:
            out = table.dispatch(Call(method, path, params or {}, headers or {}).request())
            return out.status, out.headers, out.body

    expected = transcript(core_tq, Core())
    assert len(expected) > 5
    for fw, (tq, client) in every_client.items():
        got = transcript(tq, client)
        for (call, want), (_, answer) in zip(expected, got, strict=True):
            assert answer == want, f"{fw}: {call.method} {call.path} {call.params} {call.headers}"

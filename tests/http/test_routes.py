"""The neutral handler: every route answers and matches its schema; bad query parameters
are 400, unknown paths 404, wrong methods 405, admin routes 401/403 without auth; never a
traceback. Responses are validated against the schemas the OpenAPI document publishes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jsonschema
import orjson
import pytest

from taskq_core import TaskQueue, chain
from taskq_core.brokers.redis import RedisBroker
from taskq_core.http import Request, Response
from taskq_core.http import schemas as s
from taskq_core.http.access import read_body, read_body_async
from taskq_core.http.openapi import UNHEALTHY_BODY
from taskq_core.http.routes import RouteTable
from taskq_core.observability import alerts, facade

TOKEN = "Bearer let-me-in"


def admin(request: Request) -> bool:
    return request.headers.get("authorization") == TOKEN


class Client:
    """Calls the table as an adapter would and checks every JSON body against its schema."""

    def __init__(self, table: RouteTable, headers: dict[str, str] | None = None) -> None:
        self.table = table
        self.headers = headers or {}
        self.seen: set[str] = set()

    def __call__(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Response:
        """``body`` (not None) is sent as JSON, with its content type."""
        sent = {**self.headers, **(headers or {})}
        raw = b""
        if body is not None:
            raw = orjson.dumps(body)
            sent.setdefault("content-type", "application/json")
        request = Request(method, path, query or {}, sent, raw)
        response = self.table.dispatch(request)
        assert b"Traceback" not in response.body
        if response.status == 200:
            route, _ = self.table.match(method, path)
            self.seen.add(route.name)
            if route.response_schema is None:
                # the Prometheus text, the dashboard page and its assets
                assert response.headers["content-type"].startswith(
                    ("text/plain", "text/html", "text/javascript", "text/css")
                )
            elif method != "HEAD":
                validate(response, route.response_schema)
        elif response.status == 503 and self.table.match(method, path)[0].name in UNHEALTHY_BODY:
            validate(response, self.table.match(method, path)[0].response_schema or {})
        elif response.body:
            validate(response, s.ERROR)
            assert orjson.loads(response.body)["status"] == response.status
        return response

    def json(self, *args: Any, **kwargs: Any) -> Any:
        response = self(*args, **kwargs)
        assert response.status == 200, response.body
        return orjson.loads(response.body)


def validate(response: Response, schema: dict[str, Any]) -> None:
    assert response.headers["content-type"] == "application/json"
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(response.body))


@pytest.fixture(params=["memory", "redis"])
def populated(make_app: Callable[..., TaskQueue], request: pytest.FixtureRequest) -> TaskQueue:
    """An application with history: successes, a dead-lettered failure, a waiting task, a
    worker heartbeat and an active alert."""
    tq = make_app(str(request.param), retry={"max_retries": 0}, monitoring={"max_backlog": 1})
    tq.task(name="r.ok")(lambda x: x)

    @tq.task(name="r.fail")
    def fail() -> None:
        raise ValueError("nope")

    for i in range(3):
        tq.enqueue("r.ok", [i])
    tq.enqueue("r.fail")
    wf = tq.workflow(workflow_id="wf_populated")
    wf.add(chain(tq.get_task("r.ok").call(1), tq.get_task("r.ok").s()))
    wf.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    tq.enqueue("r.ok", [9], task_id="waiting-1")
    tq.enqueue("r.ok", [10], task_id="waiting-2")
    tq.enqueue("r.ok", [11], task_id="waiting-3")
    worker = tq.worker()
    from taskq_core.observability.heartbeat import HeartbeatMiddleware

    record = HeartbeatMiddleware(tq.settings.monitoring).record(worker)
    tq.broker.put_heartbeat(worker.id, orjson.dumps(record), 60_000, 0)
    alerts.evaluate(tq, force=True)
    return tq


@pytest.fixture
def client(populated: TaskQueue) -> Client:
    """Sends the admin token with every request (the private routes need it)."""
    return Client(RouteTable(populated, auth=admin), {"authorization": TOKEN})


def test_every_route_answers_with_its_schema(client: Client, populated: TaskQueue) -> None:
    tq = populated
    auth = {"authorization": TOKEN}
    for route in client.table.routes:
        if "{" in route.path or route.admin:
            continue
        response = client("GET", route.path)
        assert response.status in (200, 503), route.path
        if route.path == "/health":
            assert response.status == 200  # degraded (backlog), not unhealthy
    assert client.json("GET", "/metrics/summary")["succeeded"] == 5  # 3 and the workflow's 2
    assert client.json("GET", "/alerts")["active"][0]["rule"] == "backlog"
    assert client.json("GET", "/sla")["rules"][3]["status"] == "violated"
    assert client.json("GET", "/metrics/workers")["alive"] == 1
    assert client.json("GET", "/metrics/autoscaler") == {"supervisors": []}
    failed = client.json("GET", "/failed", {"queue": ["default"], "limit": ["10"]})
    assert failed["total"] == 1
    dead_id = failed["items"][0]["id"]
    assert failed["items"][0]["error"] == {"type": "ValueError", "message": "nope"}
    job = client.json("GET", f"/jobs/{dead_id}")
    assert (job["status"], job["task"]) == ("failed", "r.fail")
    assert "traceback" not in job["error"]
    assert client.json("GET", "/jobs/waiting-1", {"queue": ["default"]})["status"] == "queued"
    assert client("HEAD", "/metrics").body == b""
    page = client("GET", "/dashboard").body.decode()
    assert "/dashboard/assets/dashboard.js?v=" in page
    script = client("GET", "/dashboard/assets/dashboard.js")
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = script.headers["etag"]
    assert (
        client("GET", "/dashboard/assets/dashboard.js", headers={"if-none-match": etag}).status
        == 304
    )
    assert client("GET", "/dashboard/assets/nothere.js").status == 404
    assert client("GET", "/dashboard/assets/..%2Fapp.js").status in (400, 404)
    assert client.json("GET", "/dashboard/session")["admin"] is True
    flow = client.json("GET", "/workflows/wf_populated")
    assert (flow["status"], flow["result"]) == ("succeeded", 1)
    assert [s["task"] for s in flow["steps"]] == ["r.ok", "r.ok"]
    assert client("GET", "/workflows/wf_nothere").status == 404
    # admin routes, with credentials
    cancelled = client.json("POST", "/jobs/waiting-1/cancel", headers=auth, body={})
    assert cancelled == {"id": "waiting-1", "queue": "default", "cancelled": True,
                         "status": "cancelled"}  # fmt: skip
    again = client("POST", "/jobs/waiting-1/cancel", headers=auth, body={"queue": "default"})
    assert again.status == 409
    # abort: a task not started yet is cancelled; a cancelled one is a conflict
    aborted = client.json("POST", "/jobs/waiting-3/abort", headers=auth, body={})
    assert aborted == {"id": "waiting-3", "queue": "default", "status": "cancelled"}
    assert client("POST", "/jobs/waiting-3/abort", headers=auth, body={}).status == 409
    assert client("POST", "/jobs/no-such-task/abort", headers=auth, body={}).status == 404
    retried = client.json("POST", "/failed/default/retry", body={"id": [dead_id]})
    assert retried == {"queue": "default", "requested": 1, "retried": 1}
    tq.worker(burst=True, handle_signals=False).run()  # it fails again
    purged = client.json("POST", "/failed/default/purge", body={"all": True})
    assert purged == {"queue": "default", "requested": 1, "purged": 1}
    assert client.json("GET", "/failed")["total"] == 0
    retried = client.json("POST", "/failed/default/retry", body={"all": True, "limit": 5})
    assert retried["requested"] == 0
    everything = {r.name for r in client.table.routes}
    assert client.seen == everything, f"untested routes: {everything - client.seen}"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/failed", {"limit": ["0"]}),
        ("/failed", {"limit": ["501"]}),
        ("/failed", {"limit": ["ten"]}),
        ("/failed", {"limit": ["1", "2"]}),
        ("/failed", {"offset": ["-1"]}),
        ("/failed", {"queue": ["no spaces"]}),
        ("/failed", {"surprise": ["1"]}),
        ("/alerts", {"limit": ["100000"]}),
        ("/diagnostics", {"failures": ["101"]}),
        ("/metrics", {"verbose": ["1"]}),
        ("/jobs/bad%20id", {}),
        ("/jobs/" + "x" * 101, {}),
        ("/jobs/abc", {"queue": ["a/b"]}),
        ("/failed", {"limit": ["\uff11\uff12"]}),  # full-width 12: int() takes it
        ("/failed", {"limit": ["1_0"]}),  # so does this
        ("/failed", {"offset": ["\u0663"]}),  # Arabic-Indic three
    ],
)
def test_bad_query_and_path_parameters_are_400(
    client: Client, path: str, query: dict[str, list[str]]
) -> None:
    response = client("GET", path, query)
    assert response.status == 400
    message = orjson.loads(response.body)["message"]
    assert "parameter" in message


@pytest.mark.parametrize(
    "body",
    [
        {},  # neither id nor all
        {"id": ["a"], "all": True},  # both
        {"all": "true"},  # a string, not a JSON boolean
        {"all": True, "limit": "10"},
        {"all": True, "limit": True},  # a JSON boolean is not an integer
        {"all": True, "limit": 0},
        {"id": [f"id{i}" for i in range(101)]},
        {"id": "a"},  # not an array
        {"id": [1]},
        {"id": ["bad id"]},
        {"surprise": 1},
        [1, 2],  # not an object
        "all",
    ],
)
def test_bad_admin_arguments_are_400(client: Client, body: Any) -> None:
    response = client("POST", "/failed/default/retry", body=body)
    assert response.status == 400, body
    assert orjson.loads(response.body)["message"]


def test_admin_arguments_come_from_the_json_body_only(client: Client) -> None:
    # the query string of an admin route is refused, not read: a plain link cannot act
    response = client("POST", "/failed/default/purge", {"all": ["true"]}, body={})
    assert response.status == 400
    assert "JSON body" in orjson.loads(response.body)["message"]
    assert client("POST", "/failed/nope/retry", body={"all": True}).status == 404
    assert client("GET", "/failed", {"queue": ["nope"]}).status == 404
    not_json = client("POST", "/failed/default/retry", headers={"content-type":
                      "application/json"}, body=None)  # fmt: skip
    assert not_json.status == 400  # an empty body is {}: neither id nor all
    broken = client.table.dispatch(Request("POST", "/failed/default/retry", {},
        {"authorization": TOKEN, "content-type": "application/json"}, b"{nope"))  # fmt: skip
    assert broken.status == 400
    assert "not valid JSON" in orjson.loads(broken.body)["message"]


@pytest.mark.parametrize("path", ["/nope", "/metrics/nope", "/jobs/a/b/c", "/health/x", "/tasks"])
def test_unknown_paths_are_404(client: Client, path: str) -> None:
    assert client("GET", path).status == 404


def test_unknown_job_is_404(client: Client) -> None:
    assert client("GET", "/jobs/does-not-exist").status == 404
    assert client("POST", "/jobs/does-not-exist/cancel", body={}).status == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/health", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("PUT", "/jobs/abc", "GET, HEAD"),
        ("GET", "/failed/default/retry", "POST"),
        ("GET", "/jobs/abc/cancel", "POST"),
        ("OPTIONS", "/failed", "GET, HEAD"),
        ("PROPFIND", "/health", "GET, HEAD"),
    ],
)
def test_wrong_methods_are_405_with_allow(
    client: Client, method: str, path: str, allow: str
) -> None:
    response = client(method, path)
    assert response.status == 405
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("method", ["FOO", "get", "BREW", "DESCRIBE"])
def test_methods_no_http_parser_knows_are_400(client: Client, method: str) -> None:
    # aiohttp's parser refuses these before any application sees them: all adapters agree
    response = client(method, "/health")
    assert response.status == 400
    assert "method" in orjson.loads(response.body)["message"]


def test_trailing_slash_and_index(client: Client) -> None:
    assert client("GET", "/health/live/").status == 200
    index = client.json("GET", "")
    assert index["openapi"] == "/tasks/openapi.json"
    assert {"method": "POST", "path": "/tasks/jobs/{id}/cancel", "summary":
            "Cancel a queued or scheduled task.", "admin": True, "auth": True
            } in index["routes"]  # fmt: skip
    shown = {r["path"]: r["auth"] for r in index["routes"]}
    assert shown["/tasks/health"] is False
    assert shown["/tasks/jobs/{id}"] is True


ADMIN = [
    ("/failed/default/retry", {"all": True}),
    ("/failed/default/purge", {"all": True}),
    ("/jobs/waiting-2/cancel", {}),
    ("/jobs/waiting-2/abort", {}),
]


@pytest.mark.parametrize(("path", "body"), ADMIN)
def test_admin_routes_need_auth(populated: TaskQueue, path: str, body: Any) -> None:
    no_auth = Client(RouteTable(populated))
    response = no_auth("POST", path, body=body)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    guarded = Client(RouteTable(populated, auth=admin))
    assert guarded("POST", path, body=body).status == 401  # no credentials at all
    wrong = guarded("POST", path, headers={"authorization": "Bearer nope"}, body=body)
    assert wrong.status == 403
    assert guarded("POST", path, headers={"cookie": "session=someone"}, body=body).status == 403
    assert guarded("POST", path, headers={"authorization": TOKEN}, body=body).status == 200
    assert populated.handle("waiting-2").status() in ("queued", "cancelled")


def trusts_cookies(request: Request) -> bool:
    """The pattern issue 15 warned about: a session cookie is enough."""
    return "session=admin" in request.headers.get("cookie", "")


BROWSER = {"cookie": "session=admin", "host": "shop.example"}


@pytest.mark.parametrize(("path", "body"), ADMIN)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # an HTML form on another site: text/plain or urlencoded body, Origin of that site
        ({"origin": "https://evil.example", "content-type": "text/plain"}, 403),
        ({"sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded"},
         403),
        # JSON sent from another site (after a preflight the app granted) is still refused
        ({"origin": "https://evil.example", "content-type": "application/json"}, 403),
        ({"origin": "null", "content-type": "application/json"}, 403),
        ({"origin": "https://shop.example.evil.example", "content-type": "application/json"}, 403),
        ({"sec-fetch-site": "same-site", "content-type": "application/json"}, 403),
        # no Origin (an old browser, or a form with a Referrer-Policy): the form's body
        # cannot be JSON, so it is refused for its content type
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "multipart/form-data; boundary=x"}, 415),
        ({}, 415),  # a body-less POST (fetch with mode: no-cors) has no content type
        # the same site, or a client that is not a browser: served
        ({"origin": "https://shop.example", "content-type": "application/json"}, 200),
        ({"origin": "http://shop.example:80", "sec-fetch-site": "same-origin",
          "content-type": "application/json; charset=utf-8"}, 200),
        ({"content-type": "application/json"}, 200),
    ],
)  # fmt: skip
def test_admin_routes_refuse_cross_site_requests(
    populated: TaskQueue, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    client = Client(RouteTable(populated, auth=trusts_cookies), BROWSER)
    sent = {**headers}
    raw = orjson.dumps(body)
    response = client.table.dispatch(Request("POST", path, {}, {**BROWSER, **sent}, raw))
    assert response.status == status, response.body
    if status != 200:
        validate(response, s.ERROR)
    expected = "queued" if status != 200 else ("queued", "cancelled")
    if "cancel" in path:
        assert populated.handle("waiting-2").status() in expected


def test_admin_checks_run_in_the_documented_order(make_app: Callable[..., TaskQueue]) -> None:
    """docs/security.md: same site (403), body size (413) and content type (415) come before
    the auth callable (401/403), which comes before the arguments (400)."""
    table = RouteTable(make_app("memory"), auth=admin)
    path = "/failed/default/purge"

    def status(query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> int:
        return table.dispatch(Request("POST", path, query, headers, body)).status

    json_type = {"content-type": "application/json"}
    evil = {"origin": "https://evil.example", "host": "shop.example"}
    big = b"x" * (64 * 1024 + 1)
    # no credentials anywhere below but the last two: each refusal names the earliest check
    assert status({}, {**evil, "content-type": "text/plain"}, big) == 403
    assert status({}, {"content-type": "text/plain"}, big) == 413
    assert status({}, {"content-type": "text/plain"}, b"{}") == 415
    assert status({"all": ["true"]}, json_type, b"{nope") == 401
    assert status({"all": ["true"]}, {**json_type, "authorization": TOKEN}, b"{}") == 400
    assert status({}, {**json_type, "authorization": TOKEN}, b"{nope") == 400


def test_admin_bodies_over_64_kib_are_413_and_never_parsed(populated: TaskQueue) -> None:
    table = RouteTable(populated, auth=admin)
    headers = {"authorization": TOKEN, "content-type": "application/json"}
    big = b'{"id": [' + b'"x",' * 20_000 + b'"x"]}'
    assert len(big) > 64 * 1024
    response = table.dispatch(Request("POST", "/failed/default/retry", {}, headers, big))
    assert response.status == 413
    # the declared length alone suffices: an adapter need not read such a body at all
    declared = {**headers, "content-length": str(10**9)}
    response = table.dispatch(Request("POST", "/failed/default/retry", {}, declared, b""))
    assert response.status == 413
    assert table.read_limit("POST", "/failed/default/retry", declared) == 0
    assert table.read_limit("POST", "/failed/default/retry", headers) == 64 * 1024 + 1
    # read routes read no body at all, nor do paths that match no route
    assert table.read_limit("GET", "/failed", headers) == 0
    assert table.read_limit("POST", "/nope", headers) == 0
    assert table.read_limit("PUT", "/failed/default/retry", headers) == 0


#: read routes that can carry private data, and what the default settings show anonymously
PRIVATE_PATHS = ["/jobs/waiting-1", "/workflows/wf_populated", "/failed", "/diagnostics",
                 "/metrics/system", "/metrics", "/metrics/workers", "/metrics/memory",
                 "/metrics/autoscaler", "/registry", "/alerts", "/sla"]  # fmt: skip
PUBLIC_PATHS = ["/", "/openapi.json", "/health", "/health/live", "/health/ready", "/status",
                "/metrics/summary", "/metrics/queues", "/metrics/performance",
                "/metrics/prometheus", "/uptime"]  # fmt: skip


def test_private_reads_need_auth_by_default(populated: TaskQueue) -> None:
    for auth in (None, admin):
        client = Client(RouteTable(populated, auth=auth))
        for path in PRIVATE_PATHS:
            response = client("GET", path)
            assert response.status == 401, path
            assert b"nope" not in response.body  # the failure's message
            assert client("HEAD", path).status == 401
        for path in PUBLIC_PATHS:
            assert client("GET", path).status == 200, path
    guarded = Client(RouteTable(populated, auth=admin))
    for path in PRIVATE_PATHS:
        assert guarded("GET", path, headers={"authorization": "Bearer x"}).status == 403
        assert guarded("GET", path, headers={"authorization": TOKEN}).status == 200
    named = {r.path for r in guarded.table.routes if not r.admin and guarded.table.needs_auth(r)}
    assert named == {
        p.replace("waiting-1", "{id}").replace("wf_populated", "{id}") for p in PRIVATE_PATHS
    }


def test_expose_private_opens_one_class_at_a_time(populated: TaskQueue) -> None:
    results = Client(RouteTable(populated, expose_private=["results"]))
    assert results("GET", "/jobs/waiting-1").status == 401  # a task's error shows there too
    errors = Client(RouteTable(populated, expose_private=["errors"]))
    assert errors("GET", "/failed").status == 200
    assert errors("GET", "/jobs/waiting-1").status == 401
    assert errors("GET", "/diagnostics").status == 401  # also config and hosts
    both = Client(RouteTable(populated, expose_private=["results", "errors"]))
    assert both("GET", "/jobs/waiting-1").status == 200
    hosts = Client(RouteTable(populated, expose_private=["hosts"]))
    assert hosts("GET", "/metrics/workers").status == 200
    assert hosts("GET", "/metrics/system").status == 401  # also config
    everything = Client(RouteTable(populated, expose_private=["results", "errors", "hosts",
                                                              "config"]))  # fmt: skip
    for path in PRIVATE_PATHS:
        assert everything("GET", path).status == 200, path
    assert everything("POST", "/failed/default/purge", body={"all": True}).status == 401
    with pytest.raises(ValueError, match="nope"):
        RouteTable(populated, expose_private=["nope"])


def test_private_reads_need_auth_but_health_stays_open(populated: TaskQueue) -> None:
    client = Client(RouteTable(populated, auth=admin, public_read=False))
    assert client("GET", "/metrics/summary").status == 401
    assert client("GET", "/metrics/summary", headers={"authorization": "Bearer x"}).status == 403
    assert client("GET", "/metrics/summary", headers={"authorization": TOKEN}).status == 200
    for path in ("/health", "/health/live", "/health/ready"):
        assert client("GET", path).status == 200


def test_public_read_and_prefix_come_from_settings(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app(
        "memory", http={"prefix": "/ops/q/", "public_read": False, "expose_private": ["hosts"]}
    )
    table = RouteTable(tq)
    assert (table.prefix, table.public_read) == ("/ops/q", False)
    assert table.open == {"health", "hosts"}
    assert "/ops/q/metrics" in table.openapi()["paths"]


def test_failures_never_leak_a_traceback(
    populated: TaskQueue, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(app: TaskQueue) -> dict[str, Any]:
        raise RuntimeError("secret internals redis://u:pw@host")

    monkeypatch.setattr(facade, "registry", broken)
    client = Client(RouteTable(populated, expose_private=["config"]))
    response = client("GET", "/registry")
    assert response.status == 500
    assert b"secret" not in response.body
    assert b"pw" not in response.body
    assert "Traceback" in caplog.text  # logged on the server instead

    def refuse(request: Request) -> bool:
        raise KeyError("boom")

    crashing = Client(RouteTable(populated, auth=refuse))
    assert crashing("POST", "/failed/default/purge", body={"all": True}).status == 500


@pytest.fixture
def dead_broker() -> Iterator[TaskQueue]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = RedisBroker(f"redis://:pw@127.0.0.1:{port}/0", socket_connect_timeout=0.5, retries=0)
    tq = TaskQueue(broker=broker)
    yield tq
    tq.close()


def test_a_broker_that_does_not_answer_is_503(dead_broker: TaskQueue) -> None:
    client = Client(RouteTable(dead_broker, auth=admin), {"authorization": TOKEN})
    for path in ("/metrics", "/failed", "/health", "/health/ready", "/status"):
        response = client("GET", path)
        assert response.status in (503, 200), path
        assert b":pw@" not in response.body
    assert client("GET", "/metrics").status == 503
    assert client("GET", "/health").status == 503
    # open to anyone: an error shows its type, not the broker's address (the log has it)
    anonymous = Client(RouteTable(dead_broker))
    for path in ("/health", "/health/ready", "/metrics/summary"):
        response = anonymous("GET", path)
        assert response.status == 503, path
        assert b"127.0.0.1" not in response.body, path
        assert b"ConnectionError" in response.body, path
    opened = Client(RouteTable(dead_broker, expose_private=["hosts"]))
    assert b"127.0.0.1" in opened("GET", "/health").body
    assert client.json("GET", "/status")["status"] == "unhealthy"
    assert client("GET", "/health/live").status == 200


async def test_dispatch_async_runs_in_a_thread(populated: TaskQueue) -> None:
    table = RouteTable(populated)
    response = await table.dispatch_async(Request("GET", "/metrics/summary"))
    assert response.status == 200
    assert orjson.loads(response.body)["enqueued"] >= 4


async def test_body_readers_stop_at_the_cap() -> None:
    served: list[int] = []

    def endless(n: int) -> bytes:  # a client that never stops sending
        served.append(n)
        return b"x" * min(n, 1000)

    assert len(read_body(endless, 5000)) == 5000
    assert sum(min(n, 1000) for n in served) == 5000  # nothing read past the cap

    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"y" * 1000

    assert len(await read_body_async(chunks(), 2500)) == 2500
    assert pulled == 3
    assert await read_body_async(chunks(), 0) == b""
    assert pulled == 3  # a route without a body reads nothing


def test_no_read_route_shows_task_arguments(make_app: Callable[..., TaskQueue]) -> None:
    """security.md: the routes never show a task's arguments, even with every private class
    opened (a result or an error shows only what the task returned or raised)."""
    tq = make_app("memory", retry={"max_retries": 0})
    marker = "card-4242-4242-4242-4242"
    tq.task(name="a.ok")(lambda card: "charged")

    @tq.task(name="a.fail")
    def fail(card: str) -> None:
        raise ValueError("declined")

    done = tq.enqueue("a.ok", [marker])
    dead = tq.enqueue("a.fail", [], {"card": marker})
    waiting_id = "waiting-args"
    tq.worker(burst=True, handle_signals=False).run()
    tq.enqueue("a.ok", [marker], task_id=waiting_id)
    table = RouteTable(tq, auth=admin, expose_private=("results", "errors", "hosts", "config"))
    paths = [r.path for r in table.routes if r.method == "GET" and "{" not in r.path]
    paths += [f"/jobs/{done.id}", f"/jobs/{dead.id}", f"/jobs/{waiting_id}"]
    for path in paths:
        response = table.dispatch(Request("GET", path, {}, {"authorization": TOKEN}, b""))
        assert response.status in (200, 503), path
        assert marker.encode() not in response.body, path
    # the application may let /jobs/{id} show them (http.show_arguments), to who may read it
    shown = make_app("memory", http={"show_arguments": True})
    shown.task(name="a.ok")(lambda card: "charged")
    waiting = shown.enqueue("a.ok", [marker], task_id="shown-args")
    open_table = RouteTable(shown, auth=admin)
    body = orjson.loads(
        open_table.dispatch(
            Request("GET", f"/jobs/{waiting.id}", {}, {"authorization": TOKEN}, b"")
        ).body
    )
    assert (body["args"], body["kwargs"]) == ([marker], {})
    refused = open_table.dispatch(Request("GET", f"/jobs/{waiting.id}", {}, {}, b""))
    assert refused.status == 401
    assert marker.encode() not in refused.body

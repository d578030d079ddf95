"""The neutral handler: every route answers and matches its schema; bad query parameters
are 400, unknown paths 404, wrong methods 405, admin routes 401/403 without auth; never a
traceback. Responses are validated against the schemas the OpenAPI document publishes."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.redis import RedisBroker
from taskq_core.http import Request, Response
from taskq_core.http import schemas as s
from taskq_core.http.openapi import UNHEALTHY_BODY
from taskq_core.http.routes import RouteTable
from taskq_core.observability import alerts, facade

TOKEN = "Bearer let-me-in"


def admin(request: Request) -> bool:
    return request.headers.get("authorization") == TOKEN


class Client:
    """Calls the table as an adapter would and checks every JSON body against its schema."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.seen: set[str] = set()

    def __call__(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        request = Request(method, path, query or {}, headers or {})
        response = self.table.dispatch(request)
        assert b"Traceback" not in response.body
        if response.status == 200:
            route, _ = self.table.match(method, path)
            self.seen.add(route.name)
            if route.response_schema is None:
                assert response.headers["content-type"].startswith("text/plain")
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
    tq.worker(burst=True, handle_signals=False).run()
    tq.enqueue("r.ok", [9], task_id="waiting-1")
    tq.enqueue("r.ok", [10], task_id="waiting-2")
    worker = tq.worker()
    from taskq_core.observability.heartbeat import HeartbeatMiddleware

    record = HeartbeatMiddleware(tq.settings.monitoring).record(worker)
    tq.broker.put_heartbeat(worker.id, orjson.dumps(record), 60_000, 0)
    alerts.evaluate(tq, force=True)
    return tq


@pytest.fixture
def client(populated: TaskQueue) -> Client:
    return Client(RouteTable(populated, auth=admin))


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
    assert client.json("GET", "/metrics/summary")["succeeded"] == 3
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
    # admin routes, with credentials
    cancelled = client.json("POST", "/jobs/waiting-1/cancel", headers=auth)
    assert cancelled == {"id": "waiting-1", "queue": "default", "cancelled": True,
                         "status": "cancelled"}  # fmt: skip
    again = client("POST", "/jobs/waiting-1/cancel", headers=auth)
    assert again.status == 409
    retried = client.json("POST", "/failed/default/retry", {"id": [dead_id]}, auth)
    assert retried == {"queue": "default", "requested": 1, "retried": 1}
    tq.worker(burst=True, handle_signals=False).run()  # it fails again
    purged = client.json("POST", "/failed/default/purge", {"all": ["true"]}, auth)
    assert purged == {"queue": "default", "requested": 1, "purged": 1}
    assert client.json("GET", "/failed")["total"] == 0
    retried = client.json("POST", "/failed/default/retry", {"all": ["1"]}, auth)
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
    ],
)
def test_bad_query_and_path_parameters_are_400(
    client: Client, path: str, query: dict[str, list[str]]
) -> None:
    response = client("GET", path, query)
    assert response.status == 400
    message = orjson.loads(response.body)["message"]
    assert "parameter" in message


def test_bad_admin_parameters_are_400(client: Client) -> None:
    auth = {"authorization": TOKEN}
    assert client("POST", "/failed/default/retry", {}, auth).status == 400  # neither
    both = {"id": ["a"], "all": ["true"]}
    assert client("POST", "/failed/default/purge", both, auth).status == 400
    assert client("POST", "/failed/default/retry", {"all": ["maybe"]}, auth).status == 400
    many = {"id": [f"id{i}" for i in range(101)]}
    assert client("POST", "/failed/default/retry", many, auth).status == 400
    assert client("POST", "/failed/nope/retry", {"all": ["true"]}, auth).status == 404
    assert client("GET", "/failed", {"queue": ["nope"]}).status == 404


@pytest.mark.parametrize("path", ["/nope", "/metrics/nope", "/jobs/a/b/c", "/health/x", "/tasks"])
def test_unknown_paths_are_404(client: Client, path: str) -> None:
    assert client("GET", path).status == 404


def test_unknown_job_is_404(client: Client) -> None:
    assert client("GET", "/jobs/does-not-exist").status == 404
    auth = {"authorization": TOKEN}
    assert client("POST", "/jobs/does-not-exist/cancel", headers=auth).status == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/health", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("PUT", "/jobs/abc", "GET, HEAD"),
        ("GET", "/failed/default/retry", "POST"),
        ("GET", "/jobs/abc/cancel", "POST"),
        ("OPTIONS", "/failed", "GET, HEAD"),
    ],
)
def test_wrong_methods_are_405_with_allow(
    client: Client, method: str, path: str, allow: str
) -> None:
    response = client(method, path)
    assert response.status == 405
    assert response.headers["allow"] == allow


def test_trailing_slash_and_index(client: Client) -> None:
    assert client("GET", "/health/live/").status == 200
    index = client.json("GET", "")
    assert index["openapi"] == "/tasks/openapi.json"
    assert {"method": "POST", "path": "/tasks/jobs/{id}/cancel", "summary":
            "Cancel a queued or scheduled task.", "admin": True} in index["routes"]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/failed/default/retry"), ("POST", "/failed/default/purge"),
     ("POST", "/jobs/waiting-2/cancel")],
)  # fmt: skip
def test_admin_routes_need_auth(populated: TaskQueue, method: str, path: str) -> None:
    query = {} if "jobs" in path else {"all": ["true"]}
    no_auth = Client(RouteTable(populated))
    response = no_auth(method, path, query)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    guarded = Client(RouteTable(populated, auth=admin))
    assert guarded(method, path, query).status == 401  # no credentials at all
    wrong = guarded(method, path, query, {"authorization": "Bearer nope"})
    assert wrong.status == 403
    assert guarded(method, path, query, {"cookie": "session=someone"}).status == 403
    assert guarded(method, path, query, {"authorization": TOKEN}).status == 200
    assert populated.handle("waiting-2").status() in ("queued", "cancelled")


def test_private_reads_need_auth_but_health_stays_open(populated: TaskQueue) -> None:
    client = Client(RouteTable(populated, auth=admin, public_read=False))
    assert client("GET", "/metrics").status == 401
    assert client("GET", "/metrics", headers={"authorization": "Bearer x"}).status == 403
    assert client("GET", "/metrics", headers={"authorization": TOKEN}).status == 200
    for path in ("/health", "/health/live", "/health/ready"):
        assert client("GET", path).status == 200


def test_public_read_and_prefix_come_from_settings(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory", http={"prefix": "/ops/q/", "public_read": False})
    table = RouteTable(tq)
    assert (table.prefix, table.public_read) == ("/ops/q", False)
    assert "/ops/q/metrics" in table.openapi()["paths"]


def test_failures_never_leak_a_traceback(
    populated: TaskQueue, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(app: TaskQueue) -> dict[str, Any]:
        raise RuntimeError("secret internals redis://u:pw@host")

    monkeypatch.setattr(facade, "registry", broken)
    client = Client(RouteTable(populated))
    response = client("GET", "/registry")
    assert response.status == 500
    assert b"secret" not in response.body
    assert b"pw" not in response.body
    assert "Traceback" in caplog.text  # logged on the server instead

    def refuse(request: Request) -> bool:
        raise KeyError("boom")

    crashing = Client(RouteTable(populated, auth=refuse))
    assert crashing("POST", "/failed/default/purge", {"all": ["1"]}).status == 500


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
    client = Client(RouteTable(dead_broker))
    for path in ("/metrics", "/failed", "/health", "/health/ready", "/status"):
        response = client("GET", path)
        assert response.status in (503, 200), path
        assert b":pw@" not in response.body
    assert client("GET", "/metrics").status == 503
    assert client("GET", "/health").status == 503
    assert client.json("GET", "/status")["status"] == "unhealthy"
    assert client("GET", "/health/live").status == 200


async def test_dispatch_async_runs_in_a_thread(populated: TaskQueue) -> None:
    table = RouteTable(populated)
    response = await table.dispatch_async(Request("GET", "/metrics/summary"))
    assert response.status == 200
    assert orjson.loads(response.body)["enqueued"] >= 4

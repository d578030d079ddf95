"""Message signing (security.signing_keys): signed messages run; unsigned, tampered and
unknown-key ones never do: they are dead-lettered with reason ``signature`` on their first
delivery, counted, and raise the bad_signature alert. Keys rotate without downtime, and a
retry (the worker's, the supervisor's hard time limit path, the dead-letter queue's) is
still signed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import ManualClock, TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.errors import HardTimeout
from taskq_core.message import Message, decode, stored_dict
from taskq_core.observability import alerts
from taskq_core.retry import RetryPolicy
from taskq_core.signing import BadSignature, Signer, canonical
from taskq_core.worker import failure_outcome

NEW = "n3w-secret-0123456789abcdef"
OLD = "0ld-secret-0123456789abcdef"
START = 1_800_000_000.0


def message(task_id: str = "t1", *args: Any) -> Message:
    return Message(task_id, "billing.charge", "default", list(args), {}, 0, int(START * 1000))


def test_sign_and_verify() -> None:
    signer = Signer({"k2": NEW, "k1": OLD})
    d = signer.sign(message("t1", 10).to_dict())
    assert d["sig"].startswith("k2:")
    signer.verify(d)
    # canonical: the same object stored with other key order and spacing verifies
    reordered = orjson.loads(orjson.dumps(dict(reversed(list(d.items())))))
    signer.verify(reordered)
    assert canonical(d) == canonical(reordered)
    assert b'"sig"' not in canonical(d)
    assert NEW not in repr(signer)
    assert OLD not in repr(signer)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("sig"), "message is not signed"),
        (
            lambda d: d.update(args=[1_000_000]),
            r"signature does not match the message \(key id 'k1'\)",
        ),
        (lambda d: d.update(task="admin.drop_all"), "signature does not match"),
        (lambda d: d.update(queue="high"), "signature does not match"),
        (lambda d: d.update(id="t2"), "signature does not match"),
        (lambda d: d.update(enqueued_at=1), "signature does not match"),
        (lambda d: d.update(timeout=999.0), "signature does not match"),
        (lambda d: d.update(sig="k9:" + "0" * 64), "signed with key id 'k9', which is not in"),
        (lambda d: d.update(sig="k1:zz"), "is not '<key id>:<64 hex digits>'"),
        (lambda d: d.update(sig="k1:" + "é" * 64), "is not '<key id>:<64 hex digits>'"),
        (lambda d: d.update(sig=["k1"]), "'sig' is not a string"),
    ],
)
def test_every_check_that_fails_is_named(
    change: Callable[[dict[str, Any]], Any], problem: str
) -> None:
    signer = Signer({"k1": OLD})
    d = signer.sign(message("t1", 10).to_dict())
    change(d)
    with pytest.raises(BadSignature, match=problem) as info:
        signer.verify(d)
    assert OLD not in str(info.value)
    assert signer.signature(d).split(":")[1] not in str(info.value)  # nor the digest


def test_signed_runs_unsigned_tampered_and_unknown_key_are_dead_lettered(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, security={"signing_keys": {"k1": NEW}})
    ran: list[Any] = []

    @tq.task(name="billing.charge")
    def charge(amount: int) -> int:
        ran.append(amount)
        return amount

    good = charge.enqueue(10)
    stored = tq.broker.get("default", good.id)
    assert stored is not None
    assert stored.message is not None
    assert stored_dict(stored.message, stored.id, stored.queue)["sig"].startswith("k1:")

    now = int(START * 1000)
    tampered = stored_dict(stored.message, stored.id, stored.queue)
    tampered.update(id="tampered", args=[1_000_000])
    forged = {
        "unsigned": message("unsigned", 666).encode(),
        "tampered": orjson.dumps(tampered),
        "unknown": message("unknown", 666).encode(signer=Signer({"k9": "attacker-secret-0123456"})),
        "wrongsecret": message("wrongsecret", 666).encode(signer=Signer({"k1": OLD})),
    }
    tq.broker.enqueue(
        [EnqueueItem("default", i, "billing.charge", body) for i, body in forged.items()], now
    )
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()

    assert good.result(timeout=5) == 10
    assert ran == [10], "a message without a valid signature ran"
    assert worker.counts.started == 5  # one delivery each
    dead = {d.id: orjson.loads(d.error or b"") for d in tq.broker.dead_list("default", 0, 10)}
    assert set(dead) == set(forged)
    for record in dead.values():
        assert record["reason"] == "signature"
        assert record["error"]["type"] == "BadSignature"
        assert NEW not in record["error"]["message"]
    assert "not signed" in dead["unsigned"]["error"]["message"]
    assert "does not match" in dead["tampered"]["error"]["message"]
    assert "key id 'k9'" in dead["unknown"]["error"]["message"]
    assert "does not match" in dead["wrongsecret"]["error"]["message"]
    stats = tq.broker.queue_info(["default"])[0].stats
    assert stats["bad_signature"] == 4
    assert stats["dead"] == 4


def test_key_rotation_old_key_still_verifies_new_key_signs(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    before = make_app(broker_kind, security={"signing_keys": {"old": OLD}})
    ran: list[str] = []

    @before.task(name="billing.charge")
    def charge_before(who: str) -> None:
        ran.append(who)

    old_handle = charge_before.enqueue("signed with the old key")
    # every process moved on: the new key first (it signs), the old one still verifies
    after = make_app(broker_kind, security={"signing_keys": {"new": NEW, "old": OLD}})
    if broker_kind == "memory":
        after.broker = before.broker  # one in-memory broker for both applications

    @after.task(name="billing.charge")
    def charge(who: str) -> None:
        ran.append(who)

    new_handle = charge.enqueue("signed with the new key")
    stored = after.broker.get("default", new_handle.id)
    assert stored is not None
    assert stored.message is not None
    assert stored_dict(stored.message, stored.id, stored.queue)["sig"].startswith("new:")
    after.worker(burst=True, handle_signals=False).run()
    assert sorted(ran) == ["signed with the new key", "signed with the old key"]
    assert old_handle.info()["status"] == "succeeded"
    # once the old key is removed, what it signs is refused
    third = make_app(broker_kind, security={"signing_keys": {"new": NEW}})
    if broker_kind == "memory":
        third.broker = before.broker

    @third.task(name="billing.charge")
    def charge_third(who: str) -> None:
        ran.append(who)

    late = charge_before.enqueue("signed with the retired key")
    third.worker(burst=True, handle_signals=False).run()
    assert "signed with the retired key" not in ran
    assert late.info()["status"] == "dead"


def test_a_retry_is_signed_again(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    clock = ManualClock(START)
    tq = make_app(
        broker_kind,
        clock=clock,
        security={"signing_keys": {"k1": NEW}},
        retry={"max_retries": 2, "backoff": 1.0, "jitter": 0.0},
    )
    runs: list[int] = []

    @tq.task(name="billing.charge")
    def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("first attempt fails")
        return "ok"

    handle = flaky.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    stored = tq.broker.get("default", handle.id)
    assert stored is not None
    assert stored.message is not None
    retry = stored_dict(stored.message, stored.id, stored.queue)
    assert retry["attempt"] == 1
    assert "last_error" in retry["headers"]
    Signer({"k1": NEW}).verify(retry)  # attempt, due_at and headers changed: signed again
    clock.advance(5)
    tq.worker(burst=True, handle_signals=False).run()
    assert handle.result(timeout=5) == "ok"
    assert len(runs) == 2


def test_the_supervisors_hard_limit_path_signs_its_retry() -> None:
    signer = Signer({"k1": NEW})
    msg = decode(message("t1", 1).encode(signer=signer), verify=signer.verify)
    exc = HardTimeout("ran past its hard time limit")
    f = failure_outcome(
        RetryPolicy(max_retries=3), "billing.charge", msg, exc, now_ms=0, base={}, signer=signer
    )
    assert f.kind == "retry"
    retried = decode(f.retry_body, verify=signer.verify)  # raises if not signed again
    assert retried.attempt == 1


def test_a_dead_lettered_task_retried_keeps_its_signature(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, security={"signing_keys": {"k1": NEW}}, retry={"max_retries": 0})
    runs: list[int] = []

    @tq.task(name="billing.charge")
    def once_bad() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("bad first time")
        return "ok"

    handle = once_bad.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    assert handle.info()["status"] == "failed"
    assert tq.broker.dead_retry("default", [handle.id]) == 1
    tq.worker(burst=True, handle_signals=False).run()
    assert handle.result(timeout=5) == "ok"


def test_bad_signatures_raise_an_alert(make_app: Callable[..., TaskQueue]) -> None:
    off: dict[str, Any] = {
        "max_wait_p95": None,
        "max_runtime_p95": None,
        "max_error_rate": None,
        "max_backlog": None,
        "max_oldest_age": None,
        "max_worker_rss_mb": None,
        "alert_no_worker": False,
    }
    tq = make_app("redis", security={"signing_keys": {"k1": NEW}}, monitoring=off)
    tq.clock = ManualClock(START)
    events: list[dict[str, Any]] = []
    tq.alert_sinks.append(events.append)

    @tq.task(name="billing.charge")
    def charge() -> None:
        return None

    assert alerts.evaluate(tq, force=True)  # the window's first snapshot
    forged = message("forged").encode()
    tq.broker.enqueue([EnqueueItem("default", "forged", "billing.charge", forged)], 0)
    tq.worker(burst=True, handle_signals=False).run()
    tq.clock.advance(2)
    assert alerts.evaluate(tq, force=True)
    active = {a["key"]: a for a in alerts.state(tq)["active"]}
    a = active["bad_signature:queue=default"]
    assert a["severity"] == "critical"
    assert a["value"] == 1
    assert [e["rule"] for e in events if e["event"] == "fired"] == ["bad_signature"]


def test_the_supervisor_does_not_sign_a_message_changed_while_its_task_ran(
    make_app: Callable[..., TaskQueue], redis_client: Any
) -> None:
    from taskq_core.keys import Keys
    from taskq_core.supervisor.children import Child, Run, settle_timed_out

    tq = make_app("redis", security={"signing_keys": {"k1": NEW}})

    @tq.task(name="billing.charge", max_retries=3)
    def charge(amount: int) -> None:
        return None

    handle = charge.enqueue(1)
    now_ms = int(START * 1000)
    result, _ = tq.broker.fetch(["default"], 1, now_ms)
    (delivery,) = result.deliveries
    # while the task runs, someone with write access to Redis changes its arguments
    msg_key = Keys(tq.settings.key_prefix).queue("default")[3]
    tampered = stored_dict(redis_client.hget(msg_key, handle.id), handle.id, "default")
    tampered["args"] = [1_000_000]
    redis_client.hset(msg_key, handle.id, orjson.dumps(tampered))
    # ... and the supervisor kills the process at its hard time limit
    run = Run("default", handle.id, delivery.fence, "billing.charge", 1.0, 0.0, now_ms)
    child = Child(0, None, 0, None, 0.0, worker_id="w1")  # type: ignore[arg-type]
    assert settle_timed_out(tq, child, run, now_ms) == "handed back (unreadable message)"
    stored = tq.broker.get("default", handle.id)
    assert stored is not None
    assert stored.message is not None
    with pytest.raises(BadSignature, match="does not match"):
        # not signed again
        Signer({"k1": NEW}).verify(stored_dict(stored.message, stored.id, stored.queue))


def test_signing_secrets_never_reach_a_route(make_app: Callable[..., TaskQueue]) -> None:
    """The configuration routes show the key ids and mask the secrets (and the webhook)."""
    from taskq_core.http import Request
    from taskq_core.http.routes import RouteTable

    hook = "https://hooks.example/T0/B0/s3cret-path"
    tq = make_app(
        "memory",
        security={"signing_keys": {"2026-12": NEW, "2026-06": OLD}},
        monitoring={"alert_webhook": hook},
    )
    table = RouteTable(tq, auth=lambda _request: True)
    for path in ("/diagnostics", "/metrics/system", "/registry"):
        response = table.dispatch(Request("GET", path, {}, {"authorization": "x"}, b""))
        assert response.status == 200, path
        for secret in (NEW, OLD, hook, "s3cret-path"):
            assert secret.encode() not in response.body, (path, secret)
    diagnostics = table.dispatch(Request("GET", "/diagnostics", {}, {"authorization": "x"}, b""))
    shown = diagnostics.body.decode()
    assert '"2026-12":"***"' in shown.replace(" ", "")
    assert '"2026-06":"***"' in shown.replace(" ", "")

"""Every field of a message envelope is checked at decode: a message with any field of the
wrong type, out of range, or unknown is refused with an error naming the field, and a
worker dead-letters it on its first delivery (issue 15: a ``due_at`` string crash-looped
every worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.message import BadMessage, Message, check_delivery, decode
from taskq_core.validation import MAX_DEPTH

NOW = 1_800_000_000_000


def envelope(**fields: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "v": 1,
        "id": "t1",
        "task": "billing.charge",
        "queue": "default",
        "args": [1],
        "kwargs": {},
        "attempt": 0,
        "enqueued_at": NOW,
    }
    for name, value in fields.items():
        if value is _MISSING:
            d.pop(name)
        else:
            d[name] = value
    return d


_MISSING = object()
_DEEP: Any = 1
for _ in range(MAX_DEPTH + 1):
    _DEEP = [_DEEP]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        # the fields of issue 15, written straight into Redis
        ({"due_at": "tomorrow"}, r"'due_at' must be an integer .* got a string 'tomorrow'"),
        ({"due_at": 1.5}, r"'due_at' must be an integer"),
        ({"due_at": True}, r"'due_at' must be an integer .* got a boolean True"),
        ({"due_at": -1}, r"'due_at' must be an integer from 0"),
        ({"timeout": "30"}, r"'timeout' must be a finite number of seconds above 0"),
        ({"timeout": 0}, r"'timeout' must be a finite number"),
        ({"timeout": -2.5}, r"'timeout' must be a finite number"),
        ({"timeout": 1e300}, r"'timeout' must be a finite number"),
        ({"timeout": False}, r"'timeout' must be a finite number"),
        ({"max_retries": "3"}, r"'max_retries' must be an integer"),
        ({"max_retries": -1}, r"'max_retries' must be an integer from 0"),
        ({"max_retries": True}, r"'max_retries' must be an integer"),
        ({"trace": "00-abc"}, r"'trace' must be an object of at most 32 strings"),
        ({"trace": {"traceparent": 5}}, r"'trace' must be an object .* got 'traceparent': an int"),
        ({"trace": {"k": "x" * 9000}}, r"'trace' must be an object"),
        ({"trace": {f"k{i}": "v" for i in range(33)}}, r"'trace' must be an object"),
        ({"headers": []}, r"'headers' must be an object, got an array"),
        ({"idempotency_key": 7}, r"'idempotency_key' must be a string"),
        ({"idempotency_key": ""}, r"'idempotency_key' must be a string of 1 to 200"),
        ({"sig": 1}, r"'sig' must be a string"),
        # required fields: bools are not integers, ranges and lengths hold
        ({"attempt": True}, r"'attempt' must be an integer"),
        ({"attempt": -1}, r"'attempt' must be an integer from 0"),
        ({"enqueued_at": "now"}, r"'enqueued_at' must be an integer"),
        ({"enqueued_at": 2**60}, r"'enqueued_at' must be an integer from 0 to"),
        ({"id": ""}, r"'id' must be a string of 1 to 200"),
        ({"id": "x" * 201}, r"'id' must be a string of 1 to 200"),
        ({"queue": "q" * 65}, r"'queue' must be a string of 1 to 64"),
        ({"task": "os.system; rm"}, r"'task' must be a task name"),
        ({"task": _MISSING}, r"'task' must be a string .* got null"),
        ({"args": {"a": 1}}, r"'args' must be an array, got an object"),
        ({"kwargs": []}, r"'kwargs' must be an object, got an array"),
        ({"v": True}, r"message version a boolean True is not supported"),
        ({"v": "1"}, r"message version a string '1' is not supported"),
        ({"callback": "os.system"}, r"unknown field\(s\) 'callback'"),
        ({"args": [_DEEP]}, r"'args' is nested deeper than 64 levels"),
        ({"kwargs": {"x": _DEEP}}, r"'kwargs' is nested deeper than 64 levels"),
    ],
)
def test_every_field_is_checked(fields: dict[str, Any], problem: str) -> None:
    data = orjson.dumps(envelope(**fields))
    with pytest.raises(BadMessage, match=problem):
        decode(data)


#: a message with every field a producer writes (a workflow step's aside)
EVERY_FIELD = Message(
    "t1",
    "billing.charge",
    "default",
    [1, {"a": [2]}],
    {"k": None},
    2,
    NOW,
    NOW + 5000,
    3,
    1.5,
    "order-42",
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"last_error": {"type": "ValueError", "message": "x"}},
    NOW + 60_000,
)


def test_every_field_the_producer_writes_decodes() -> None:
    m = EVERY_FIELD
    assert decode(m.encode()) == m
    # null is an absent optional field; an integer timeout is seconds too
    assert decode(orjson.dumps(envelope(due_at=None, timeout=30))).timeout == 30
    # as deep as enqueue allows is fine
    ok: Any = 1
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert decode(orjson.dumps(envelope(args=ok))).args == ok


def test_a_message_stored_under_another_id_or_queue_is_refused() -> None:
    m = decode(orjson.dumps(envelope()))
    check_delivery(m, "t1", "default")
    with pytest.raises(BadMessage, match=r"'id' is 't1' but the message is stored as task 't2'"):
        check_delivery(m, "t2", "default")
    with pytest.raises(BadMessage, match=r"'queue' is 'default' .* stored in queue 'low'"):
        check_delivery(m, "t1", "low")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"due_at": "tomorrow"}, "due_at"),
        ({"timeout": "soon"}, "timeout"),
        ({"max_retries": "3"}, "max_retries"),
        ({"trace": ["x"]}, "trace"),
        ({"id": "someone-else"}, "id"),
    ],
)
def test_a_wrongly_typed_field_is_dead_lettered_on_its_first_delivery(
    make_app: Callable[..., TaskQueue], broker_kind: str, fields: dict[str, Any], field: str
) -> None:
    tq = make_app(broker_kind)
    ran: list[Any] = []

    @tq.task(name="billing.charge")
    def charge(*args: Any) -> None:
        ran.append(args)

    body = orjson.dumps(envelope(**fields))
    tq.broker.enqueue([EnqueueItem("default", "t1", "billing.charge", body)], NOW)
    worker = tq.worker(burst=True, handle_signals=False)

    async def run() -> None:
        # bounded: before the fix, such a message was handed back without end
        try:
            await asyncio.wait_for(worker.async_run(), timeout=30)
        finally:
            await tq.broker.aclose()

    asyncio.run(run())
    assert ran == [], "a message with a bad field ran"
    assert worker.counts.started == 1, "the bad message was delivered more than once"
    dead = {d.id: orjson.loads(d.error or b"") for d in tq.broker.dead_list("default", 0, 10)}
    assert set(dead) == {"t1"}
    assert dead["t1"]["reason"] == "bad_message"
    assert dead["t1"]["error"]["type"] == "BadMessage"
    assert f"'{field}'" in dead["t1"]["error"]["message"]

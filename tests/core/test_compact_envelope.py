"""The compact envelope (``message_format = "compact"``, the default): a JSON array that does
not repeat the id and queue the message is stored under. Every worker reads both forms (a
worker of this version reads what the previous version wrote), both are checked field by
field, and a signature binds the id and queue either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.message import BadMessage, Message, decode, stored_dict
from taskq_core.signing import BadSignature, Signer
from tests.security.test_envelope import _DEEP, _MISSING, EVERY_FIELD, NOW, envelope

KEY = b"k" * 32

FULL = EVERY_FIELD


def test_a_compact_message_is_an_array_without_the_id_and_queue_and_decodes_whole() -> None:
    data = FULL.encode(compact=True)
    assert data.startswith(b"[2,")
    assert b'"t1"' not in data
    assert b'"default"' not in data
    assert decode(data, task_id="t1", queue="default") == FULL
    # the usual no-op: its defaults (attempt 0, no kwargs, no options) are left out
    plain = Message("0123456789abcdef0123456789abcdef", "app.noop", "default", [7], {}, 0, NOW)
    small, full = plain.encode(compact=True), plain.encode()
    assert small == b'[2,"app.noop",[7],' + str(NOW).encode() + b"]"
    assert len(full) - len(small) > 100
    assert decode(small, task_id=plain.id, queue="default") == plain
    # an attempt without kwargs, kwargs without options
    for m in (
        Message("t2", "app.noop", "low", [], {}, 3, NOW),
        Message("t3", "app.noop", "low", [], {"x": 1}, 0, NOW),
    ):
        assert decode(m.encode(compact=True), task_id=m.id, queue="low") == m


def test_the_readers_that_only_show_a_message_see_the_full_envelope() -> None:
    data = FULL.encode(compact=True)
    assert stored_dict(data, "t1", "default") == orjson.loads(FULL.encode())
    assert stored_dict(data)["kwargs"] == {"k": None}  # without its id and queue: the rest
    assert stored_dict(b"[3, 1]") == {}  # not an envelope: nothing, no error


def test_a_compact_message_cannot_be_read_without_where_it_is_stored() -> None:
    with pytest.raises(BadMessage, match="read with the task id and queue it is stored as"):
        decode(FULL.encode(compact=True))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[]", r"message version null is not supported \(expected 1 or 2\)"),
        (b'[3,"a.b",[],1]', r"message version 3 is not supported"),
        (b'[true,"a.b",[],1]', r"message version a boolean True is not supported"),
        (b'[2,"a.b",[]]', r"compact message has 3 items, not 4 to 7"),
        (b'[2,"a.b",[],1,0,{},{},9]', r"compact message has 8 items"),
        (b'[2,"a.b",[],1,0,{},[]]', r"'extra' must be an object .* got an array"),
        (b'[2,"a.b",[],1,0,{},{"wf":{}}]', r"unknown optional field\(s\) 'wf'"),
        (b'[2,"a.b",[],1,0,{},{"id":"x"}]', r"unknown optional field\(s\) 'id'"),
        (b'[2,"a.b",{},1]', r"'args' must be an array, got an object"),
        (b'[2,"os.system; rm",[],1]', r"'task' must be a task name"),
        (b'[2,"a.b",[],"now"]', r"'enqueued_at' must be an integer"),
        (b'[2,"a.b",[],1,true]', r"'attempt' must be an integer"),
        (b'[2,"a.b",[],1,0,[]]', r"'kwargs' must be an object, got an array"),
        (b'[2,"a.b",[],1,0,{},{"due_at":"tomorrow"}]', r"'due_at' must be an integer"),
        (b'"just a string"', r"message is a string, not an object or array"),
        (orjson.dumps([2, "a.b", [_DEEP], 1]), r"'args' is nested deeper than 64 levels"),
        (orjson.dumps([2, "a.b", [], 1, 0, {"x": _DEEP}]), r"'kwargs' is nested deeper"),
    ],
)
def test_every_part_of_a_compact_message_is_checked(data: bytes, problem: str) -> None:
    with pytest.raises(BadMessage, match=problem):
        decode(data, task_id="t1", queue="default")


@pytest.mark.parametrize(
    "fields",
    [{"timeout": 0}, {"trace": "00-abc"}, {"headers": []}, {"idempotency_key": 7}, {"sig": 1}],
)
def test_optional_fields_are_checked_as_in_the_full_form(fields: dict[str, Any]) -> None:
    d = envelope(**fields)
    compact = [2, d["task"], d["args"], d["enqueued_at"], 0, {}, fields]
    (name,) = fields
    with pytest.raises(BadMessage, match=f"'{name}' must be"):
        decode(orjson.dumps(compact), task_id="t1", queue="default")
    assert envelope(task=_MISSING)  # the helper this shares with the full form's tests


def test_a_signature_binds_the_id_and_queue_a_compact_message_does_not_hold() -> None:
    signer = Signer({"k1": KEY})
    data = FULL.encode(signer=signer, compact=True)
    assert decode(data, verify=signer.verify, task_id="t1", queue="default") == FULL
    # the same bytes stored as another task, or in another queue, are not valid
    with pytest.raises(BadSignature):
        decode(data, verify=signer.verify, task_id="t2", queue="default")
    with pytest.raises(BadSignature):
        decode(data, verify=signer.verify, task_id="t1", queue="low")
    # a signature over the full form verifies the compact form of the same message
    full = orjson.loads(FULL.encode(signer=signer))
    assert stored_dict(data, "t1", "default") == full


def _put(tq: TaskQueue, task_id: str, body: bytes) -> None:
    tq.broker.enqueue([EnqueueItem("default", task_id, "z.add", body)], 0)


def test_a_worker_of_this_version_runs_what_the_previous_version_wrote(
    make_app: Callable[..., TaskQueue],
) -> None:
    """The upgrade: tasks queued by taskq 0.1 (the full envelope, as it wrote it byte for
    byte), by a producer still set to ``full``, and by one writing the compact form, all
    run on one new worker; a retry keeps the form the worker is set to. (Two apps on one
    broker: Redis; each memory broker is its own.)"""
    tq = make_app("redis", retry={"backoff": 0.0, "jitter": 0.0})
    older = make_app("redis", message_format="full")
    ran: list[tuple[int, int]] = []
    tries: dict[int, int] = {}

    @tq.task(name="z.add")
    def add(a: int, b: int) -> int:
        tries[a] = tries.get(a, 0) + 1
        if a == 4 and tries[a] == 1:
            raise ConnectionError("once")
        ran.append((a, b))
        return a + b

    older.task(name="z.add")(add)
    written_by_0_1 = (
        b'{"v":1,"id":"old-1","task":"z.add","queue":"default","args":[1,2],"kwargs":{},'
        b'"attempt":0,"enqueued_at":' + str(NOW).encode() + b"}"
    )
    _put(tq, "old-1", written_by_0_1)
    full = older.get_task("z.add").enqueue(2, 3)
    compact = add.enqueue(4, 5)
    stored = {h: tq.broker.get("default", h.id) for h in (full, compact)}
    bodies = {h: s.message or b"" if s is not None else b"" for h, s in stored.items()}
    assert bodies[full].startswith(b"{")
    assert bodies[compact].startswith(b"[2,")
    for _ in range(3):  # the retry is due a moment after the first burst ends
        tq.worker(burst=True, handle_signals=False).run()
        if len(ran) == 3:
            break
    assert sorted(ran) == [(1, 2), (2, 3), (4, 5)]
    assert tq.handle("old-1").result(timeout=5) == 3
    assert full.result(timeout=5) == 5
    assert compact.result(timeout=5) == 9
    assert compact.info()["attempts"] == 2


def test_a_hostile_compact_message_is_dead_lettered_on_its_first_delivery(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    tq.task(name="z.add")(lambda a, b: a + b)
    _put(tq, "bad-1", b'[2,"z.add",[1,2],1,0,{},{"callback":"os.system"}]')
    _put(tq, "bad-2", b"[9]")
    tq.worker(burst=True, handle_signals=False).run()
    dead = {d.id: orjson.loads(d.error or b"") for d in tq.broker.dead_list("default", 0, 10)}
    assert set(dead) == {"bad-1", "bad-2"}
    assert "unknown optional field(s) 'callback'" in dead["bad-1"]["error"]["message"]
    assert "message version 9 is not supported" in dead["bad-2"]["error"]["message"]
    for d in tq.broker.dead_list("default", 0, 10):
        assert d.message is not None  # kept as it was, to be looked at

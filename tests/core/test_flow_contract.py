"""Flow control at the broker: gates enforced atomically with the fetch, on Redis (a real
server) and the in-memory broker alike (``lua/_lib.lua`` gate_admit/gate_end and
``taskq_core/flow/memory.py``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from taskq_core.brokers.base import Broker, Delivery, EnqueueItem, Outcome

Q = ["default"]
T0 = 1_800_000_000_000


# `broker`: tests/core/conftest.py (Redis and in-memory)


def gated(i: int | str, gate: dict[str, Any] | None = None, **more: Any) -> EnqueueItem:
    return EnqueueItem(
        "default",
        f"t{i}",
        "job",
        orjson.dumps({"n": i}),
        gate=orjson.dumps(gate) if gate is not None else b"",
        **more,
    )


def fetch(broker: Broker, want: int, now: int) -> tuple[list[Delivery], int | None]:
    result, _ = broker.fetch(Q, want, now)
    return result.deliveries, result.next_due_ms


def ok(d: Delivery, kind: str = "ok") -> Outcome:
    return Outcome(d.queue, d.id, d.fence, kind, "job", b'{"status":"succeeded"}')  # type: ignore[arg-type]


def stats(broker: Broker) -> dict[str, int]:
    (info,) = broker.queue_info(Q)
    return info.stats


def test_a_rate_limit_leases_a_burst_then_delays_the_rest_to_when_it_allows(
    broker: Broker,
) -> None:
    # 10 a second (one per 100 ms), bursts of 2
    rate = {"r": [[10, 1000, 2, "t:job"]]}
    broker.enqueue([gated(i, rate) for i in range(6)], T0)
    got, next_due = fetch(broker, 10, T0)
    assert [d.id for d in got] == ["t0", "t1"]
    # the others are not leased and not counted as an attempt: delayed, in order, one
    # interval apart, and the worker is told when to come back
    assert next_due == T0 + 100
    assert stats(broker)["throttled"] == 4
    state = broker.get("default", "t2")
    assert state is not None
    assert state.state == "throttled"
    assert state.deliveries == 0
    assert fetch(broker, 10, T0 + 50)[0] == []
    assert [d.id for d in fetch(broker, 10, T0 + 100)[0]] == ["t2"]
    assert [d.id for d in fetch(broker, 10, T0 + 200)[0]] == ["t3"]
    # over a long quiet spell the bucket refills to its burst, no more
    later = T0 + 10_000
    assert sorted(d.id for d in fetch(broker, 10, later)[0]) == ["t4", "t5"]


def test_rate_keys_are_separate_buckets(broker: Broker) -> None:
    a, b = {"r": [[1, 1000, 1, "t:job|a"]]}, {"r": [[1, 1000, 1, "t:job|b"]]}
    broker.enqueue([gated(1, a), gated(2, a), gated(3, b)], T0)
    assert sorted(d.id for d in fetch(broker, 10, T0)[0]) == ["t1", "t3"]
    assert [d.id for d in fetch(broker, 10, T0 + 1000)[0]] == ["t2"]


def test_a_concurrency_cap_holds_and_an_ended_lease_hands_its_slot_on(broker: Broker) -> None:
    cap = {"c": [[2, "t:job"]]}
    broker.enqueue([gated(i, cap) for i in range(4)] + [gated("free")], T0)
    got, _ = fetch(broker, 10, T0)
    # the ungated task behind the waiting ones is not held up by them
    assert [d.id for d in got] == ["t0", "t1", "tfree"]
    assert stats(broker)["capped"] == 2
    state = broker.get("default", "t2")
    assert state is not None
    assert state.state == "waiting"
    assert fetch(broker, 10, T0)[0] == []
    # a success frees a slot: the first waiter goes back to the front of the queue
    broker.settle([ok(got[0])], T0)
    assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t2"]
    # a retry ends the lease too
    retry = Outcome("default", "t1", got[1].fence, "retry", "job", b"", 0, got[1].body)
    broker.settle([retry], T0)
    assert [d.id for d in fetch(broker, 10, T0)[0]] in (["t3"], ["t1"])


def test_a_lapsed_lease_frees_its_slot_within_the_lease_time(broker: Broker) -> None:
    """A worker killed while holding the only slot: its lease lapses, the slot frees."""
    cap = {"c": [[1, "t:job|acct"]]}
    broker.enqueue([gated(1, cap), gated(2, cap)], T0)
    assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t1"]
    assert fetch(broker, 10, T0 + 5_000)[0] == []
    # lease 10 s: at its end t1 becomes a suspect and t2 has the slot
    got, _ = fetch(broker, 10, T0 + 10_001)
    assert [d.id for d in got] == ["t2"]
    # the suspect waits for the slot, still a suspect, then runs alone
    result, _ = broker.fetch(Q, 10, T0 + 10_002, alone=True)
    assert result.deliveries == []
    broker.settle([ok(got[0])], T0 + 10_003)
    result, _ = broker.fetch(Q, 10, T0 + 10_004, alone=True)
    assert [d.id for d in result.deliveries] == ["t1"]
    assert result.suspect


def test_a_graceful_hand_back_frees_the_slot(broker: Broker) -> None:
    cap = {"c": [[1, "t:job"]]}
    broker.enqueue([gated(1, cap), gated(2, cap)], T0)
    (d,) = fetch(broker, 10, T0)[0]
    assert broker.release([d]) == 1
    got = [x.id for x in fetch(broker, 10, T0)[0]]
    assert got in (["t1"], ["t2"])
    assert len(got) == 1


def test_an_expired_task_is_delivered_without_a_slot_or_a_token(broker: Broker) -> None:
    g = {"c": [[1, "t:job"]], "r": [[1, 1000, 1, "t:job"]], "e": T0 - 1}
    broker.enqueue([gated(1, g), gated(2, {"c": [[1, "t:job"]], "r": [[1, 1000, 1, "t:job"]]})], T0)
    got = fetch(broker, 10, T0)[0]
    # t1 is handed over only to be recorded as expired: t2 still gets the slot and token
    assert [d.id for d in got] == ["t1", "t2"]
    broker.settle([ok(got[0], "expired")], T0)
    state = broker.get("default", "t1")
    assert state is not None
    assert state.message is None
    assert orjson.loads(state.record or b"{}") == {"status": "succeeded"}
    assert stats(broker)["expired"] == 1


def test_a_unique_key_returns_the_holder_until_it_finishes(broker: Broker) -> None:
    u = {"u": ["t:job|k", "f"]}
    assert broker.enqueue([gated(1, u, unique_key="t:job|k")], T0) == ["t1"]
    assert broker.enqueue([gated(2, u, unique_key="t:job|k")], T0) == ["t1"]
    (d,) = fetch(broker, 10, T0)[0]
    # running: still held
    assert broker.enqueue([gated(3, u, unique_key="t:job|k")], T0) == ["t1"]
    broker.settle([ok(d)], T0)
    assert broker.enqueue([gated(4, u, unique_key="t:job|k")], T0) == ["t4"]


def test_unique_until_started_lets_go_when_it_is_leased(broker: Broker) -> None:
    u = {"u": ["t:job|k", "s"]}
    assert broker.enqueue([gated(1, u, unique_key="t:job|k")], T0) == ["t1"]
    assert broker.enqueue([gated(2, u, unique_key="t:job|k")], T0) == ["t1"]
    assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t1"]
    assert broker.enqueue([gated(3, u, unique_key="t:job|k")], T0) == ["t3"]


def test_a_unique_window_ends(broker: Broker) -> None:
    u = {"u": ["t:job|k", "f"]}
    one = gated(1, u, unique_key="t:job|k", unique_window_ms=1000)
    assert broker.enqueue([one], T0) == ["t1"]
    assert broker.enqueue([gated(2, u, unique_key="t:job|k", unique_window_ms=1000)], T0) == ["t1"]
    assert broker.enqueue([gated(3, u, unique_key="t:job|k")], T0 + 1001) == ["t3"]


def test_cancelling_a_waiting_or_throttled_task_leaves_nothing_behind(broker: Broker) -> None:
    g = {"c": [[1, "t:job"]], "u": ["t:job|w", "f"]}
    broker.enqueue([gated(1, {"c": [[1, "t:job"]]}), gated(2, g, unique_key="t:job|w")], T0)
    (held,) = fetch(broker, 10, T0)[0]
    assert broker.cancel("default", "t2", b'{"status":"cancelled"}') == "cancelled"
    # its unique key is free, and the freed slot wakes no ghost
    assert broker.enqueue([gated(3, g, unique_key="t:job|w")], T0) == ["t3"]
    broker.settle([ok(held)], T0)
    assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t3"]
    r = {"r": [[1, 1000, 1, "t:job|r"]]}
    broker.enqueue([gated(4, r), gated(5, r)], T0)
    assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t4"]
    assert broker.cancel("default", "t5", b'{"status":"cancelled"}') == "cancelled"
    assert fetch(broker, 10, T0 + 5000)[0] == []


def test_a_backlog_behind_parked_tasks_is_reached_in_one_bounded_call(broker: Broker) -> None:
    """Parking moves tasks out of the ready list, so a fetch goes on to what is behind
    them; a call looks at a bounded number of ids, and wakes a sleeper for the rest."""
    cap = {"c": [[1, "t:job"]]}
    broker.enqueue([gated(i, cap) for i in range(50)] + [gated("free")], T0)
    got = [d.id for d in fetch(broker, 2, T0)[0]]
    assert got == ["t0", "tfree"]
    assert stats(broker)["capped"] == 49


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b'{"r": [[0, 1000, 1, "k"]]}',
        b'{"r": [[10, 1000, 1]]}',
        b'{"r": "fast"}',
        b'{"c": [[-1, "k"]]}',
        b'{"c": [[1.5, "k"]]}',
        b'{"e": "tomorrow"}',
        b'{"u": ["k", "x"]}',
    ],
)
def test_a_malformed_gate_dead_letters_its_task_and_stops_nothing(
    broker: Broker, raw: bytes
) -> None:
    """A gate no producer writes (forged, corrupt): its task is dead-lettered with the
    reason, once; the fetch goes on and the task behind it runs."""
    bad = EnqueueItem("default", "tbad", "job", b"{}", gate=raw)
    broker.enqueue([bad, gated("ok")], T0)
    got, _ = fetch(broker, 10, T0)
    assert [d.id for d in got] == ["tok"]
    (dead,) = broker.dead_list("default", 0, 10)
    assert dead.id == "tbad"
    assert orjson.loads(dead.error or b"{}")["error"]["type"] == "BadGate"
    assert fetch(broker, 10, T0 + 1)[0] == []


def test_parked_tasks_queue_up_in_line_across_calls(broker: Broker) -> None:
    """Each task held back by a rate limit is due one interval after the last one parked,
    whichever call parked it: a backlog comes back in order, once each, not all at the next
    token (which would re-park all but one of them at every token)."""
    rate = {"r": [[1, 1000, 1, "t:job"]]}
    broker.enqueue([gated(i, rate) for i in (1, 2, 3)], T0)
    assert [d.id for d in fetch(broker, 1, T0)[0]] == ["t1"]
    assert fetch(broker, 1, T0)[0] == []  # t2 and t3 parked, in line
    broker.enqueue([gated(4, rate)], T0 + 10)
    got, next_due = fetch(broker, 1, T0 + 10)
    assert (got, next_due) == ([], T0 + 1000)
    for n, expected in enumerate(["t2", "t3", "t4"], start=1):
        assert fetch(broker, 5, T0 + n * 1000 - 1)[0] == []
        assert [d.id for d in fetch(broker, 5, T0 + n * 1000)[0]] == [expected]
    assert stats(broker)["throttled"] == 3


def test_a_forged_slot_count_is_reset_and_stops_nothing(
    redis_url: str, redis_client: Any, prefix: str
) -> None:
    """A concurrency counter overwritten in Redis by something else than taskq (not a
    number) is reset, not an error in every fetch (Redis only: the in-memory broker's
    counters cannot be written from outside)."""
    from taskq_core.brokers.redis import RedisBroker
    from taskq_core.keys import Keys

    from .conftest import SETTINGS

    broker = RedisBroker(redis_url, prefix=prefix, settings=SETTINGS)
    slots = Keys(prefix).queue("default").slots
    redis_client.hset(slots, "t:job", "lots")
    redis_client.hset(slots, "seq", "x")
    cap = {"c": [[1, "t:job"]]}
    try:
        broker.enqueue([gated(1, cap), gated(2, cap)], T0)
        got = fetch(broker, 10, T0)[0]
        assert [d.id for d in got] == ["t1"]
        broker.settle([ok(got[0])], T0)
        assert [d.id for d in fetch(broker, 10, T0)[0]] == ["t2"]
    finally:
        broker.close()

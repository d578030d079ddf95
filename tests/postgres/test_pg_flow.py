"""Rate limits, concurrency caps and expiry on PostgreSQL (schema version 4,
``sql/0004_flow.sql``): what the flow contract (``tests/core/test_flow_contract.py``, run on
this broker too) cannot show on one connection. Many fetchers and settlers at once, on two
capped queues listed in both orders, never exceed a cap, never deadlock and leave no waiter
behind; a schema at version 3 is upgraded with its tasks."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from importlib import resources

import orjson
import psycopg
import pytest

from taskq_core.brokers.base import Delivery, EnqueueItem, Outcome
from taskq_core.brokers.postgres import migrate
from taskq_core.brokers.postgres.broker import PostgresBroker
from taskq_core.brokers.postgres.schema import SCHEMA_VERSION, installed_version

pytestmark = pytest.mark.postgres

CAP = 2


def capped(queue: str, i: int) -> EnqueueItem:
    gate = {"c": [[CAP, f"q:{queue}"]]}
    return EnqueueItem(queue, f"{queue}{i}", "job", b"{}", gate=orjson.dumps(gate))


def test_caps_hold_under_many_fetchers_and_settlers_across_queues_without_deadlock(
    broker: PostgresBroker,
) -> None:
    """Six threads fetch from queues a and b (half of them b first), hold each lease a
    moment, then settle it, release it or let a retry end it. At every instant at most CAP
    leases of each queue are held, each task ends exactly once, and no call fails (a
    deadlock would fail one after PostgreSQL's deadlock_timeout)."""
    n = 60
    broker.enqueue([capped(q, i) for q in ("a", "b") for i in range(n)], 0)
    lock = threading.Lock()
    held: Counter[str] = Counter()
    most: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    errors: list[BaseException] = []
    deadline = time.monotonic() + 60

    def work(k: int) -> None:
        queues = ["a", "b"] if k % 2 else ["b", "a"]
        try:
            while time.monotonic() < deadline:
                with lock:
                    if sum(ended.values()) >= 2 * n:
                        return
                result, _ = broker.fetch(queues, 3, 0)
                got: list[Delivery] = result.deliveries
                if not got:
                    time.sleep(0.005)
                    continue
                with lock:
                    for d in got:
                        held[d.queue] += 1
                        most[d.queue] = max(most[d.queue], held[d.queue])
                time.sleep(0.002)
                for j, d in enumerate(got):
                    with lock:
                        held[d.queue] -= 1
                    if (d.id.endswith("7") and d.fence == 1) and j % 2 == 0:
                        broker.release([d])  # handed back: its slot frees, it runs again
                    elif d.id.endswith("3") and d.fence == 1:
                        retry = Outcome(d.queue, d.id, d.fence, "retry", "job", b"", 0, d.body)
                        broker.settle([retry], 0)
                    else:
                        ok = Outcome(d.queue, d.id, d.fence, "ok", "job", b'{"status":"ok"}')
                        assert broker.settle([ok], 0) == []
                        with lock:
                            ended[d.id] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert sum(ended.values()) == 2 * n, f"{sum(ended.values())} of {2 * n} ended"
    assert set(ended.values()) == {1}
    # the cap was reached, and never exceeded (the count is taken after the fetch returns
    # and dropped before the settle is sent: a held slot is only ever counted here longer
    # than the broker counts it, never shorter)
    assert most == Counter({"a": CAP, "b": CAP}), most
    info = {q.name: q for q in broker.queue_info(["a", "b"])}
    assert info["a"].waiting == info["b"].waiting == 0
    assert info["a"].stats["capped"] > 0


def test_a_throttled_or_waiting_task_shows_as_such_and_is_counted(broker: PostgresBroker) -> None:
    rate = orjson.dumps({"r": [[1, 60_000, 1, "t:job"]]})
    cap = orjson.dumps({"c": [[1, "t:job"]]})
    broker.enqueue(
        [
            EnqueueItem("default", "r1", "job", b"{}", gate=rate),
            EnqueueItem("default", "r2", "job", b"{}", gate=rate),
            EnqueueItem("default", "c1", "job", b"{}", gate=cap),
            EnqueueItem("default", "c2", "job", b"{}", gate=cap),
        ],
        0,
    )
    result, _ = broker.fetch(["default"], 10, 0)
    assert sorted(d.id for d in result.deliveries) == ["c1", "r1"]
    # r2 is due a minute after r1's start, by the broker's clock
    assert result.next_due_ms is not None
    assert 59_000 <= result.next_due_ms - result.now_ms <= 60_000
    for tid, state in (("r2", "throttled"), ("c2", "waiting")):
        found = broker.get("default", tid)
        assert found is not None
        assert found.state == state
    (info,) = broker.queue_info(["default"])
    assert (info.delayed, info.waiting, info.leased) == (1, 1, 2)
    assert info.stats["throttled"] == 1
    assert info.stats["capped"] == 1


def test_a_version_3_schema_is_upgraded_keeping_its_tasks(postgres_url: str) -> None:
    schema = f"tq_v3_{uuid.uuid4().hex[:8]}"
    files = resources.files("taskq_core.brokers.postgres").joinpath("sql")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE SCHEMA {schema}")
            for name in ("0001_init.sql", "0002_unique.sql", "0003_leases_by_key.sql"):
                conn.execute(files.joinpath(name).read_text().replace("{schema}", schema))
            conn.execute(f"INSERT INTO {schema}.meta VALUES ('schema_version', '3')")
            conn.execute(
                f"SELECT {schema}.enqueue('ns', 0, ARRAY['default'], ARRAY['old'], "
                "ARRAY['job'], ARRAY['\\x7b7d'::bytea], ARRAY[0::bigint], ARRAY[0::bigint], "
                'ARRAY[NULL::text], 1000, ARRAY[NULL::text], ARRAY[NULL::"char"], '
                "ARRAY[0::bigint])"
            )
            assert migrate(conn, schema) == (3, SCHEMA_VERSION)
            assert installed_version(conn, schema) == SCHEMA_VERSION == 5
            row = conn.execute(
                f"SELECT o_ids FROM {schema}.fetch('ns', ARRAY['default'], 10, 0, false, 10000, 5)"
            ).fetchone()
            assert row == (["old"],)
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

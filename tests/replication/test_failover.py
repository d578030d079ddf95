"""A Sentinel failover under load: two worker processes and a producer run through a
``redis+sentinel://`` URL while the master is SIGKILLed; the replica is promoted, and the
producer and the workers continue by themselves.

With ``broker.min_replicas_acked = 1`` no acknowledged enqueue is lost. Without it, what is
lost is bounded as docs/scaling.md says: only enqueues acknowledged within the replication
lag before the master died (on this loopback set-up, none in practice). Each run writes its
figures to ``failover-<mode>.json`` in the test's directory and prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskq_core import TaskQueue
from taskq_core.settings import Settings
from tests.failover import failover_under_load, scheduler_and_routes_follow
from tests.inthread import wait_for as wait_until
from tests.replication.servers import DOWN_AFTER_MS, SentinelGroup

pytestmark = [pytest.mark.sentinel, pytest.mark.slow]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("acked", [1, 0], ids=["min_replicas_acked=1", "unacked"])
def test_a_master_killed_under_load_fails_over_and_loses_nothing_acknowledged(
    tmp_path: Path, acked: int
) -> None:
    # two replicas: after the failover the new master still has one to acknowledge enqueues
    group = SentinelGroup(tmp_path / "group", replicas=2)
    group.start()
    old = group.node(group.master_port())
    try:
        figures = failover_under_load(
            tmp_path,
            group.url,
            "fo",
            acked,
            kill=old.kill,
            promoted=lambda: group.master_port() != old.port,
            down_after_ms=DOWN_AFTER_MS,
        )
        # the producer saw the outage: Sentinel's clients do not retry through it
        assert figures["not_acknowledged"], figures
    finally:
        group.stop()


@pytest.mark.timeout(120)
def test_the_scheduler_and_the_web_routes_follow_a_failover(tmp_path: Path) -> None:
    group = SentinelGroup(tmp_path / "group")
    group.start()
    old = group.node(group.master_port())
    try:
        figures = scheduler_and_routes_follow(
            group.url, "fos", kill=old.kill, promoted=lambda: group.master_port() != old.port
        )
        assert figures["health_200_after_s"] < 15
    finally:
        group.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("acked", [1, 0], ids=["min_replicas_acked=1", "unacked"])
def test_what_a_failover_loses_is_what_no_replica_had(tmp_path: Path, acked: int) -> None:
    """The replication link is cut (a blackhole: the replica lags) while tasks are
    enqueued, then the master is killed and the replica is promoted: it never got those
    tasks. Without
    ``min_replicas_acked`` their enqueues were acknowledged and exactly they are lost; with
    it, each of those enqueues raised NotReplicated instead, and no acknowledged task is."""
    from taskq_core.errors import NotReplicated

    group = SentinelGroup(tmp_path / "group", proxied=True)
    group.start()
    assert group.proxy is not None
    tq = TaskQueue(
        settings=Settings(
            broker_url=group.url,
            key_prefix="lag",
            broker={"socket_timeout": 2, "min_replicas_acked": acked, "replica_ack_timeout": 0.05},
        )
    )
    task = tq.task(name="lag.t")(lambda: None)
    try:
        before = [task.enqueue() for _ in range(20)]  # replicated (WAIT or not)
        wait_until(lambda: _replica_caught_up(group), 10, "the replica to catch up")
        (replica,) = group.replicas
        group.proxy.blackhole()
        during: list[str] = []
        refused = 0
        for _ in range(10):
            try:
                during.append(task.enqueue().id)
            except NotReplicated:
                refused += 1
        group.master.kill()
        wait_until(lambda: group.master_port() == replica.port, 30, "the replica's promotion")
        wait_until(lambda: _answers_as_master(replica), 10, "the new master to take writes")
        # every Sentinel agrees on the new master (until then a client may be told none)
        wait_until(lambda: _reachable(tq), 10, "the client to reach the new master")
        survived = {h.id for h in before if h.status() == "queued"}
        assert survived == {h.id for h in before}
        lost = [i for i in during if tq.broker.get("default", i) is None]
        if acked:
            # no enqueue during the freeze was acknowledged: each raised NotReplicated
            assert (during, refused) == ([], 10)
        else:
            # all ten were acknowledged by the master alone, and all ten are gone
            assert len(during) == 10
            assert lost == during
    finally:
        tq.close()
        group.stop()


def _replica_caught_up(group: SentinelGroup) -> bool:
    with group.master.client() as m:
        offset = m.info("replication")["master_repl_offset"]
    (replica,) = group.replicas
    with replica.client() as r:
        return bool(r.info("replication")["slave_repl_offset"] >= offset)


def _reachable(tq: TaskQueue) -> bool:
    try:
        tq.broker.ping()
    except Exception:
        return False
    return True


def _answers_as_master(node: Any) -> bool:
    with node.client() as c:
        return bool(c.info("replication")["role"] == "master")

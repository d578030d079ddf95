"""``taskq health``: the exit code container health checks read (0 ready, 1 not)."""

from __future__ import annotations

import socket

from .conftest import Cli


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_is_ready_when_redis_answers(cli: Cli) -> None:
    r = cli("health")
    assert r.code == 0, r.err
    assert r.out.startswith("ready (broker round trip ")
    r = cli("health", "--json")
    assert r.code == 0, r.err
    assert r.json()["status"] == "ready"
    assert isinstance(r.json()["rtt_ms"], float)


def test_health_exits_1_when_redis_does_not_answer_and_hides_the_password(cli: Cli) -> None:
    url = f"redis://app:s3cret-pass@127.0.0.1:{_closed_port()}/0"
    r = cli("health", TASKQ_BROKER_URL=url)
    assert r.code == 1, (r.out, r.err)
    assert r.out.startswith("not ready: ConnectionError")
    assert "s3cret-pass" not in r.out + r.err
    r = cli("health", "--full", "--json", TASKQ_BROKER_URL=url)
    assert r.code == 1
    assert r.json()["status"] == "unhealthy"
    assert "s3cret-pass" not in r.out + r.err


def test_health_full_passes_a_degraded_cluster(cli: Cli) -> None:
    # no worker runs on this prefix: degraded, which must not get a container restarted
    r = cli("health", "--full")
    assert r.code == 0, r.err
    assert r.out.startswith("degraded: ")
    assert "workers degraded (no live worker)" in r.out
    r = cli("health", "--full", "--json")
    assert r.json()["components"]["workers"]["status"] == "degraded"

"""``redis+cluster://`` URLs: what they say, and a clear error for each thing that is wrong,
raised when the settings load, before anything connects; what a Cluster refuses, refused by
name."""

from __future__ import annotations

import pytest

from taskq_core.brokers.cluster import ClusterSpec, parse
from taskq_core.errors import InvalidOption
from taskq_core.redact import redact_url
from taskq_core.settings import Settings


def test_a_url_names_the_nodes_and_the_credentials() -> None:
    spec = parse("redis+cluster://app:s%40cret@10.0.0.5:7000,[::1]:7001")
    assert spec == ClusterSpec(
        nodes=(("10.0.0.5", 7000), ("::1", 7001)), username="app", password="s@cret"
    )
    assert spec.node_options() == {"username": "app", "password": "s@cret"}
    assert parse("redis+cluster://h:1/0").nodes == (("h", 1),)
    tls = parse("rediss+cluster://h:1")
    assert tls.tls
    assert tls.node_options()["ssl"] is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://h", "Cluster node 'h' must be host:port"),
        ("redis+cluster://h:1,h:x", "Cluster node 'h:x' must be host:port"),
        ("redis+cluster://h:70000", "Cluster node 'h:70000' must be host:port"),
        ("redis+cluster://h:1/3", "a Redis Cluster has one database"),
        ("redis+cluster://h:1?db=1", "a Cluster URL takes no parameters"),
    ],
)
def test_a_malformed_url_is_refused_naming_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse(url)
    with pytest.raises(ValueError, match="broker_url"):
        Settings(broker_url=url)


def test_the_password_never_shows() -> None:
    url = "redis+cluster://:topsecret@h:1,h:2"
    assert Settings(broker_url=url).broker_url == url
    assert "topsecret" not in redact_url(url)
    assert "topsecret" not in repr(Settings(broker_url=url))


def test_a_workflow_on_a_cluster_is_refused_by_name() -> None:
    """A workflow's record and its steps' queues are in different slots: refused before
    anything is written, naming why (no connection is needed to say so)."""
    from taskq_core import TaskQueue
    from taskq_core.workflow.canvas import chain

    tq = TaskQueue("redis+cluster://127.0.0.1:1", key_prefix="wf-refused")
    try:
        a = tq.task(name="wf.a")(lambda: None)
        with pytest.raises(InvalidOption, match="workflows are not supported on a Redis Cluster"):
            chain(a.call(), a.call()).enqueue()
    finally:
        tq.close()


def test_server_readings_of_several_masters_report_the_weakest_and_the_fullest() -> None:
    from taskq_core.brokers.cluster import fullest, weakest

    configs = [
        {"appendonly": "yes", "appendfsync": "always", "save": "3600 1"},
        {"appendonly": "no", "appendfsync": "everysec", "save": ""},
        {"appendonly": "yes", "appendfsync": "no", "save": "60 1"},
    ]
    assert weakest(configs) == {"appendonly": "no", "appendfsync": "no", "save": ""}
    infos = [
        {"used_memory": 900, "maxmemory": 10_000, "port": 1},
        {"used_memory": 500, "maxmemory": 1_000, "port": 2},  # half full: the fullest
        {"used_memory": 5_000, "maxmemory": 0, "port": 3},
    ]
    assert fullest(infos)["port"] == 2
    assert fullest(infos)["cluster_masters"] == 3
    assert fullest([])["cluster_masters"] == 0

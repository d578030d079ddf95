"""The durability checks without a server to restart (tests/reliability/test_durability.py
restarts real ones): what each persistence setting loses, the INFO fallback when CONFIG is
refused, and the data marker's verdicts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.observability import alerts
from taskq_core.observability.durability import DataWatch, loss_warning, persistence


def test_what_a_restart_loses_under_each_setting() -> None:
    assert loss_warning("yes", "") == ""
    assert "loses every queued task" in loss_warning("no", "")
    assert "since the last RDB snapshot (save 3600 1)" in loss_warning("no", "3600 1")
    assert "since the last RDB snapshot" in loss_warning("no", None)


class NoConfig:
    """A Redis whose CONFIG command is refused (renamed, or not allowed by an ACL)."""

    def __init__(self, aof: int) -> None:
        self.aof = aof

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        return {}

    def server_info(self) -> dict[str, Any]:
        return {"aof_enabled": self.aof, "redis_version": "7.0.0"}


def test_persistence_falls_back_to_info_when_config_is_refused() -> None:
    off = persistence(NoConfig(0))  # type: ignore[arg-type]
    assert off["source"] == "info"
    assert off["appendonly"] == "no"
    assert off["save"] is None
    assert off["loses_tasks_on_restart"] is True
    on = persistence(NoConfig(1))  # type: ignore[arg-type]
    assert on["appendonly"] == "yes"
    assert on["warning"] == ""


def test_the_marker_tells_a_flush_from_a_restart(
    make_app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture
) -> None:
    tq = make_app("memory")
    events: list[dict[str, Any]] = []
    tq.alert_sinks.append(events.append)
    watch = DataWatch()
    assert watch.check(tq) == "first"
    assert watch.check(tq) == "same"
    tq.broker._marker = None  # type: ignore[attr-defined]  # FLUSHDB, same server run
    with caplog.at_level(logging.ERROR, "taskq.durability"):
        assert watch.check(tq) == "lost"
    assert "FLUSHDB" in events[0]["message"]
    assert "queued tasks may have been lost" in caplog.text
    assert watch.check(tq) == "same"  # the marker was written back: one alert
    assert len(events) == 1
    # a new server run with the marker still there: a restart that kept the data
    raw, _ = tq.broker.data_marker()
    assert raw is not None
    tq.broker.put_data_marker(orjson.dumps({**orjson.loads(raw), "run_id": "before"}))
    assert watch.check(tq) == "restarted"
    assert len(events) == 1
    # a new process that never saw a marker takes a missing one for a new deployment
    tq.broker._marker = None  # type: ignore[attr-defined]
    assert DataWatch().check(tq) == "first"
    assert alerts.state(tq)["active"][0]["rule"] == "data_lost"

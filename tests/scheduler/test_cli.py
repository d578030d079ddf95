"""``taskq scheduler`` as a subprocess: ``--list`` (table and JSON), and a run that enqueues
and stops on SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis

from ..cli.conftest import Cli
from .conftest import keys_per_message

APP = """
from taskq_core import TaskQueue

tq = TaskQueue.from_config()


@tq.task(name="report")
def report():
    return "done"


tq.schedule(report, cron="0 9 * * 1-5", timezone="Europe/Paris", name="weekday digest")
tq.schedule("report", every=0.25)
"""


def cli_with(cli: Cli, text: str) -> Cli:
    (Path(cli.cwd) / "schedapp.py").write_text(text)
    return cli


def test_list_prints_the_table_and_exits(cli: Cli, redis_client: redis.Redis, prefix: str) -> None:
    c = cli_with(cli, APP)
    r = c("scheduler", "--app", "schedapp:tq", "--list")
    assert r.code == 0, r.err
    assert "schedules (2)" in r.out
    assert "weekday digest" in r.out
    assert "report every 0.25s" in r.out
    assert "cron 0 9 * * 1-5 (Europe/Paris)" in r.out
    assert "T09:00:00+01:00" in r.out or "T09:00:00+02:00" in r.out  # in the schedule's zone
    r = c("scheduler", "--app", "schedapp:tq", "--list", "--json")
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in r.json()["schedules"]}
    assert rows["report every 0.25s"]["every_seconds"] == 0.25
    assert rows["report every 0.25s"]["next_run_at"] % 250 == 0
    assert rows["weekday digest"]["timezone"] == "Europe/Paris"
    assert keys_per_message(redis_client, prefix) == {}  # listing enqueues nothing


def test_without_schedules(cli: Cli) -> None:
    r = cli("scheduler", "--app", "cliapp:tq", "--list")
    assert (r.code, r.out.strip()) == (0, "no schedules (declare them with tq.schedule(...))")
    r = cli("scheduler", "--app", "cliapp:tq")
    assert r.code == 1
    assert "error: the app has no schedules" in r.err


def test_run_enqueues_and_stops_on_sigterm(
    cli: Cli, redis_client: redis.Redis, prefix: str
) -> None:
    c = cli_with(cli, APP)
    proc = c.popen("scheduler", "--app", "schedapp:tq", "--log-level", "WARNING")
    try:
        deadline = time.time() + 15
        while time.time() < deadline and sum(keys_per_message(redis_client, prefix).values()) < 2:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "report every 0.25s" in out  # the table printed at start
    per_key = keys_per_message(redis_client, prefix)
    assert len(per_key) >= 2
    assert set(per_key.values()) == {1}
    assert not list(redis_client.scan_iter(match=f"{prefix}:scheduler:*"))  # record dropped

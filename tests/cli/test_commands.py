"""Every ``taskq`` command run as a subprocess against the real Redis: output and exit code."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from taskq_core import TaskQueue

from .conftest import Cli

Track = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def enqueue(cli: Cli, *args: str) -> dict[str, object]:
    r = cli("--app", "cliapp:tq", "enqueue", *args, "--json")
    assert r.code == 0, r.err
    data: dict[str, object] = r.json()
    return data


def burst(cli: Cli, *args: str) -> None:
    r = cli("worker", "--app", "cliapp:tq", "--burst", "--log-level", "WARNING", *args)
    assert r.code == 0, r.err


# -- enqueue, worker, inspect


def test_enqueue_run_and_inspect(cli: Cli, app: TaskQueue) -> None:
    r = cli("--app", "cliapp:tq", "enqueue", "add", "--args", "[2, 3]")
    assert r.code == 0, r.err
    assert r.out.startswith("enqueued ")
    task_id = r.out.split()[1]
    assert "(task add, queue default, queued)" in r.out
    assert app.handle(task_id).status() == "queued"

    burst(cli)
    assert app.handle(task_id).result(timeout=10) == 5

    r = cli("inspect", task_id, "--json")
    assert r.code == 0, r.err
    info = r.json()
    assert (info["id"], info["status"], info["result"], info["task"]) == (
        task_id,
        "succeeded",
        5,
        "add",
    )
    assert info["attempts"] == 1
    r = cli("inspect", task_id)
    assert r.code == 0
    assert task_id in r.out
    assert "succeeded" in r.out
    assert "result" in r.out


def test_enqueue_options(cli: Cli, app: TaskQueue) -> None:
    before = time.time()
    delayed = enqueue(cli, "add", "--args", "[1, 1]", "--delay", "1h")
    assert delayed["status"] == "scheduled"
    assert isinstance(delayed["due_at"], int)
    assert before + 3590 < delayed["due_at"] / 1000 < time.time() + 3610

    eta = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    at = enqueue(cli, "add", "--kwargs", '{"a": 1, "b": 2}', "--eta", eta.isoformat())
    assert (at["status"], at["due_at"]) == ("scheduled", int(eta.timestamp() * 1000))

    high = enqueue(cli, "report", "--queue", "high")
    assert (high["queue"], high["status"]) == ("high", "queued")
    assert app.handle(str(high["id"]), "high").info()["task"] == "report"
    own = enqueue(cli, "report")
    assert own["queue"] == "low"  # the task's own queue

    first = enqueue(cli, "add", "--args", "[5, 5]", "--idempotency-key", "order-42")
    again = enqueue(cli, "add", "--args", "[5, 5]", "--idempotency-key", "order-42")
    assert first["id"] == again["id"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope"], "error: unknown task 'nope' (known: add, boom, report)"),
        (["add", "--args", "[1,"], "Invalid value for '--args': not valid JSON"),
        (["add", "--args", '{"a": 1}'], "'--args': must be a JSON array"),
        (["add", "--kwargs", "[1]"], "'--kwargs': must be a JSON object"),
        (["add", "--delay", "soon"], "'soon' is not a duration"),
        (["add", "--eta", "2030-01-01T09:00:00"], "has no time zone"),
        (["add", "--eta", "tomorrow"], "'tomorrow' is not an ISO-8601 time"),
        (["add", "--delay", "5s", "--eta", "2030-01-01T09:00:00Z"], "either --delay or --eta"),
        (["add", "--queue", "bad queue!"], "error: "),
        # past the horizon: refused before writing (it used to write, then fail with exit 1)
        (["add", "--delay", "99999999d"], "error: delay must be at most 365 days"),
        (["add", "--eta", "2999-01-01T00:00:00Z"], "error: eta must be at most 365 days ahead"),
    ],
)
def test_enqueue_refuses_bad_input(cli: Cli, app: TaskQueue, args: list[str], says: str) -> None:
    r = cli("--app", "cliapp:tq", "enqueue", *args)
    assert r.code == 2, (r.out, r.err)
    assert says in r.err
    assert "Traceback" not in r.err
    assert all(q.ready == 0 for q in app.broker.queue_info(app.queues()))


def test_enqueue_without_app_says_how_to_name_it(cli: Cli) -> None:
    r = cli("enqueue", "add")
    assert r.code == 2
    assert r.err.strip() == (
        "error: unknown task 'add': no task is registered; pass --app MODULE:ATTR naming "
        "the TaskQueue your tasks are registered on"
    )


def test_worker_logs_json_lines(cli: Cli, app: TaskQueue) -> None:
    task_id = enqueue(cli, "add", "--args", "[1, 2]")["id"]
    r = cli("worker", "--app", "cliapp:tq", "--burst", "--log-format", "json")
    assert r.code == 0, r.err
    records = [json.loads(line) for line in r.err.splitlines()]
    assert {"time", "level", "logger"} <= set(records[0])
    assert any("started" in str(rec.get("message", "")) for rec in records)
    # the task log line is JSON too, with its fields
    assert any(rec.get("task_id") == task_id for rec in records)
    assert app.handle(str(task_id)).result(timeout=10) == 3


def test_worker_flags_override_the_configuration(cli: Cli, app: TaskQueue) -> None:
    (cli.cwd / "taskq.toml").write_text('[worker]\nqueues = ["high"]\nlog_level = "WARNING"\n')
    low = enqueue(cli, "report")["id"]
    r = cli("worker", "--burst")  # the configuration's queues: only high
    assert r.code == 0, r.err
    assert app.handle(str(low), "low").status() == "queued"
    assert " INFO " not in r.err  # the configuration's log level: no "worker ... started"
    r = cli("worker", "--burst", "--queues", "low", "--log-level", "INFO", "--app", "cliapp:tq")
    assert r.code == 0, r.err
    assert "queues=['low']" in r.err
    assert app.handle(str(low), "low").result(timeout=10) == "done"


def test_worker_processes(cli: Cli) -> None:
    r = cli("worker", "--min-processes", "2")
    assert r.code == 2
    assert "--min-processes/--max-processes need --processes N or auto" in r.err
    r = cli("worker", "--processes", "many")
    assert r.code == 2
    assert "'many' is not a number of processes from 1 to 1024, or auto" in r.err
    r = cli("worker", "--processes", "2", "--burst")
    assert r.code == 2
    assert "--burst runs one process" in r.err
    if importlib.util.find_spec("taskq_core.supervisor") is None:
        r = cli("worker", "--processes", "auto", "--max-processes", "4")
        assert r.code == 1
        assert r.err.startswith("error: --processes needs the process supervisor")
        assert len(r.err.strip().splitlines()) == 1


# -- status


def test_status(cli: Cli, app: TaskQueue) -> None:
    for n in range(3):
        enqueue(cli, "add", "--args", f"[{n}, 1]")
    enqueue(cli, "add", "--args", "[0, 0]", "--delay", "10m")
    enqueue(cli, "report", "--queue", "urgent")  # a queue no configuration names
    r = cli("status", "--json")
    assert r.code == 0, r.err
    snap = r.json()
    assert snap["prefix"] == app.settings.key_prefix
    queues = {q["name"]: q for q in snap["queues"]}
    assert list(queues)[:3] == ["high", "default", "low"]
    d = queues["default"]
    assert (d["ready"], d["delayed"], d["in_flight"], d["dead"], d["depth"]) == (3, 1, 0, 0, 4)
    assert d["oldest_age_s"] is not None
    assert 0 <= d["oldest_age_s"] < 120
    assert queues["urgent"]["ready"] == 1
    assert queues["high"]["oldest_age_s"] is None
    assert snap["workers"] is None or isinstance(snap["workers"], list)

    r = cli("status")
    assert r.code == 0, r.err
    assert "urgent" in r.out
    assert "in flight" in r.out
    lines = [line for line in r.out.splitlines() if "default" in line and "│" in line]
    assert [c.strip() for c in lines[0].split("│")[1:6]] == ["default", "3", "1", "0", "0"]
    if snap["workers"] is None:
        assert "workers: unavailable" in r.out


@pytest.mark.slow
def test_status_shows_live_workers(cli: Cli, procs: Track) -> None:
    if importlib.util.find_spec("taskq_core.observability.heartbeat") is None:
        r = cli("status")
        assert "workers: unavailable" in r.out
        return
    worker = procs(cli.popen("worker", "--app", "cliapp:tq", "--concurrency", "3"))
    deadline = time.monotonic() + 30
    workers: list[dict[str, object]] = []
    while time.monotonic() < deadline and not workers:
        workers = cli("status", "--json").json()["workers"]
        if not workers:
            time.sleep(0.2)
    assert [w["pid"] for w in workers] == [worker.pid]
    assert workers[0]["concurrency"] == 3
    r = cli("status")
    assert f"{worker.pid}" in r.out
    assert "0/3" in r.out
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_status_watch(cli: Cli, procs: Track) -> None:
    enqueue(cli, "add", "--args", "[1, 1]")
    watch = procs(cli.popen("status", "--watch", "--interval", "0.2", "--json"))
    assert watch.stdout is not None
    snapshots = [json.loads(watch.stdout.readline()) for _ in range(2)]
    assert all(s["queues"][1]["ready"] == 1 for s in snapshots)
    assert snapshots[1]["at"] >= snapshots[0]["at"]
    watch.send_signal(signal.SIGINT)
    assert watch.wait(30) == 0

    watch = procs(cli.popen("status", "--watch", "--interval", "0.2"))
    assert watch.stdout is not None
    seen = ""
    while "default" not in seen:
        seen += watch.stdout.readline()
    watch.send_signal(signal.SIGINT)
    _out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "Traceback" not in err


# -- failed


@pytest.mark.slow
def test_failed_list_show_retry_purge(cli: Cli, app: TaskQueue) -> None:
    ids = [str(enqueue(cli, "boom", "--args", f'["no {n}"]')["id"]) for n in range(3)]
    burst(cli)

    r = cli("failed", "list", "--json")
    assert r.code == 0, r.err
    listed = {t["id"]: t for t in r.json()["tasks"]}
    assert set(listed) == set(ids)
    t = listed[ids[0]]
    assert (t["queue"], t["task"], t["state"], t["attempts"]) == ("default", "boom", "failed", 1)
    assert t["error"] == {"type": "ValueError", "message": "no 0"}
    assert r.json()["count"] == 3

    r = cli("failed", "list")
    assert r.code == 0
    assert all(i in r.out for i in ids)
    assert "ValueError: no 1" in r.out

    r = cli("failed", "show", ids[1])
    assert r.code == 0, r.err
    assert "ValueError" in r.out
    assert "no 1" in r.out
    assert "raise ValueError(why)" in r.out  # the traceback
    r = cli("failed", "show", ids[1], "--json")
    assert r.json()["error"]["type"] == "ValueError"

    r = cli("failed", "retry", ids[0])
    assert (r.code, r.out.strip()) == (0, "retried 1 task(s)")
    assert app.handle(ids[0]).status() == "queued"
    r = cli("failed", "retry", "--all", "--json")
    assert (r.code, r.json()) == (0, {"retried": 2})
    assert all(app.handle(i).status() == "queued" for i in ids)

    burst(cli)  # they fail again
    r = cli("failed", "purge", ids[2])
    assert (r.code, r.out.strip()) == (0, "purged 1 task(s)")
    r = cli("failed", "purge", "--all")  # asks first; no answer on stdin: nothing deleted
    assert r.code == 1
    assert len(cli("failed", "list", "--json").json()["tasks"]) == 2
    r = cli("failed", "purge", "--all", "--yes", "--json")
    assert (r.code, r.json()) == (0, {"purged": 2})
    r = cli("failed", "list")
    assert (r.code, r.out.strip()) == (0, "the dead-letter queue is empty")


def test_failed_errors(cli: Cli) -> None:
    r = cli("failed", "show", "no-such-id")
    assert (r.code, r.err.strip()) == (5, "error: no task 'no-such-id' in the dead-letter queue")
    r = cli("failed", "retry")
    assert r.code == 2
    assert "give task ids or --all" in r.err
    r = cli("failed", "purge", "x", "--all")
    assert r.code == 2


# -- config


def test_config_show_and_check(cli: Cli) -> None:
    (cli.cwd / "taskq.toml").write_text("# shop\n[worker]\nconcurrency = 7\n")
    r = cli("config", "show", "--json", TASKQ_RETRY__MAX_RETRIES="9")
    assert r.code == 0, r.err
    data = r.json()
    assert data["config_file"].endswith("taskq.toml")
    s = data["settings"]
    assert s["worker.concurrency"] == {"value": 7, "source": "taskq.toml, line 3"}
    assert s["retry.max_retries"] == {
        "value": 9,
        "source": "environment variable TASKQ_RETRY__MAX_RETRIES",
    }
    assert s["key_prefix"]["source"] == "environment variable TASKQ_KEY_PREFIX"
    assert s["worker.grace_period"] == {"value": 10.0, "source": "default"}

    r = cli("config", "show")
    assert r.code == 0
    row = next(line for line in r.out.splitlines() if "worker.concurrency" in line)
    assert "7" in row
    assert "taskq.toml, line 3" in row

    r = cli("config", "check")
    assert (r.code, r.out.strip()) == (0, "configuration is valid (file: taskq.toml)")

    (cli.cwd / "taskq.toml").write_text("[worker]\nconcurrency = 0\nlease = 3\n")
    r = cli("config", "check")
    assert r.code == 3
    assert "error: invalid configuration (2 problems):" in r.err
    assert "worker.concurrency = 0 (from taskq.toml, line 2)" in r.err
    assert "worker.lease = 3 (from taskq.toml, line 3): unknown key" in r.err
    r = cli("config", "check", "--json")
    assert r.code == 3
    problems = r.json()["problems"]
    assert [(p["key"], p["source"]) for p in problems] == [
        ("worker.concurrency", "taskq.toml, line 2"),
        ("worker.lease", "taskq.toml, line 3"),
    ]
    # any command that loads the configuration stops the same way
    r = cli("status")
    assert r.code == 3
    assert r.err.startswith("error: invalid configuration (2 problems):")


def test_config_option_before_or_after_the_command(cli: Cli) -> None:
    (cli.cwd / "prod.yaml").write_text("worker:\n  concurrency: 5\n")
    before = ["--config", "prod.yaml", "config", "show", "--json"]
    after = ["config", "show", "--json", "--config", "prod.yaml"]
    for args in (before, after):
        r = cli(*args)
        assert r.code == 0, r.err
        assert r.json()["settings"]["worker.concurrency"]["source"] == "prod.yaml, line 2"
    r = cli("config", "check", TASKQ_CONFIG="missing.toml")
    assert r.code == 3
    assert "configuration file 'missing.toml' (from environment variable TASKQ_CONFIG)" in r.err
    # a module calling TaskQueue.from_config() reads the file --config names
    r = cli(
        "--config", "prod.yaml", "--app", "cliapp:tq", "worker", "--burst", "--log-level", "INFO"
    )
    assert r.code == 0, r.err
    assert "concurrency=5" in r.err


# -- errors


def test_errors_are_one_line_with_an_exit_code(cli: Cli) -> None:
    dead = {"TASKQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    r = cli("status", variables=dead)
    assert r.code == 4
    assert r.err.startswith("error: cannot reach the broker at redis://127.0.0.1:1/0:")
    assert len(r.err.strip().splitlines()) == 1
    r = cli("--debug", "status", variables=dead)
    assert r.code == 4
    assert "Traceback (most recent call last)" in r.err
    assert r.err.strip().splitlines()[-1].startswith("error: cannot reach the broker")

    r = cli("inspect", "0" * 32)
    assert r.code == 5
    assert r.err.startswith("error: no task '00000000000000000000000000000000' in any queue")
    r = cli("--app", "nowhere:tq", "status")
    assert (r.code, r.err.strip()) == (
        2,
        "error: --app nowhere:tq: cannot import 'nowhere' (No module named 'nowhere')",
    )
    r = cli("--app", "cliapp:add", "status")
    assert (r.code, r.err.strip()) == (
        2,
        "error: --app cliapp:add: cliapp.add is not a TaskQueue (got Task)",
    )
    r = cli("status", TASKQ_WORKER__CONCURENCY="3")
    assert r.code == 3
    assert "TASKQ_WORKER__CONCURENCY" in r.err
    r = cli("no-such-command")
    assert r.code == 2


def test_help_and_version(cli: Cli) -> None:
    r = cli("--help")
    assert r.code == 0
    for command in ("config", "demo", "enqueue", "failed", "inspect", "status", "worker"):
        assert command in r.out
    r = cli("--version")
    assert (r.code, r.out.strip()) == (0, "taskq, version 0.1.0")


def test_an_entry_without_a_message_is_listed_and_its_retry_is_a_clear_error(
    cli: Cli, app: TaskQueue
) -> None:
    """An id whose message body went missing is dead-lettered by the fetch that finds it
    ("message body missing"); `failed list` shows it and `failed retry` says why it cannot."""
    task_id = str(enqueue(cli, "add", "--args", "[1, 2]")["id"])
    app.broker.client.hdel(app.broker.keys.queue("default").msg, task_id)  # type: ignore[attr-defined]
    burst(cli)
    r = cli("failed", "list", "--json")
    assert r.code == 0, r.err
    (t,) = r.json()["tasks"]
    assert (t["id"], t["state"]) == (task_id, "dead")
    assert t["error"] == {"type": "MissingMessage", "message": "message body missing"}
    r = cli("failed", "retry", task_id)
    assert r.code == 1
    assert r.out.strip() == "retried 0 task(s)"
    assert r.err.strip() == (
        "error: 1 task(s) cannot be retried, their message body is missing (purge them with "
        f"`taskq failed purge`): {task_id}"
    )
    r = cli("failed", "retry", "--all", "--json")
    assert (r.code, r.json()) == (1, {"retried": 0, "not_retried": [task_id]})
    assert cli("failed", "purge", task_id).code == 0

"""A worker that Redis refuses (wrong password, disabled ACL user, or a user denied the
commands taskq runs) exits with code 4 and one clear line at start-up, instead of logging
the same broker error for ever; under the supervisor too, whether the refusal comes before
any process starts or to a worker process restarted after the password changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import _free_port

from .servers import admin, redis_server

PASSWORD = "right-Pa55word"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with redis_server() as p:
        r = admin(p)
        r.acl_setuser("tq", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                      channels=["*"], commands=["+@all"])  # fmt: skip
        # may authenticate and PING, nothing else
        r.acl_setuser("mute", enabled=True, passwords=["+mute"], keys=["*"],
                      commands=["+ping", "+client", "+info"])  # fmt: skip
        yield p


def taskq(*args: str, url: str, cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(
        TASKQ_BROKER_URL=url,
        TASKQ_KEY_PREFIX="startup",
        TASKQ_SUPERVISOR__RESTART_BACKOFF="0.2",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "taskq_core.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        **popen,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("user", "password", "says"),
    [
        ("tq", "wrong", "refused the credentials"),
        ("nobody", PASSWORD, "refused the credentials"),
        ("mute", "mute", "refused a command to this user"),
    ],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_refused_worker_exits_4(
    port: int, tmp_path: Path, user: str, password: str, says: str, processes: str
) -> None:
    url = f"redis://{user}:{password}@127.0.0.1:{port}/0"
    started = time.monotonic()
    proc = taskq("worker", "--processes", processes, url=url, cwd=tmp_path,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert says in err
    assert f":{password}@" not in err + out
    # (before the fix it retried until killed; the bound is generous for a loaded machine)
    assert time.monotonic() - started < 30


def _worker_children(pid: int) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.slow
def test_supervisor_stops_when_a_restarted_process_is_refused(port: int, tmp_path: Path) -> None:
    url = f"redis://tq:{PASSWORD}@127.0.0.1:{port}/0"
    log = tmp_path / "supervisor.log"
    with log.open("w") as stderr:
        proc = taskq("worker", "--processes", "2", url=url, cwd=tmp_path,
                     stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    try:
        deadline = time.monotonic() + 45
        while log.read_text().count("started: queues") < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        child = _worker_children(proc.pid)[0]
        # the password changes; the supervisor's open connections stay authenticated
        admin(port).acl_setuser("tq", reset_passwords=True, passwords=["+rotated"])
        child.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        admin(port).acl_setuser("tq", reset_passwords=True, passwords=[f"+{PASSWORD}"])
    text = log.read_text()
    assert code == 4, text
    assert "refused by the broker" in text
    # one restart, refused: not a restart loop
    assert text.count("refused the credentials") == 1, text


@pytest.mark.slow
def test_a_worker_pointed_at_a_redis_cluster_node_exits_4_saying_why(tmp_path: Path) -> None:
    """A redis:// URL reaches one node of a Cluster, which refuses every key of a slot it
    does not hold: the worker says so once at start-up, naming the redis+cluster:// URL."""
    nodes = tmp_path / "nodes.conf"
    # the bus port given: by default it is the port + 10000, past 65535 for a high free port
    bus = str(_free_port())
    cluster = (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(nodes),
        "--cluster-port",
        bus,
    )
    with redis_server(*cluster) as p:
        proc = taskq("worker", url=f"redis://127.0.0.1:{p}/0", cwd=tmp_path,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert "is a Redis Cluster node: name the Cluster with a redis+cluster://" in err

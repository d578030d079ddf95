"""Find the Redis the test suite will use, or start one; print its URL on stdout.

Run by ``scripts/test`` with the project's virtual environment (so redis-py is there); it
needs neither ``redis-cli`` nor, when a Redis already answers, ``redis-server``:

- ``TASKQ_TEST_REDIS_URL`` set: that Redis must answer; nothing is started;
- else ``redis://127.0.0.1:6379/0`` if it answers;
- else ``redis-server`` from PATH is started on 127.0.0.1:6379 (no persistence, log in
  /tmp/taskq-test-redis.log) and waited for.

When no Redis can be had it exits 1 with one line on stderr saying what to install or set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
HOW = (
    "install Redis (e.g. `apt-get install redis-server`, `brew install redis`) or point "
    "TASKQ_TEST_REDIS_URL at one (redis://host:port/db)"
)


def answers(url: str) -> bool:
    """Does a Redis answer PING at ``url`` within half a second?"""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def find(default_url: str = DEFAULT_URL) -> str:
    """The URL of a Redis that answers; raises SystemExit with one line when there is none.

    ``default_url`` is where a Redis is looked for, and started, without the variable (its
    host must be 127.0.0.1; the tests pass a dead port)."""
    given = os.environ.get("TASKQ_TEST_REDIS_URL")
    if given:
        if answers(given):
            return given
        # the URL may hold a password: name only where it points
        where = given.rsplit("@", 1)[-1]
        raise SystemExit(f"test: TASKQ_TEST_REDIS_URL is set but no Redis answers at {where}")
    port = default_url.rsplit(":", 1)[-1].split("/", 1)[0]
    if answers(default_url):
        return default_url
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(
            f"test: no Redis answers on 127.0.0.1:{port} and redis-server is not on PATH: " + HOW
        )
    print(f"test: no Redis on 127.0.0.1:{port}, starting one", file=sys.stderr)
    log = "/tmp/taskq-test-redis.log"  # noqa: S108 (a log the developer may want to read)
    argv = [server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port]
    argv += ["--save", "", "--appendonly", "no", "--dir", "/tmp", "--logfile", log]  # noqa: S108
    # redis-server from PATH, fixed arguments
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(default_url):
            return default_url
        time.sleep(0.1)
    why = (done.stderr or done.stdout).strip().splitlines()
    raise SystemExit(
        f"test: redis-server did not answer on 127.0.0.1:{port} within 10 s "
        f"({why[-1] if why else 'see ' + log}): " + HOW
    )


if __name__ == "__main__":
    print(find())

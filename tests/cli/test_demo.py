"""``taskq demo``: with no server at all, and on Redis (whose keys it removes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from .conftest import Cli, clean_environ

SUMMARY = "every task ended as expected"


def test_demo_needs_no_server(cli: Cli) -> None:
    # the configured broker is unreachable: the demo must not need it
    start = time.monotonic()
    r = cli("demo", TASKQ_BROKER_URL="redis://127.0.0.1:1/0", timeout=60)
    assert r.code == 0, r.err
    assert time.monotonic() - start < 30
    assert "taskq demo on MemoryBroker('memory://')" in r.out
    assert re.search(r"taskq demo: 134 tasks in \d+\.\d s", r.out)
    for task in ("demo.always_fails", "demo.call_flaky_api", "demo.removed_in_last_release"):
        assert task in r.out
    assert r.out.strip().endswith(SUMMARY)


def test_demo_explains_its_dead_letter_count_and_hint_is_one_line(cli: Cli) -> None:
    """The dead-letter queue holds the failed and the unrun tasks: the line says both, and
    the command it suggests is never broken across lines (an 80-column pipe here)."""
    r = cli("demo", timeout=60)
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert re.search(
        r"dead-letter queue 'default': 3 task\(s\) kept with their error "
        r"\(2 failed after their retries, 1 dead-lettered without running\)",
        text,
    ), r.out
    assert any(line.strip() == "see them with: taskq failed list" for line in r.out.splitlines())


def test_demo_in_a_bare_environment(cli: Cli) -> None:
    """As a new user runs it: no TASKQ_* variable, no configuration file, the console script."""
    script = Path(sys.executable).with_name("taskq")
    argv = [str(script)] if script.exists() else [shutil.which("taskq") or "taskq"]
    proc = subprocess.run(
        [*argv, "demo"],
        cwd=cli.cwd,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY in proc.stdout


@pytest.mark.slow
def test_demo_on_redis_cleans_up(cli: Cli, redis_url: str, redis_client: redis.Redis) -> None:
    r = cli("demo", "--broker", redis_url, timeout=60)
    assert r.code == 0, r.err
    assert SUMMARY in r.out
    m = re.search(r"prefix='(taskq-demo-[0-9a-f]+)'", r.out)
    assert m is not None, r.out
    assert list(redis_client.scan_iter(match=f"{m.group(1)}:*")) == []
    # a second run gets a prefix of its own
    again = cli("demo", "--broker", redis_url, "--workers", "1", timeout=60)
    assert again.code == 0, again.err
    m2 = re.search(r"prefix='(taskq-demo-[0-9a-f]+)'", again.out)
    assert m2 is not None
    assert m2.group(1) != m.group(1)

"""The test command's Redis probe (scripts/test_redis.py): it honours TASKQ_TEST_REDIS_URL,
needs no redis-cli, and stops with one clear line when no Redis can be had."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests import scripts_probe
from tests.conftest import _free_port

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "scripts" / "test_redis.py"


def _module() -> ModuleType:
    return scripts_probe.load(PROBE, "taskq_test_redis_probe")


def _probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return scripts_probe.run(PROBE, env, *args, timeout=30)


def _bare_env(**extra: str) -> dict[str, str]:
    """No redis-cli, no redis-server: PATH holds only this Python's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PATH"] = str(Path(sys.executable).parent)
    env.update(extra)
    return env


@pytest.fixture
def other_redis() -> Iterator[str]:
    """A Redis of this test's own on a free port other than 6379."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/3"
    probe = _module()
    try:
        for _ in range(100):
            if probe.answers(url):
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_variable_is_honoured_without_redis_cli(other_redis: str) -> None:
    assert shutil.which("redis-cli", path=_bare_env()["PATH"]) is None
    done = _probe(_bare_env(TASKQ_TEST_REDIS_URL=other_redis))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == other_redis
    assert done.stderr == ""


def test_a_variable_pointing_nowhere_is_one_clear_line() -> None:
    dead = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    done = _probe(_bare_env(TASKQ_TEST_REDIS_URL=dead))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "TASKQ_TEST_REDIS_URL is set but no Redis answers at 127.0.0.1:" in lines[0]
    assert "s3cret-pw" not in done.stderr


def test_no_redis_and_no_redis_server_is_one_line_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKQ_TEST_REDIS_URL", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(SystemExit) as exc:
        _module().find(f"redis://127.0.0.1:{_free_port()}/0")
    message = str(exc.value.code)
    assert "\n" not in message
    assert "redis-server is not on PATH" in message
    assert "TASKQ_TEST_REDIS_URL" in message
    assert "install Redis" in message


def test_the_test_command_uses_the_probe() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    commands = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not any("redis-cli" in line for line in commands)
    assert "scripts/test_redis.py" in script
    assert "export TASKQ_TEST_REDIS_URL" in script


def test_with_nothing_answering_it_starts_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKQ_TEST_REDIS_URL", raising=False)
    url = f"redis://127.0.0.1:{_free_port()}/0"
    probe = _module()
    assert not probe.answers(url)
    try:
        assert probe.find(url) == url
        assert probe.answers(url)
    finally:
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(url).shutdown(nosave=True)

"""A redis-server of a test's own (ACL users, passwords, TLS), on a free loopback port."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import _free_port


@contextmanager
def redis_server(*args: str, tls: bool = False, **client: Any) -> Iterator[int]:
    """Start ``redis-server ARGS`` (no persistence) and yield its port once it answers;
    with ``tls`` the port is its ``--tls-port`` and ``client`` holds the ``ssl_*`` options
    the readiness check connects with."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    port = _free_port()
    ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    proc = subprocess.Popen(
        [server, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                if tls and "tls" in out.lower():
                    # a build without TLS refuses the tls-* directives
                    pytest.skip(f"this redis-server has no TLS support: {out[-500:]}")
                pytest.fail(f"redis-server {' '.join(args)} exited: {out[-2000:]}")
            try:
                with redis.Redis(port=port, ssl=tls, socket_connect_timeout=0.5, **client) as r:
                    r.ping()
                break
            except redis.AuthenticationError:
                break  # it answers; the default user needs a password
            except redis.RedisError as e:
                if isinstance(e.__cause__, ssl.SSLCertVerificationError):
                    # a refused certificate does not heal by waiting: say why at once
                    pytest.fail(f"the test certificates were refused: {e.__cause__}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer within 15 s: {e}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def admin(port: int) -> redis.Redis:
    """A client of the private server's default user (no password)."""
    return redis.Redis(port=port, socket_timeout=5)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)

"""The fault proxy itself (tests/reliability/proxy.py): each mode does what it says, so the
fault tests that rely on it test the code and not the proxy."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.reliability.proxy import Proxy

pytestmark = pytest.mark.slow  # fault injection through the proxy


def client(proxy: Proxy) -> redis.Redis:
    return redis.Redis.from_url(proxy.url, socket_timeout=1.0, retry_on_timeout=False)


def test_pass_slow_blackhole_and_cut(proxy: Proxy) -> None:
    with client(proxy) as c:
        assert c.ping()
        assert proxy.connections == 1

        proxy.slow(0.3)
        start = time.monotonic()
        assert c.ping()
        assert time.monotonic() - start >= 0.5  # delayed one way and back

        proxy.blackhole()
        with pytest.raises(redis.TimeoutError):
            c.execute_command("PING")
        # the link stays open and says nothing: a raw connection's PING gets no reply and no
        # close (redis-py drops its own connection after a timeout, so it cannot show this)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as raw:
            raw.sendall(b"PING\r\n")
            with pytest.raises(TimeoutError):
                raw.recv(16)
            assert proxy.connections >= 1

        proxy.cut()
        time.sleep(0.2)
        assert proxy.connections == 0
        with pytest.raises(redis.ConnectionError):
            c.execute_command("PING")

        proxy.passthrough()
    with client(proxy) as c:
        assert c.ping()

"""The ``host:port,host:port`` list of a Sentinel or Cluster broker URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from ..errors import InvalidOption


def host_ports(parts: SplitResult, what: str) -> tuple[tuple[str, int], ...]:
    """The addresses after the credentials of ``parts`` (``[::1]`` unbracketed); a clear
    error naming the first one that is not ``host:port`` (``what``: "Sentinel address")."""
    found: list[tuple[str, int]] = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidOption(f"broker_url: {what} {item.strip()[:60]!r} must be host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def node_options(username: str | None, password: str | None, tls: bool) -> dict[str, Any]:
    """redis-py options for the data nodes that the URL sets: its credentials, and TLS for
    a ``rediss+`` scheme (besides the broker's own options)."""
    out: dict[str, Any] = {}
    if username:
        out["username"] = username
    if password:
        out["password"] = password
    if tls:
        out["ssl"] = True
    return out

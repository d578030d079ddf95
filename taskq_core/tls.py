"""TLS to Redis: the ``broker.tls_*`` settings as redis-py's ``ssl_*`` client options, and
the checks ``taskq config check`` makes of a broker URL's security.

TLS is on when ``broker_url`` starts with ``rediss://``. The server's certificate and host
name are verified by default (``broker.tls_verify``), against ``broker.tls_ca_file`` or the
system's CA store; ``broker.tls_cert_file`` and ``broker.tls_key_file`` give a client
certificate (Redis's ``tls-auth-clients``). Options written in the URL's query
(``?ssl_cert_reqs=...``) win over the settings, as redis-py applies them last.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from .settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """redis-py keyword arguments for the TLS settings; empty for a plain ``redis://`` URL
    (redis-py's plain connections take no ``ssl_*`` arguments)."""
    if not settings.broker_url.startswith(("rediss://", "rediss+sentinel://")):
        return {}
    b = settings.broker
    options: dict[str, Any] = {
        "ssl_cert_reqs": "required" if b.tls_verify else "none",
        "ssl_check_hostname": b.tls_verify,
    }
    if b.tls_ca_file:
        options["ssl_ca_certs"] = b.tls_ca_file
    if b.tls_cert_file:
        options["ssl_certfile"] = b.tls_cert_file
    if b.tls_key_file:
        options["ssl_keyfile"] = b.tls_key_file
    return options


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def security_warnings(settings: Settings) -> list[str]:
    """What ``taskq config check`` warns about (the configuration is valid all the same):
    certificate checks turned off, a Redis off this machine reached without a password, or
    reached with one over plain ``redis://`` (the password and every task cross the network
    in clear text)."""
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://")):
        return []
    parts = urlsplit(url)
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    out = []
    if url.startswith("rediss://"):
        if query.get("ssl_cert_reqs", "").lower() in ("none", "optional"):
            out.append(
                f"broker_url sets ssl_cert_reqs={query['ssl_cert_reqs']}: the server's "
                "certificate is not verified, so anyone on the path can pose as Redis "
                "(set broker.tls_ca_file instead)"
            )
        elif not settings.broker.tls_verify:
            out.append(
                "broker.tls_verify is false: the server's certificate is not verified, so "
                "anyone on the path can pose as Redis (set broker.tls_ca_file instead)"
            )
    host = unquote(parts.hostname or "127.0.0.1")
    has_password = bool(parts.password or query.get("password"))
    if not has_password and parts.username and not parts.password:
        has_password = True  # redis://token@host: the lone user part is the password
    if not has_password and not _is_loopback(host):
        out.append(
            f"broker_url names Redis on {host} without a password: anyone who can reach "
            "that port can read and change the queues (see docs/security.md)"
        )
    elif url.startswith("redis://") and not _is_loopback(host):
        out.append(
            f"broker_url reaches Redis on {host} over plain redis://: its password and every "
            "task cross the network in clear text (use rediss:// and broker.tls_ca_file)"
        )
    return out

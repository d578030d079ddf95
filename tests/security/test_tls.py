"""TLS to Redis: a redis-server of the test's own listens on --tls-port only and requires
client certificates, with a throwaway CA, server and client certificates made by the
``openssl`` command. Enqueue (blocking), a worker (asyncio) and the health probe all go
through TLS with the ``broker.tls_*`` settings; the server's certificate is verified by
default, so without the CA file nothing connects."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.connection import SSLConnection

from taskq_core import ConfigurationError, Settings, TaskQueue
from taskq_core.brokers.redis import RedisBroker
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.tls import security_warnings

from .servers import redis_server, write

OPENSSL = shutil.which("openssl")


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> dict[str, str]:
    """A CA, and a server (127.0.0.1, localhost) and a client certificate it signs."""
    # The extensions are those Python 3.13's default VERIFY_X509_STRICT demands (a CA's key
    # usage, key identifiers); without them every handshake fails "certificate verify failed".
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=taskq test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    write(d / "san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
          "basicConstraints=critical,CA:FALSE\n"
          "keyUsage=critical,digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=serverAuth,clientAuth\n"
          "subjectKeyIdentifier=hash\n"
          "authorityKeyIdentifier=keyid,issuer\n")  # fmt: skip
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=taskq test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                 "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem",
                                    "client.key")}  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed: cannot make test certificates")
    d = tmp_path_factory.mktemp("tls")
    certs = make_certificates(d)
    client: dict[str, Any] = {
        "ssl_ca_certs": certs["ca.pem"],
        "ssl_certfile": certs["client.pem"],
        "ssl_keyfile": certs["client.key"],
    }
    args = ("--tls-cert-file", certs["server.pem"], "--tls-key-file", certs["server.key"],
            "--tls-ca-cert-file", certs["ca.pem"], "--tls-auth-clients", "yes")  # fmt: skip
    with redis_server(*args, tls=True, **client) as port:
        yield port, certs


def _app(port: int, certs: dict[str, str], **broker: Any) -> TaskQueue:
    options = {
        "tls_ca_file": certs["ca.pem"],
        "tls_cert_file": certs["client.pem"],
        "tls_key_file": certs["client.key"],
        **broker,
    }
    options = {k: v for k, v in options.items() if v is not None}
    # (the broker section goes through Settings: TaskQueue's first argument is the broker)
    settings = Settings(
        broker_url=f"rediss://127.0.0.1:{port}/0",
        key_prefix="tls",
        broker={**options, "socket_timeout": 5},
    )
    return TaskQueue(settings=settings)


@pytest.mark.slow
def test_enqueue_worker_and_health_over_tls(tls_server: tuple[int, dict[str, str]]) -> None:
    port, certs = tls_server
    tq = _app(port, certs)
    try:

        @tq.task(name="tls.add")
        async def add(a: int, b: int) -> int:
            return a + b

        handle = add.enqueue(2, 3)  # blocking client
        tq.worker(burst=True, handle_signals=False).run()  # asyncio clients
        assert handle.result(timeout=10) == 5
        health = RouteTable(tq).dispatch(Request("GET", "/health"))  # the probe's client
        assert health.status == 200, health.body
        broker = tq.broker
        assert isinstance(broker, RedisBroker)
        conn = broker.client.connection_pool.get_connection()
        try:
            assert isinstance(conn, SSLConnection)
            assert conn.cert_reqs.name == "CERT_REQUIRED"  # verified by default
            assert conn.check_hostname is True
        finally:
            broker.client.connection_pool.release(conn)
    finally:
        tq.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "error"),
    [
        # the server's CA is not in the system's store: verification refuses it
        ({"tls_ca_file": None}, "certificate verify failed"),
        # the server requires a client certificate
        ({"tls_cert_file": None, "tls_key_file": None}, ""),
    ],
)
def test_without_the_ca_or_the_client_certificate_nothing_connects(
    tls_server: tuple[int, dict[str, str]], change: dict[str, Any], error: str
) -> None:
    port, certs = tls_server
    tq = _app(port, certs, **change)
    try:
        with pytest.raises(redis.ConnectionError) as info:
            tq.broker.ping()
        assert error in str(info.value)
    finally:
        tq.close()


def test_verification_off_connects_and_is_warned_about(
    tls_server: tuple[int, dict[str, str]],
) -> None:
    port, certs = tls_server
    tq = _app(port, certs, tls_ca_file=None, tls_verify=False)
    try:
        assert tq.broker.ping() > 0
        [warning] = security_warnings(tq.settings)
        assert "broker.tls_verify is false" in warning
    finally:
        tq.close()


def test_tls_settings_need_rediss_and_existing_files(tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", "not read here")
    with pytest.raises(ConfigurationError, match=r"broker.tls_ca_file only apply to TLS"):
        Settings(broker_url="redis://127.0.0.1:6379/0", broker={"tls_ca_file": ca})
    with pytest.raises(ConfigurationError, match=r"broker\.tls_verify only apply to TLS"):
        Settings(broker_url="redis://127.0.0.1:6379/0", broker={"tls_verify": False})
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match=r"broker.tls_ca_file: no such file"):
        Settings(broker_url="rediss://127.0.0.1:6379/0", broker={"tls_ca_file": missing})
    with pytest.raises(ConfigurationError, match=r"tls_key_file needs broker\.tls_cert_file"):
        Settings(broker_url="rediss://127.0.0.1:6379/0", broker={"tls_key_file": ca})

"""``taskq config check`` warns, and still exits 0, about a Redis off this machine reached
without a password, one reached with a password over plain redis:// and about certificate
checks turned off; a safe configuration gets no
warning. The password of the URL is not shown in a warning either."""

from __future__ import annotations

import json

import pytest

from .conftest import Cli

NO_PASSWORD = "without a password"
UNVERIFIED = "the server's certificate is not verified"
CLEAR_TEXT = "in clear text"


@pytest.mark.parametrize(
    ("url", "env", "says"),
    [
        ("redis://10.1.2.3:6379/0", {}, [NO_PASSWORD]),
        ("redis://redis.internal/0", {}, [NO_PASSWORD]),
        ("rediss://:Pw-hidden@redis.internal:6380/0?ssl_cert_reqs=none", {},
         ["ssl_cert_reqs=none", UNVERIFIED]),
        ("rediss://:Pw-hidden@redis.internal:6380/0", {"TASKQ_BROKER__TLS_VERIFY": "false"},
         ["broker.tls_verify is false", UNVERIFIED]),
        ("redis://:Pw-hidden@10.1.2.3:6379/0", {}, [CLEAR_TEXT]),
        ("redis://10.1.2.3:6379/0?username=app&password=Pw-hidden", {}, [CLEAR_TEXT]),
        ("redis://:Pw-hidden@127.0.0.1:6379/0", {}, []),
        ("redis://127.0.0.1:6379/0", {}, []),
        ("redis://localhost/0", {}, []),
        ("rediss://:Pw-hidden@redis.internal:6380/0", {}, []),
    ],
)  # fmt: skip
def test_config_check_warns(cli: Cli, url: str, env: dict[str, str], says: list[str]) -> None:
    r = cli("config", "check", variables=env, TASKQ_BROKER_URL=url)
    assert r.code == 0, r.err
    assert "configuration is valid" in r.out
    warnings = [line for line in r.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == (1 if says else 0), r.err
    for text in says:
        assert text in r.err
    as_json = cli("config", "check", "--json", variables=env, TASKQ_BROKER_URL=url)
    assert as_json.code == 0
    doc = json.loads(as_json.out)
    assert doc["valid"] is True
    assert len(doc["warnings"]) == len(warnings)
    assert "Pw-hidden" not in r.err + as_json.out

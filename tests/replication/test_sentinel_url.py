"""``redis+sentinel://`` URLs: what they say, and a clear error for each thing that is
wrong, raised when the settings load, before anything connects."""

from __future__ import annotations

import pytest

from taskq_core.brokers.sentinel import SentinelSpec, parse
from taskq_core.errors import InvalidOption
from taskq_core.redact import redact_url
from taskq_core.settings import Settings


def test_a_url_names_the_sentinels_the_service_the_database_and_the_credentials() -> None:
    spec = parse("redis+sentinel://app:s%40cret@10.0.0.5:26379,[::1]:26380/orders/3")
    assert spec == SentinelSpec(
        sentinels=(("10.0.0.5", 26379), ("::1", 26380)),
        service="orders",
        db=3,
        username="app",
        password="s@cret",
    )
    assert spec.node_options() == {"db": 3, "username": "app", "password": "s@cret"}
    assert "password" not in spec.sentinel_options(1.0)
    tls = parse("rediss+sentinel://h:1/m?sentinel_password=x")
    assert tls.tls
    assert tls.node_options()["ssl"] is True
    assert tls.sentinel_options(1.0)["password"] == "x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h/m", "Sentinel address 'h' must be host:port"),
        ("redis+sentinel://h:1,h:x/m", "Sentinel address 'h:x' must be host:port"),
        ("redis+sentinel://h:1", "names the master's service"),
        ("redis+sentinel://h:1/m/x", "database 'x' must be a number"),
        ("redis+sentinel://h:1/m/0/extra", "names the master's service"),
        ("redis+sentinel://h:1/m?db=1", "unknown Sentinel URL parameter(s) db"),
    ],
)
def test_a_malformed_url_is_refused_naming_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(url)
    with pytest.raises(ValueError, match="broker_url"):
        Settings(broker_url=url)


def test_the_password_never_shows() -> None:
    url = "redis+sentinel://:topsecret@h:1,h:2/m"
    assert Settings(broker_url=url).broker_url == url
    assert "topsecret" not in redact_url(url)

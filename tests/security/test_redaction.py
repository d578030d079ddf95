"""A broker password never shows, whatever its form: in the URL's userinfo with reserved
characters in it (a raw ``@``, a percent-encoded ``/``), as ``?password=`` in the query, or
with an unencoded ``/ ? #`` (which makes the URL invalid: the error hides it too). Checked
in reprs, log lines, every GET route of the core HTTP handler (diagnostics, metrics,
Prometheus, failures), error messages and the start-up check of a refused password. The
command line's output is checked in tests/cli/test_secrets.py with the same forms."""

from __future__ import annotations

import io
import logging
import logging.config
import runpy
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import redis

from taskq_core import BrokerRefused, ConfigurationError, TaskQueue
from taskq_core.cli.common import describe_error
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.observability import facade
from taskq_core.redact import redact_text, redact_url
from taskq_core.startup import check_broker

from .servers import admin, redis_server

A, B, C = (uuid.uuid4().hex[:12] for _ in range(3))
#: a password with a raw @ and a / in it; no part of it may show anywhere
PASSWORD = f"Pw-{A}@{B}/{C}"
PARTS = (A, B, C)


def leaks(text: str) -> list[str]:
    return [p for p in PARTS if p in text]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://u:{PASSWORD}@h:1/0", "redis://u:***@h:1/0"),
        (f"redis://:{PASSWORD}@h/0", "redis://***@h/0"),
        (f"redis://u:{quote(PASSWORD, safe='@')}@h/0", "redis://u:***@h/0"),
        (f"redis://h/0?username=u&password={PASSWORD}", "redis://h/0?username=u&password=***"),
        (f"rediss://h/0?ssl_password={A}&db=1", "rediss://h/0?ssl_password=***&db=1"),
        (f"redis://{A}@h", "redis://***@h"),  # a lone user part may be a password
        (f"redis://:{A}?{B}@h/0", "redis://***@h/0"),
        (f"redis://:{A}#{B}@h/0", "redis://***@h/0"),
        (f"redis://u:{A}/{B}?{C}@h/0?db=1", "redis://u:***@h/0?db=1"),
        (f"unix://:{A}@/run/redis.sock?db=0", "unix://***@/run/redis.sock?db=0"),
    ],
)
def test_every_credential_form_is_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    # the same URL inside free text, quoted as an error message would quote it
    assert leaks(redact_text(f"Error connecting to '{url}': refused")) == []


def test_password_assignments_in_free_text_are_masked() -> None:
    text = redact_text(f"connect(password={A}, host=h) {{'password': '{B}'}} secret: {C}")
    assert leaks(text) == [], text


@pytest.mark.parametrize("cut", ["/", "?", "#"])
def test_unencoded_reserved_character_is_refused_without_showing_it(cut: str) -> None:
    url = f"redis://app:{A}{cut}{B}@127.0.0.1:6379/0"
    with pytest.raises(ConfigurationError, match="percent-encode them as %2F, %3F and %23") as e:
        TaskQueue(url)
    assert leaks(str(e.value)) == [], str(e.value)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    with redis_server() as port:
        admin(port).acl_setuser(
            "tq-user", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
            channels=["*"], commands=["+@all"],
        )  # fmt: skip
        yield port


FORMS = {
    "userinfo": "redis://tq-user:{pw}@127.0.0.1:{port}/0",
    "query": "redis://127.0.0.1:{port}/0?username=tq-user&password={pw}",
}


@pytest.mark.parametrize("form", FORMS)
def test_no_output_shows_the_password(
    form: str, server: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pw = quote(PASSWORD, safe="@" if form == "userinfo" else "@/")
    url = FORMS[form].format(pw=pw, port=server)
    assert "@" in pw  # a raw @ in the password is part of what is tested
    tq = TaskQueue(url, key_prefix=f"red-{form}")
    texts: list[str] = []
    try:

        @tq.task(name="leak", max_retries=0)
        def leak(where: str) -> None:
            raise ValueError(f"could not reach {where}")

        handle = tq.enqueue("leak", [url])
        tq.worker(burst=True, handle_signals=False).run()
        assert handle.status() == "failed"  # the task really ran, through that password
        texts += [repr(tq), repr(tq.settings), str(tq.settings), str(handle.info())]
        table = RouteTable(tq, auth=lambda request: True)
        for route in table.routes:
            if route.method != "GET" or "{" in route.path:
                continue
            response = table.dispatch(Request("GET", route.path))
            assert response.status in (200, 503), route.path
            texts.append(response.body.decode())
        job = table.dispatch(Request("GET", f"/jobs/{handle.id}"))
        assert job.status == 200
        texts.append(job.body.decode())
        texts.append(orjson.dumps(facade.status(tq), default=str).decode())
    finally:
        tq.close()
    texts += [r.getMessage() for r in caplog.records]
    diagnostics = next(t for t in texts if '"redis_version"' in t)
    assert "***" in diagnostics
    for text in texts:
        assert leaks(text) == [], text[:2000]


@pytest.mark.parametrize("form", FORMS)
def test_a_refused_password_is_reported_without_it(form: str, server: int) -> None:
    wrong = quote(f"Pw-{A}@{B}/{C[::-1]}", safe="@")
    tq = TaskQueue(FORMS[form].format(pw=wrong, port=server))
    try:
        with pytest.raises(BrokerRefused, match="refused the credentials") as e:
            check_broker(tq)
        assert leaks(str(e.value)) == []
        with pytest.raises(redis.AuthenticationError) as auth:
            tq.broker.ping()
        assert leaks(describe_error(auth.value, tq)) == []
        # the health route reports the broker's error, redacted
        health = RouteTable(tq).dispatch(Request("GET", "/health"))
        assert health.status == 503
        assert b"Authentication" in health.body or b"WRONGPASS" in health.body, health.body
        assert leaks(health.body.decode()) == []
    finally:
        tq.close()


# -- log records, whatever handlers the application configured

DJANGO_SETTINGS = Path(__file__).resolve().parents[2] / "example_projects/django/djshop/settings.py"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The logging configuration of the test run, restored after a dictConfig."""
    root, tq = logging.getLogger(), logging.getLogger("taskq")
    saved = (root.handlers[:], root.level, tq.handlers[:], tq.level, tq.propagate)
    try:
        yield
    finally:
        for h in tq.handlers:
            h.close()
        root.handlers[:], root.level = saved[0], saved[1]
        tq.handlers[:], tq.level, tq.propagate = saved[2], saved[3], saved[4]


def test_the_django_examples_logging_prints_each_taskq_line_once_and_masked(
    restore_logging: None,
) -> None:
    # the example's own LOGGING, and a root handler as `manage.py taskq_worker` adds one
    namespace = runpy.run_path(str(DJANGO_SETTINGS))
    logging.config.dictConfig(namespace["LOGGING"])
    outputs: list[io.StringIO] = []
    for handler in logging.getLogger("taskq").handlers:
        assert isinstance(handler, logging.StreamHandler)
        outputs.append(io.StringIO())
        handler.setStream(outputs[-1])
    outputs.append(io.StringIO())
    logging.getLogger().addHandler(logging.StreamHandler(outputs[-1]))

    url = f"redis://shop:{quote(PASSWORD, safe='')}@db.example:6379/0"
    log = logging.getLogger("taskq.worker")  # a child logger, as the worker's
    log.warning("worker w1: broker error while fetching: %s", url)
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        log.exception("worker w1: lost the broker")

    text = "".join(out.getvalue() for out in outputs)
    for part in (A, B, C):
        assert part not in text, text
    assert text.count("broker error while fetching: redis://shop:***@db.example") == 1, text
    assert text.count("lost the broker") == 1, text
    assert "ConnectionError: cannot reach redis://shop:***@" in text, text


@pytest.mark.parametrize(
    "password", ["Zq@w/Xy", "Zq@w?Xy", "Zq/w@Xy", "Zq?w@Xy", "Zq@w#Xy", "Zq#w@Xy&k"]
)
@pytest.mark.parametrize("query", ["?password={}", "?db=1&password={}", "?token={}&db=2"])
def test_a_password_with_raw_at_and_slash_given_twice_never_shows(
    password: str, query: str
) -> None:
    """A password holding an unencoded ``@`` and ``/ ? #``, given both in the userinfo and as
    a credential parameter: the parameter's ``@`` must not be taken for the end of the
    userinfo, nor its ``#`` for a harmless fragment (both once left ``Xy`` in the clear)."""
    url = f"redis://shop:{password}@127.0.0.1:6379/0{query.format(password)}"
    shown = redact_url(url)
    assert "Xy" not in shown, shown
    assert "127.0.0.1:6379" in shown, shown
    in_text = redact_text(f"cannot reach {url} now")
    assert "Xy" not in in_text, in_text
    assert "127.0.0.1:6379" in in_text, in_text

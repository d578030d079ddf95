"""A password given in the broker URL appears in no log line, no command output and no error
message, in the URL's userinfo or as ``?password=`` in its query, with a raw ``@`` and a
``/`` in it (percent-encoded in the userinfo, where it must be). The Redis server gets a
real ACL user with that password, so every command really authenticates with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis

from .conftest import Cli

A, B = uuid.uuid4().hex, uuid.uuid4().hex
#: with the characters that leaked in part: a raw @ and a /
PASSWORD = f"Pw-{A}@{B}/x"


@pytest.fixture(params=["userinfo", "query"])
def secret_url(
    redis_client: redis.Redis, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A URL of the test Redis with a user of its own and a password, in the userinfo or
    in the query."""
    user = f"tq-test-{uuid.uuid4().hex[:8]}"
    redis_client.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{PASSWORD}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    host = redis_url.split("://", 1)[1]
    if request.param == "userinfo":
        yield f"redis://{user}:{quote(PASSWORD, safe='@')}@{host}"
    else:
        yield f"redis://{host}?username={user}&password={quote(PASSWORD, safe='@/')}"
    redis_client.acl_deluser(user)


@pytest.mark.slow
def test_password_never_shown(cli: Cli, secret_url: str) -> None:
    env = {"TASKQ_BROKER_URL": secret_url}
    outputs: list[str] = []

    def run(*args: str, code: int = 0, **extra: str) -> str:
        r = cli(*args, variables={**env, **extra})
        outputs.extend([r.out, r.err])
        assert r.code == code, r.err
        return r.out

    ok = run("--app", "cliapp:tq", "enqueue", "add", "--args", "[1, 2]").split()[1]
    bad = run("--app", "cliapp:tq", "enqueue", "boom", "--args", f'["{secret_url}"]').split()[1]
    # every log line of a worker that ran a task and a failing one, at DEBUG, in both formats
    for fmt in ("console", "json"):
        run("worker", "--app", "cliapp:tq", "--burst", "--log-level", "DEBUG", "--log-format", fmt)
        run("--app", "cliapp:tq", "enqueue", "add", "--args", "[0, 0]")
    assert any("worker" in text and "started" in text for text in outputs)
    run("inspect", ok)
    run("inspect", bad, "--json")
    run("failed", "list")
    failed_json = run("failed", "show", bad, "--json")
    assert "ValueError" in failed_json
    run("failed", "show", bad)
    masked = ":***@" if "?" not in secret_url else "password=***"
    status = run("status", "--json")
    assert masked in status
    run("status")
    shown = run("config", "show")
    assert masked in shown
    run("config", "show", "--json")
    run("config", "check")
    # errors: a wrong password, a bad value next to the URL, with and without --debug
    wrong = secret_url.replace(A, A[::-1])
    run("status", code=4, TASKQ_BROKER_URL=wrong)
    run("--debug", "status", code=4, TASKQ_BROKER_URL=wrong)
    run("config", "check", code=3, TASKQ_WORKER__CONCURRENCY="0")
    run("config", "check", code=3, TASKQ_BROKER_URL=secret_url.replace("redis", "http", 1))
    run("demo", "--broker", secret_url, "--workers", "1")
    # a worker refused by Redis stops at once with exit code 4 (tests/security/test_startup.py)
    run("worker", "--app", "cliapp:tq", "--burst", code=4, TASKQ_BROKER_URL=wrong)
    # an unencoded / in the password is refused, and no part of it is shown
    unencoded = f"redis://app:{PASSWORD}@127.0.0.1:6379/0"  # (config check connects nowhere)
    err = cli("config", "check", TASKQ_BROKER_URL=unencoded)
    outputs.extend([err.out, err.err])
    assert err.code == 3, err.err
    assert "percent-encode" in err.err

    assert len(outputs) > 30
    for text in outputs:
        for part in (A, B, A[::-1]):
            assert part not in text

"""The test kit's plain helpers, used without its pytest plugin (in this process)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskq_core import TaskQueue
from taskq_core.testing import (
    Drainer,
    DrainTimeout,
    NotIsolated,
    TestClock,
    assert_enqueued,
    eager,
    enqueued,
    isolated,
    recorder,
)


def make_app() -> TaskQueue:
    return TaskQueue("memory://")


def test_clock_moves_forward_only() -> None:
    clock = TestClock(start=1_000.0)
    clock.advance(30)
    clock.advance(timedelta(minutes=1), hours=1, days=1)
    assert clock.time() == 1_000 + 30 + 60 + 3600 + 86_400
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert clock.datetime().timestamp() == clock.time()


def test_helpers_need_an_isolated_app() -> None:
    with pytest.raises(NotIsolated, match="no isolated TaskQueue is active"):
        enqueued()
    app = make_app()
    with pytest.raises(NotIsolated, match="is not isolated for tests"), eager(app):
        pass


def test_isolation_is_put_back_and_not_nested() -> None:
    app = make_app()
    broker, clock = app.broker, app.clock
    with isolated(app, clock=TestClock()) as same:
        assert same is app
        assert app.broker is not broker
        with pytest.raises(NotIsolated, match="already isolated"), isolated(app):
            pass
        with pytest.raises(TypeError, match="new app only"), isolated(app, key_prefix="x"):
            pass
    assert app.broker is broker
    assert app.clock is clock


def test_idempotent_duplicates_are_not_recorded() -> None:
    with isolated() as app:

        @app.task
        def ping() -> str:
            return "pong"

        ping.options(idempotency_key="once").enqueue()
        ping.options(idempotency_key="once").enqueue()
        assert_enqueued(ping, count=1)


def test_eta_is_shown() -> None:
    clock = TestClock(start=1_800_000_000.0)
    with isolated(clock=clock) as app:

        @app.task(name="later")
        def later() -> None: ...

        later.options(delay=90).enqueue()
        (e,) = recorder(app).enqueued()
        assert e.eta is not None
        assert e.eta.timestamp() == 1_800_000_090
        assert str(e).startswith("later() queue='default' eta=2027-01-15T08:01:30+00:00 id=")
        with pytest.raises(ValueError, match="count must be a whole number"):
            assert_enqueued(later, count=-1)


def test_a_drain_that_never_ends_times_out() -> None:
    with isolated() as app:

        @app.task(name="again")
        def again() -> None:
            again.enqueue()

        again.enqueue()
        with pytest.raises(DrainTimeout, match=r"still running after 0.5 s .*again"):
            Drainer(app).drain(timeout=0.5)


def test_a_new_app_ignores_taskq_variables_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    # a test's app is built from its arguments alone: the warning that TASKQ_* variables
    # go unread (an error under filterwarnings=error) is not for it
    monkeypatch.setenv("TASKQ_BROKER_URL", "redis://127.0.0.1:6379/0")
    with isolated() as app:
        assert app.settings.broker_url == "memory://"

"""taskq's test kit: isolated apps, eager mode, a clock to move, a worker to drain queues,
and assertions on what was enqueued. Usable without pytest; ``taskq_core.testing.plugin`` is
the pytest plugin built on it (docs/testing.md).

::

    from taskq_core.testing import Drainer, TestClock, assert_enqueued, eager, isolated

    with isolated(tq, clock=TestClock()) as app:   # tq: your app, on its own broker
        signup("ada@example.com")
        assert_enqueued(send_welcome, args=("ada@example.com",))
        ran = Drainer(app).drain()
"""

from __future__ import annotations

from .broker import TestBroker
from .clock import TestClock
from .drain import Drainer, DrainTimeout, Ran
from .isolation import (
    NotIsolated,
    assert_enqueued,
    assert_not_enqueued,
    broker_of,
    eager,
    enqueued,
    isolated,
    recorder,
)
from .records import Enqueued, Recorder

__all__ = [
    "DrainTimeout",
    "Drainer",
    "Enqueued",
    "NotIsolated",
    "Ran",
    "Recorder",
    "TestBroker",
    "TestClock",
    "assert_enqueued",
    "assert_not_enqueued",
    "broker_of",
    "eager",
    "enqueued",
    "isolated",
    "recorder",
]

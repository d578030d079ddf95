"""The scheduler's tests, run against a Redis Cluster: its ticks enqueue each due schedule
once (the dedup keys live in the queues' slots), its heartbeat and lock keys are single keys
on whichever master holds them."""

from __future__ import annotations

import pytest

from tests.scheduler import test_scheduler
from tests.scheduler.conftest import clock, sched_app
from tests.suites import collected

pytestmark = pytest.mark.cluster

globals().update(collected(test_scheduler, skip=()))
__all__ = ["clock", "sched_app"]

"""Test modules run again against another Redis set-up (a Sentinel group, a Cluster): their
tests are collected as the importing module's own, with that module's fixtures."""

from __future__ import annotations

from collections.abc import Collection
from types import ModuleType
from typing import Any

#: tests that read keys with a plain client of their own, made from the URL: they need a
#: redis:// URL and are covered on the single Redis
NEEDS_PLAIN_URL = frozenset(
    {
        "test_one_task_enqueues_leave_at_most_one_wake_token",
        "test_an_idle_worker_waits_again_every_idle_wait",
        "test_first_deliveries_write_no_fence",
    }
)


def collected(*modules: ModuleType, skip: Collection[str] = NEEDS_PLAIN_URL) -> dict[str, Any]:
    """Every ``test_*`` function of ``modules`` but those named in ``skip``, by name: what
    ``globals().update(...)`` makes the caller's own."""
    return {
        name: test
        for module in modules
        for name, test in vars(module).items()
        if name.startswith("test_") and name not in skip
    }

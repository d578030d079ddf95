"""The broker contract suite, the core worker tests and the capability routing tests, run
against a Redis Cluster of 3 masters (each with a replica): every broker and worker call
goes through a ``redis+cluster://`` URL, each script call to the master of its queue's slot
(a routed queue such as ``default@gpu`` is a queue of its own, in a slot of its own)."""

from __future__ import annotations

import pytest

from tests.core import conftest as core_conftest
from tests.core import test_broker_contract, test_capabilities, test_worker
from tests.suites import collected

pytestmark = pytest.mark.cluster

globals().update(collected(test_broker_contract, test_worker, test_capabilities))
broker = core_conftest.broker  # the contract suite's fixture, on this set-up's URL


@pytest.fixture
def broker_kind() -> str:
    return "redis"

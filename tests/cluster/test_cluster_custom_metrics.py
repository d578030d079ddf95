"""The custom metrics tests, run against a Redis Cluster: a metric family's hash, the gauge
index and each gauge's sorted set are single keys, each on whichever master holds it."""

from __future__ import annotations

import pytest

from tests.observability import test_custom_metrics
from tests.observability.test_custom_metrics import twin
from tests.suites import collected

pytestmark = pytest.mark.cluster

globals().update(collected(test_custom_metrics, skip=()))
__all__ = ["twin"]

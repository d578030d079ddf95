"""Retry policy: exponential backoff with a cap and jitter, per task and per exception type."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import NotJSONSerializable, Retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how soon a failed task runs again.

    Delay before retry ``n`` (1-based): ``d = min(backoff_max, backoff * 2**(n-1))``, minus a
    random fraction ``jitter`` of it, so the delay lies in ``[d * (1 - jitter), d]``.

    ``retry_on`` limits retries to some exception types (others fail at once);
    ``limits`` gives some exception types a ``max_retries`` of their own (the first
    matching entry wins), e.g. ``{ConnectionError: 10, ValueError: 0}``. A task that raises
    :class:`~taskq_core.Retry` is always retried while retries remain.
    """

    max_retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 600.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    limits: Mapping[type[BaseException], int] = field(default_factory=dict)

    def bounds(self, n: int) -> tuple[float, float]:
        """The lowest and highest delay of retry ``n``."""
        d = min(self.backoff_max, self.backoff * (2 ** (n - 1)))
        return d * (1 - self.jitter), d

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        low, high = self.bounds(n)
        return low + (rng or random).random() * (high - low)

    def max_for(self, exc: BaseException, override: int | None = None) -> int:
        """How many retries a task failing with ``exc`` gets in all."""
        for kind, limit in self.limits.items():
            if isinstance(exc, kind):
                return limit
        return self.max_retries if override is None else override

    def next_delay(
        self, exc: BaseException, retries_taken: int, override: int | None = None
    ) -> float | None:
        """Seconds until the next run, or ``None`` when the task should fail now.

        ``override`` is a per-enqueue ``max_retries``. A result JSON cannot carry is a bug
        in the task, not a passing fault: it is never retried.
        """
        if isinstance(exc, NotJSONSerializable):
            return None
        if not isinstance(exc, Retry) and not isinstance(exc, self.retry_on):
            return None
        if retries_taken >= self.max_for(exc, override):
            return None
        if isinstance(exc, Retry) and exc.delay is not None:
            return exc.delay
        return self.delay(retries_taken + 1)

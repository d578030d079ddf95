"""Retry policy: exponential backoff with a cap and jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before retry ``n`` (1-based): ``d = min(cap, backoff * 2**(n-1))``, then a
    random fraction ``jitter`` of it is taken off, so the delay lies in
    ``[d * (1 - jitter), d]``.

    ``retry_on`` limits retries to some exception types; others fail at once.
    """

    max_retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 600.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def bounds(self, n: int) -> tuple[float, float]:
        """The lowest and highest delay of retry ``n``."""
        d = min(self.backoff_max, self.backoff * (2 ** (n - 1)))
        return d * (1 - self.jitter), d

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        low, high = self.bounds(n)
        return low + (rng or random).random() * (high - low)

    def should_retry(self, exc: BaseException, retries_taken: int, max_retries: int) -> bool:
        return retries_taken < max_retries and isinstance(exc, self.retry_on)

"""Flow-control declarations, checked when they are made: rate limits (``"100/m"``),
concurrency caps, expiry and uniqueness, and the key functions that split them per key.

Every check raises :class:`~taskq_core.errors.InvalidOption` naming the option, before
anything is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..errors import InvalidOption
from ..validation import MAX_DELAY, check_duration

#: the periods a rate may name, in milliseconds
PERIODS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")
_PERIOD_WORDS = {
    "sec": "s",
    "second": "s",
    "min": "m",
    "minute": "m",
    "hour": "h",
    "day": "d",
}
MAX_RATE_COUNT = 1_000_000
MAX_KEY = 200  # characters of a key function's result
MAX_CONCURRENCY = 1_000_000
KeyFunction = Callable[..., str]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` starts per ``period_ms``, with bursts of up to ``burst`` at once
    (GCRA: one start every ``period_ms / count`` on average, ``burst`` of them may be
    taken together after a quiet spell)."""

    count: int
    period_ms: int
    burst: int

    @property
    def interval_ms(self) -> float:
        return self.period_ms / self.count


def parse_rate(value: object, burst: object = None, option: str = "rate_limit") -> RateLimit:
    """``"100/m"``, ``"10/s"``, ``"5/2h"`` (N per [M] s, m, h or d) as a :class:`RateLimit`.

    The burst defaults to a tenth of a second's worth (at least 1): smooth spacing that
    still keeps the rate when a worker fetches a little late.
    """
    if not isinstance(value, str):
        raise InvalidOption(
            f"{option} must be a string like '100/m' or '10/s', got {type(value).__name__}"
        )
    found = _RATE.fullmatch(value.lower())
    unit = found and _PERIOD_WORDS.get(found[3].rstrip("s"), found[3])
    if found is None or unit not in PERIODS_MS:
        raise InvalidOption(
            f"{option} must be N/s, N/m, N/h or N/d (e.g. '100/m'), got {value[:40]!r}"
        )
    count = int(found[1])
    if not 1 <= count <= MAX_RATE_COUNT:
        raise InvalidOption(f"{option} must allow 1 to {MAX_RATE_COUNT} tasks, got {value!r}")
    times = int(found[2]) if found[2] else 1
    if times < 1:
        raise InvalidOption(f"{option}'s period must be at least 1 {unit}, got {value!r}")
    period_ms = times * PERIODS_MS[unit]
    if burst is None:
        per_second = count * 1000 / period_ms
        burst = max(1, math.ceil(per_second / 10))
    elif isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= count:
        raise InvalidOption(
            f"rate_burst must be an integer from 1 to the limit's count ({count}), got {burst!r}"
        )
    return RateLimit(count, period_ms, burst)


def check_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(f"max_concurrency must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidOption(f"max_concurrency must be 1 to {MAX_CONCURRENCY}, got {value}")
    return value


def check_key_function(value: object, option: str) -> KeyFunction | None:
    if value is not None and not callable(value):
        raise InvalidOption(
            f"{option} must be a function of the task's arguments returning a string, "
            f"got {type(value).__name__}"
        )
    return value


def call_key(fn: KeyFunction, option: str, task: str, args: Any, kwargs: Any) -> str:
    """Run a key function on a task's arguments (in the producer, at enqueue): its string
    result is all that travels. Raises :class:`InvalidOption` naming the option and task
    when it raises or returns anything but a short printable string."""
    try:
        key = fn(*args, **kwargs)
    except Exception as exc:
        raise InvalidOption(
            f"{option} of task {task!r} raised {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if not isinstance(key, str):
        raise InvalidOption(
            f"{option} of task {task!r} must return a string, got {type(key).__name__}"
        )
    if not 1 <= len(key) <= MAX_KEY or not key.isprintable():
        raise InvalidOption(
            f"{option} of task {task!r} must return 1 to {MAX_KEY} printable characters, "
            f"got {key[:40]!r}"
        )
    return key


def check_expires(value: object, option: str = "expires") -> float | None:
    """A relative expiry in seconds (a number or a timedelta), or ``None``."""
    kinds = "seconds, a timedelta or (per enqueue) an aware datetime"
    return check_duration(value, option, zero=False, kinds=kinds)


def expires_at_ms(value: object, now: float) -> int | None:
    """The epoch milliseconds an enqueue's ``expires`` (seconds, timedelta or an aware
    datetime) names; one in the past is refused, as a task that could never run."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidOption("expires must be timezone-aware when it is a datetime")
        at = value.timestamp()
        if at <= now:
            raise InvalidOption(
                f"expires is in the past ({value.isoformat()}): the task could never run"
            )
        if at - now > MAX_DELAY:
            raise InvalidOption("expires must be at most 365 days ahead")
        return int(at * 1000)
    seconds = check_expires(value)
    assert seconds is not None
    return int((now + seconds) * 1000)


UniqueUntil = Literal["started", "finished"]


def check_unique_until(value: object) -> UniqueUntil:
    if value not in ("started", "finished"):
        raise InvalidOption(f"unique_until must be 'started' or 'finished', got {value!r}")
    return value

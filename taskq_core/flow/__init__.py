"""Flow control: cluster-wide rate limits and concurrency caps, unique tasks and expiry
(docs/flow-control.md).

A task (``@tq.task(rate_limit=..., max_concurrency=..., unique=..., expires=...)``) or a
queue (``tq.limit_queue(...)``) declares them; this package checks the declaration when it
is made and, at each enqueue, turns it into the task's **gate**: a small JSON record the
producer computes (key functions run here, only their string results travel) and the broker
stores beside the message. The broker enforces it atomically with the fetch (``lua/_lib.lua``
``gate_admit``/``gate_end``, the in-memory broker's :mod:`taskq_core.flow.memory`): a task
over a limit is not leased, not run and not counted as an attempt.

A task without any of these options has no gate and costs what it cost before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidOption
from .limits import (
    KeyFunction,
    RateLimit,
    UniqueUntil,
    call_key,
    check_concurrency,
    check_expires,
    check_key_function,
    check_unique_until,
    expires_at_ms,
    parse_rate,
)

__all__ = [
    "Flow",
    "Gate",
    "RateLimit",
    "parse_rate",
]


@dataclass(frozen=True, slots=True)
class Gate:
    """What one enqueue sends besides its message: the gate (JSON, empty when none), the
    unique key and its window, and when the task expires."""

    data: bytes = b""
    unique_key: str | None = None
    unique_window_ms: int = 0
    expires_at: int | None = None


NO_GATE = Gate()


@dataclass(frozen=True, slots=True)
class Flow:
    """The flow-control options of one task or queue, checked when declared."""

    rate: RateLimit | None = None
    rate_key: KeyFunction | None = None
    max_concurrency: int | None = None
    concurrency_key: KeyFunction | None = None
    expires: float | None = None  # seconds after enqueue
    expired_to_dead_letter: bool = False
    unique: bool = False
    unique_key: KeyFunction | None = None
    unique_for: float | None = None  # seconds; None: until released
    unique_until: UniqueUntil = "finished"

    @classmethod
    def make(
        cls,
        *,
        rate_limit: str | None = None,
        rate_burst: int | None = None,
        rate_key: KeyFunction | None = None,
        max_concurrency: int | None = None,
        concurrency_key: KeyFunction | None = None,
        expires: float | None = None,
        expired_to_dead_letter: bool = False,
        unique: bool = False,
        unique_key: KeyFunction | None = None,
        unique_for: float | None = None,
        unique_until: str = "finished",
    ) -> Flow:
        """Check every option (:class:`InvalidOption` naming the first that is wrong)."""
        if rate_limit is None and (rate_burst is not None or rate_key is not None):
            raise InvalidOption("rate_burst and rate_key need a rate_limit")
        if max_concurrency is None and concurrency_key is not None:
            raise InvalidOption("concurrency_key needs max_concurrency")
        if (
            not unique
            and unique_key is None
            and (unique_for is not None or unique_until != "finished")
        ):
            raise InvalidOption("unique_for and unique_until need unique=True or a unique_key")
        if not isinstance(unique, bool):
            raise InvalidOption(f"unique must be True or False, got {unique!r}")
        if not isinstance(expired_to_dead_letter, bool):
            raise InvalidOption(
                f"expired_to_dead_letter must be True or False, got {expired_to_dead_letter!r}"
            )
        made = cls(
            rate=parse_rate(rate_limit, rate_burst) if rate_limit is not None else None,
            rate_key=check_key_function(rate_key, "rate_key"),
            max_concurrency=(
                check_concurrency(max_concurrency) if max_concurrency is not None else None
            ),
            concurrency_key=check_key_function(concurrency_key, "concurrency_key"),
            expires=check_expires(expires),
            expired_to_dead_letter=expired_to_dead_letter,
            unique=unique or unique_key is not None,
            unique_key=check_key_function(unique_key, "unique_key"),
            unique_for=check_expires(unique_for, "unique_for"),
            unique_until=check_unique_until(unique_until),
        )
        # a declaration without any option is the shared NO_FLOW: the hot path tests identity
        return NO_FLOW if made == NO_FLOW else made

    @property
    def empty(self) -> bool:
        return (
            self.rate is None
            and self.max_concurrency is None
            and self.expires is None
            and not self.unique
        )


NO_FLOW = Flow()


def _scoped(scope: str, fn: KeyFunction | None, option: str, name: str, call: Any) -> str:
    # a key is its scope (the task or queue that declared the limit) and the key function's
    # string: one task's "acme" never shares a bucket with another task's
    return scope if fn is None else f"{scope}|{call_key(fn, option, name, *call)}"


def gate(
    task_name: str,
    queue: str,
    *,
    task_flow: Flow,
    queue_flow: Flow,
    args: Any,
    kwargs: Any,
    now: float,
    expires: Any = None,
) -> Gate:
    """The gate of one enqueue of ``task_name`` into ``queue`` (``expires``: the enqueue's
    own, overriding the task's). Raises :class:`InvalidOption` (a key function that fails,
    an expiry in the past) before anything is written."""
    if task_flow.empty and queue_flow.empty and expires is None:
        return NO_GATE
    record: dict[str, Any] = {}
    rates: list[list[Any]] = []
    caps: list[list[Any]] = []
    call = (args, kwargs)
    for scope, flow in ((f"t:{task_name}", task_flow), (f"q:{queue}", queue_flow)):
        if flow.rate is not None:
            key = _scoped(scope, flow.rate_key, "rate_key", task_name, call)
            rates.append([flow.rate.count, flow.rate.period_ms, flow.rate.burst, key])
        if flow.max_concurrency is not None:
            key = _scoped(scope, flow.concurrency_key, "concurrency_key", task_name, call)
            caps.append([flow.max_concurrency, key])
    if rates:
        record["r"] = rates
    if caps:
        record["c"] = caps
    expires_at = expires_at_ms(expires if expires is not None else task_flow.expires, now)
    if expires_at is not None:
        record["e"] = expires_at
    unique_key: str | None = None
    if task_flow.unique:
        if task_flow.unique_key is not None:
            unique_key = _scoped(
                f"t:{task_name}", task_flow.unique_key, "unique_key", task_name, call
            )
        else:
            # the same task with the same arguments (canonical JSON: key order does not count)
            digest = hashlib.sha256(
                orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS)
            ).hexdigest()[:32]
            unique_key = f"t:{task_name}|{digest}"
        record["u"] = [unique_key, "s" if task_flow.unique_until == "started" else "f"]
    window = int(task_flow.unique_for * 1000) if task_flow.unique_for is not None else 0
    return Gate(orjson.dumps(record), unique_key, window, expires_at)


def decode_gate(data: bytes | str) -> dict[str, Any]:
    """A stored gate (for the in-memory broker and for showing a task)."""
    value: dict[str, Any] = orjson.loads(data)
    return value

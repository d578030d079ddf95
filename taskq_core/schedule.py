"""Schedules: a registered task to enqueue on a cron expression or at a fixed interval.

A :class:`Schedule` is pure data plus the arithmetic of its ticks; the
:class:`~taskq_core.scheduler.Scheduler` enqueues them. Ticks are a pure function of the
spec and the time, so every scheduler process computes the same ones, and each tick carries
its own idempotency key: however many schedulers run, Redis keeps one task per tick.

- ``cron="0 9 * * 1-5", timezone="Europe/Paris"``: five fields, parsed by croniter and
  evaluated in that zone (09:00 Paris time all year, across DST changes). When clocks go
  back, a time of day that occurs twice fires once (the first) if the expression names its
  hours; an expression whose hour field is ``*`` (``*/15 * * * *``) follows real time and
  fires in both. A time of day skipped when clocks go forward fires at the jump.
- ``every=30`` (seconds, or a ``timedelta``): ticks at whole multiples of the interval since
  the Unix epoch, whatever the time zone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from .errors import InvalidName, InvalidOption, UnknownTask
from .task import EnqueueOptions, Signature, Task
from .validation import check_json

if TYPE_CHECKING:
    from .app import TaskQueue

#: the enqueue options a schedule may set; the scheduler owns delay, eta, ids and keys
SCHEDULE_OPTIONS = ("queue", "max_retries", "timeout")
MAX_SCHEDULE_NAME = 200
# a cron expression whose next match lies this far ahead is refused as never matching
_HORIZON_YEARS = 5


@dataclass(frozen=True, slots=True)
class Schedule:
    """One task to enqueue on a cron expression or every fixed interval.

    Made by :meth:`TaskQueue.schedule`, which checks every field; ``next_after_ms`` gives
    the ticks, ``dedup_key`` the idempotency key that makes a tick one task.
    """

    name: str
    task: Task[Any, Any]
    cron: str | None
    every_ms: int | None
    timezone: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: EnqueueOptions
    zone: ZoneInfo = field(repr=False, compare=False)

    @property
    def spec(self) -> str:
        """The timing in words: ``every 30s`` or ``cron 0 9 * * 1-5 (Europe/Paris)``."""
        if self.every_ms is not None:
            return f"every {_seconds(self.every_ms)}"
        return f"cron {self.cron} ({self.timezone})"

    @property
    def queue(self) -> str:
        """The queue its tasks go to."""
        return self.task.queue_for(self.options)

    def next_after_ms(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch milliseconds)."""
        if self.every_ms is not None:
            return (after_ms // self.every_ms + 1) * self.every_ms
        assert self.cron is not None
        return _next_cron_ms(self.cron, self.zone, after_ms)

    def dedup_key(self, tick_ms: int) -> str:
        """The idempotency key of one tick: equal in every scheduler process.

        The name is hashed because it may hold characters keys may not (``*``, spaces).
        """
        digest = hashlib.blake2b(self.name.encode(), digest_size=8).hexdigest()
        return f"schedule:{digest}:{tick_ms}"

    def signature(self) -> Signature:
        """What one tick enqueues (the scheduler adds the tick's idempotency key)."""
        return Signature(self.task, self.args, dict(self.kwargs), self.options)

    def describe(self) -> dict[str, Any]:
        """JSON-safe facts for heartbeats, health and the CLI."""
        return {
            "name": self.name,
            "task": self.task.name,
            "queue": self.queue,
            "spec": self.spec,
            "cron": self.cron,
            "every_seconds": self.every_ms / 1000 if self.every_ms is not None else None,
            "timezone": self.timezone,
        }


def make_schedule(
    app: TaskQueue,
    task: Task[Any, Any] | str,
    *,
    cron: str | None,
    every: float | timedelta | None,
    timezone: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    name: str | None,
    options: dict[str, Any],
) -> Schedule:
    """A checked :class:`Schedule`; raises a :class:`~taskq_core.errors.TaskqValueError`
    naming the problem (nothing is stored on the app here)."""
    registered = _resolve_task(app, task)
    if (cron is None) == (every is None):
        raise InvalidOption(
            "give exactly one of cron=... (a 5-field cron expression) or every=... (seconds)"
            + (", not both" if cron is not None else "")
        )
    zone = _zone(timezone)
    every_ms = _every_ms(every) if every is not None else None
    expr = _check_cron(cron, zone) if cron is not None else None
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise InvalidOption(f"args must be a list or tuple, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InvalidOption(f"kwargs must be a dict, got {type(kwargs).__name__}")
    check_json(list(args), "args")
    check_json(dict(kwargs or {}), "kwargs")
    unknown = sorted(set(options) - set(SCHEDULE_OPTIONS))
    if unknown:
        raise InvalidOption(
            f"schedule option(s) {', '.join(unknown)} not allowed: a schedule takes "
            f"{', '.join(SCHEDULE_OPTIONS)} (the scheduler sets the time and the "
            "idempotency key of each tick)"
        )
    schedule = Schedule(
        name="",
        task=registered,
        cron=expr,
        every_ms=every_ms,
        timezone=zone.key,
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        options=EnqueueOptions.make(**options),
        zone=zone,
    )
    final = _check_name(name) if name is not None else f"{registered.name} {schedule.spec}"
    if final in app.schedules:
        raise InvalidOption(
            f"a schedule named {final[:80]!r} already exists on this TaskQueue: "
            "pass name=... to tell them apart"
        )
    return replace(schedule, name=final)


def _resolve_task(app: TaskQueue, task: Task[Any, Any] | str) -> Task[Any, Any]:
    if isinstance(task, str):
        return app.get_task(task)
    if not isinstance(task, Task):
        raise UnknownTask(f"task must be a registered Task or its name, got {type(task).__name__}")
    registered = app.registry.get(task.name)
    if registered is None or task.app is not app:
        raise UnknownTask(f"task {task.name!r} is not registered with this TaskQueue")
    return registered


def _zone(timezone: object) -> ZoneInfo:
    if isinstance(timezone, ZoneInfo):
        return timezone
    if not isinstance(timezone, str) or not timezone:
        raise InvalidOption(f"timezone must be an IANA zone name such as 'UTC', got {timezone!r}")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOption(
            f"unknown time zone {timezone[:80]!r} (use an IANA name such as 'Europe/Paris')"
        ) from None


def _every_ms(every: object) -> int:
    if isinstance(every, timedelta):
        seconds = every.total_seconds()
    elif isinstance(every, int | float) and not isinstance(every, bool):
        seconds = float(every)
    else:
        raise InvalidOption(f"every must be seconds or a timedelta, got {type(every).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidOption(f"every must be a finite number of seconds > 0, got {every!r}")
    # ticks are whole milliseconds, the unit stored in Redis
    ms = round(seconds * 1000)
    if ms < 1:
        raise InvalidOption(f"every must be at least 0.001 seconds, got {every!r}")
    return ms


def _check_cron(cron: object, zone: ZoneInfo) -> str:
    if not isinstance(cron, str):
        raise InvalidOption(f"cron must be a string, got {type(cron).__name__}")
    expr = " ".join(cron.split())
    if len(expr.split(" ")) != 5:
        raise InvalidOption(
            f"cron expression {cron[:80]!r} must have 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        # computing one tick also refuses expressions that never match (30 February)
        _next_cron_ms(expr, zone, 0)
    except CroniterError as exc:
        raise InvalidOption(f"bad cron expression {cron[:80]!r}: {exc}") from None
    return expr


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"schedule name must be a string, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_SCHEDULE_NAME or not name.isprintable():
        raise InvalidName(
            f"schedule name must be 1 to {MAX_SCHEDULE_NAME} printable characters, "
            f"got {name[:80]!r}"
        )
    return name


def _next_cron_ms(expr: str, zone: ZoneInfo, after_ms: int) -> int:
    fixed_hours = not expr.split(" ")[1].startswith("*")
    it = croniter(
        expr,
        datetime.fromtimestamp(after_ms / 1000, zone),
        max_years_between_matches=_HORIZON_YEARS,
    )
    while True:
        seconds = float(it.get_next(float))
        # fold 1: the second pass of a time of day the clocks went back over
        if fixed_hours and datetime.fromtimestamp(seconds, zone).fold == 1:
            continue
        tick = round(seconds * 1000)
        if tick > after_ms:
            return tick


def _seconds(ms: int) -> str:
    seconds = ms / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"

"""Schedules: the ticks they compute (cron in a zone with DST, epoch-aligned intervals) and
the bad input they refuse before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.errors import InvalidName, InvalidOption, NotJSONSerializable, UnknownTask

from ..conftest import prefix_keys

BERLIN = ZoneInfo("Europe/Berlin")


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def local(tick_ms: int, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromtimestamp(tick_ms / 1000, zone)


def ticks(s: Any, start: datetime, n: int) -> list[int]:
    out, at = [], ms(start)
    for _ in range(n):
        at = s.next_after_ms(at)
        out.append(at)
    return out


def test_cron_keeps_local_time_across_both_dst_changes(sched_app: TaskQueue) -> None:
    s = sched_app.schedule("report", cron="30 9 * * *", timezone="Europe/Berlin")
    # spring forward on 2026-03-29: still 09:30 local, so 23 hours apart in UTC
    spring = ticks(s, datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [local(t).strftime("%d %H:%M %Z") for t in spring] == [
        "28 09:30 CET",
        "29 09:30 CEST",
        "30 09:30 CEST",
    ]
    assert spring[1] - spring[0] == 23 * 3600 * 1000
    # fall back on 2026-10-25: 25 hours apart
    fall = ticks(s, datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [local(t).strftime("%d %H:%M %Z") for t in fall] == ["25 09:30 CET", "26 09:30 CET"]
    assert fall[0] - ms(datetime(2026, 10, 24, 7, 30, tzinfo=UTC)) == 25 * 3600 * 1000


def test_cron_in_the_hours_the_clocks_change(sched_app: TaskQueue) -> None:
    fixed = sched_app.schedule("report", cron="30 2 * * *", timezone="Europe/Berlin")
    # 02:30 happens twice on 2026-10-25: a fixed time of day fires once
    fall = ticks(fixed, datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [local(t).strftime("%d %H:%M %Z") for t in fall] == ["25 02:30 CEST", "26 02:30 CET"]
    # 02:30 does not exist on 2026-03-29: it fires at the jump, once
    spring = ticks(fixed, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [local(t).strftime("%d %H:%M") for t in spring] == ["29 03:00", "30 02:30"]
    # an hour field of * follows real time: both passes of 02:00 and 02:30
    wild = sched_app.schedule("report", cron="*/30 * * * *", timezone="Europe/Berlin")
    seen = ticks(wild, datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN), 5)
    assert [local(t).strftime("%H:%M %Z") for t in seen] == [
        "02:00 CEST",
        "02:30 CEST",
        "02:00 CET",
        "02:30 CET",
        "03:00 CET",
    ]
    assert len(set(seen)) == 5


def test_every_is_aligned_to_the_epoch(sched_app: TaskQueue) -> None:
    s = sched_app.schedule("report", every=90, timezone="Asia/Kolkata")
    # from any start, ticks are whole multiples of 90 s since 1970, whatever the zone
    for start in (1_800_000_000_123, 1_799_999_999_999, 1_800_000_045_000):
        first = s.next_after_ms(start)
        assert first % 90_000 == 0
        assert start < first <= start + 90_000
    assert s.next_after_ms(1_800_000_000_000) == 1_800_000_090_000  # strictly after
    short = sched_app.schedule("report", every=timedelta(milliseconds=200))
    assert [short.next_after_ms(t) for t in (0, 199, 200, 1001)] == [200, 200, 400, 1200]
    assert (s.name, short.name) == ("report every 90s", "report every 0.2s")


def test_dedup_key_is_the_same_in_every_process_and_per_tick(sched_app: TaskQueue) -> None:
    s = sched_app.schedule("report", cron="*/5 * * * *", name="five minutes * / odd")
    key = s.dedup_key(1_800_000_000_000)
    assert key.startswith("schedule:")
    assert key.endswith(":1800000000000")
    assert key != s.dedup_key(1_800_000_300_000)
    other = TaskQueue("memory://")
    other.task(name="report")(lambda: None)
    again = other.schedule("report", cron="*/5 * * * *", name="five minutes * / odd")
    assert again.dedup_key(1_800_000_000_000) == key


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"cron": "61 * * * *"}, InvalidOption, "bad cron expression '61 * * * *'"),
    ({"cron": "* * * *"}, InvalidOption, "must have 5 fields"),
    ({"cron": "* * * * * *"}, InvalidOption, "must have 5 fields"),
    ({"cron": "0 0 30 2 *"}, InvalidOption, "bad cron expression '0 0 30 2 *'"),
    ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, InvalidOption, "unknown time zone"),
    ({"cron": "0 * * * *", "every": 60}, InvalidOption, "not both"),
    ({}, InvalidOption, "exactly one of cron"),
    ({"every": 0}, InvalidOption, "every must be a finite number of seconds > 0, got 0"),
    ({"every": -5}, InvalidOption, "> 0, got -5"),
    ({"every": float("nan")}, InvalidOption, "every must be"),
    ({"every": "60"}, InvalidOption, "every must be seconds or a timedelta"),
    ({"every": 60, "args": ({1, 2},)}, NotJSONSerializable, "args[0] is a set"),
    ({"every": 60, "kwargs": {"when": datetime.now(UTC)}}, NotJSONSerializable, 'kwargs["when"]'),
    ({"every": 60, "args": "ab"}, InvalidOption, "args must be a list or tuple"),
    ({"every": 60, "delay": 5}, InvalidOption, "delay not allowed"),
    ({"every": 60, "queue": "bad queue"}, InvalidName, "queue name 'bad queue'"),
    ({"every": 60, "name": ""}, InvalidName, "schedule name must be 1 to 200"),
]


@pytest.mark.parametrize(("options", "error", "text"), BAD)
def test_bad_input_names_the_problem_and_writes_nothing(
    sched_app: TaskQueue,
    redis_client: redis.Redis,
    prefix: str,
    options: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    with pytest.raises(error) as caught:
        sched_app.schedule("report", **options)
    assert text in str(caught.value)
    assert sched_app.schedules == {}
    assert prefix_keys(redis_client, prefix) == set()


def test_unknown_tasks_and_duplicate_names_are_refused(
    sched_app: TaskQueue, make_app: Callable[..., TaskQueue]
) -> None:
    with pytest.raises(UnknownTask, match="no task named 'nope' is registered"):
        sched_app.schedule("nope", every=60)
    elsewhere = make_app("memory")
    stranger = elsewhere.task(name="report")(lambda: None)
    with pytest.raises(UnknownTask, match="'report' is not registered with this TaskQueue"):
        sched_app.schedule(stranger, every=60)
    first = sched_app.schedule("report", every=60)
    with pytest.raises(InvalidOption, match="'report every 1m' already exists"):
        sched_app.schedule(sched_app.get_task("report"), every=60)
    assert sched_app.schedules == {"report every 1m": first}
    # the same spec under another name is fine
    sched_app.schedule("report", every=60, name="report again")
    assert list(sched_app.schedules) == ["report every 1m", "report again"]

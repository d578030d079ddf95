"""What the benchmark tasks record, identically for every library.

The tasks are no-ops apart from these calls, which cost about a microsecond when they do
not touch Redis:

- :func:`started` / :func:`finished` count task starts and ends in shared memory. The
  counters are created when this module is imported, in the worker's main process before
  it forks, so Celery's prefork children and RQ's per-job work horses share them. Redis is
  written only for the first start, every ``PROGRESS`` ends (or half second) and every
  ``BENCH_N``-th end (``end:0``, ``end:1``, ...), so the clock runs from the first task's
  start to the end of each window of ``BENCH_N`` tasks and worker boot is not measured. A
  queue pre-filled with several windows' worth gives several measurements of one worker.
- :func:`picked_up` records ``now - t0`` for a latency task (``t0`` is taken by the
  producer right before its enqueue call).
- :func:`hold_start` tells a recovery task whether it runs in the worker that is about to
  be killed (it then sleeps until it dies; anywhere else it ends at once), and records
  starts and ends.

Times are ``time.monotonic()``: one clock for every process of the machine (Linux
CLOCK_MONOTONIC). Only the standard library and redis-py are used, so the module works in
taskq's virtual environment and in the peers' one.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import redis

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
KEY = os.environ.get("BENCH_PROBE_KEY", "bench-probe")
TARGET = int(os.environ.get("BENCH_N", "0") or 0)
PROGRESS = 1000

_ctx = multiprocessing.get_context("fork")
_started: Any = _ctx.Value("q", 0)
_finished: Any = _ctx.Value("q", 0)
_last_progress: Any = _ctx.Value("d", time.monotonic(), lock=False)  # under _finished's lock
_seen_start = False
_client: redis.Redis | None = None
_client_pid = 0


def client() -> redis.Redis:
    """A blocking client of this process (a forked child opens its own)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(URL)
        _client_pid = os.getpid()
    return _client


def started() -> None:
    """Called first thing in a throughput task."""
    global _seen_start
    if _seen_start:
        return
    with _started.get_lock():
        _started.value += 1
        first = _started.value == 1
    _seen_start = True
    if first:
        client().set(f"{KEY}:start", repr(time.monotonic()))


def finished() -> None:
    """Called last thing in a throughput task."""
    with _finished.get_lock():
        _finished.value += 1
        n = _finished.value
        now = time.monotonic()
        # slow workers (RQ's fork per job) report at least every half second, so that a
        # run stopped at its time cap is still rated on what it did
        window_end = TARGET > 0 and n % TARGET == 0
        report = n % PROGRESS == 0 or window_end or now - _last_progress.value > 0.5
        if report:
            _last_progress.value = now
    if report:
        pipe = client().pipeline(transaction=False)
        pipe.set(f"{KEY}:progress", f"{n} {now!r}")
        if window_end:
            # the CPU this process and the Redis server have used so far: a run's cost per
            # task, which the machine's ups and downs (time stolen by its host) do not move;
            # written with the end itself, so whoever sees the end sees them too
            cpu = time.process_time()
            info = client().info("cpu")
            used = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
            end = end_key(n // TARGET - 1)
            pipe.set(f"{end}:cpu", repr(cpu))
            pipe.set(f"{end}:redis_cpu", repr(used))
            pipe.set(end, repr(now))
        pipe.execute()


def end_key(window: int) -> str:
    """The key where the end of window ``window`` (0-based) of ``BENCH_N`` tasks is kept."""
    return f"{KEY}:end:{window}"


def picked_up(tag: str, t0: float) -> None:
    """Called first thing in a latency task: records the pick-up delay in seconds."""
    delay = time.monotonic() - t0
    client().rpush(f"{KEY}:lat", f"{tag} {delay!r}")


def started_at(tag: str) -> None:
    """Called first thing in a traced latency task: records its wall-clock start, to be
    lined up with the Redis server's MONITOR timestamps (the same clock on one machine)."""
    now = time.time()
    client().rpush(f"{KEY}:wall", f"{tag} {now!r}")


def hold_start(i: int) -> bool:
    """Records the start of recovery task ``i``; true in the worker that is to be killed
    (``BENCH_ROLE=doomed``), whose tasks then sleep until it dies."""
    client().rpush(f"{KEY}:started", f"{i} {os.getpid()}")
    return os.environ.get("BENCH_ROLE") == "doomed"


def hold_done(i: int) -> None:
    """Records the end of recovery task ``i``."""
    client().rpush(f"{KEY}:finished", f"{i} {os.getpid()} {time.monotonic()!r}")


#: how long a recovery task sleeps in the doomed worker: until that worker is killed
HOLD_LONG = 3600.0

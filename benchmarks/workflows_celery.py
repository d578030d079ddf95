#!/usr/bin/env python3
"""Celery's canvas, measured for ``benchmarks/workflows.py`` (run with the peers'
virtualenv, ``benchmarks/.venv-peers``): a chord of N no-ops, a chain of N steps, a group of
N no-ops, on a local Redis as broker and result backend.

Celery at its best documented settings for short tasks (each cited where it is set): the
prefork pool with one child per core, a high prefetch, no gossip, mingle or heartbeat, the
Redis result backend (a chord needs one), results kept. Each measurement starts its own
worker; the times run from before ``apply_async`` to the moment the last task (the chord's
callback, the chain's last step, the group's last member) has recorded its end in Redis,
which this script waits for (BLPOP: no polling delay on our side).

Prints one JSON object (and writes it to ``benchmarks/results/workflows-celery.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chain, chord, group

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/11")
CORES = os.cpu_count() or 1
DONE = "bench:wf:done"

app = Celery("wfbench", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    # "Optimizing: Prefetch Limits": for many short tasks a higher multiplier is better
    worker_prefetch_multiplier=64,
    # the default: acknowledge on receipt (late acks add a round trip per task)
    task_acks_late=False,
    # chords need results: the Redis backend keeps them (the default expiry, one day)
    task_ignore_result=False,
    result_extended=False,
    worker_hijack_root_logger=False,
)


def _redis() -> redis.Redis:
    # a blocking wait longer than a default socket timeout: the read may take minutes
    return redis.Redis.from_url(URL, socket_timeout=900)


@app.task(name="wf.noop")
def noop() -> int:
    return 1


@app.task(name="wf.noop_counted")
def noop_counted(n: int) -> int:
    if _redis().incr("bench:wf:count") == n:
        _redis().rpush(DONE, repr(time.time()))
    return 1


@app.task(name="wf.step")
def step(x: int, last: int) -> int:
    if x + 1 == last:
        _redis().rpush(DONE, repr(time.time()))
    return x + 1


@app.task(name="wf.collect")
def collect(xs: list[int]) -> int:
    _redis().rpush(DONE, repr(time.time()))
    return len(xs)


class Worker:
    def __init__(self) -> None:
        # -P prefork -c <cores>: Celery's default pool and concurrency; --without-gossip,
        # --without-mingle, --without-heartbeat: "Optimizing" and the worker guide advise
        # them off when the cluster does not use them (they cost broker traffic)
        args = [
            sys.executable, "-m", "celery", "-A", "benchmarks.workflows_celery", "worker",
            "-P", "prefork", "-c", str(CORES), "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "WARNING",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


def _fresh(client: redis.Redis) -> None:
    client.flushdb()


def _wait_done(client: redis.Redis, timeout: float = 600) -> float:
    got = client.blpop([DONE], timeout=int(timeout))
    if got is None:
        raise TimeoutError("Celery did not finish")
    return float(got[1])


def _warm(client: redis.Redis) -> None:
    collect.delay([1])
    _wait_done(client, 120)


def measure(kind: str, n: int, runs: int) -> dict[str, Any]:
    client = _redis()
    times: list[float] = []
    enqueues: list[float] = []
    for _ in range(runs):
        _fresh(client)
        worker = Worker()
        try:
            _warm(client)
            if kind == "chord":
                t0 = time.time()
                chord(noop.s() for _ in range(n))(collect.s())
                enqueues.append(time.time() - t0)
            elif kind == "chain":
                t0 = time.time()
                chain(step.s(0, n), *(step.s(n) for _ in range(n - 1))).apply_async()
                enqueues.append(time.time() - t0)
            else:
                t0 = time.time()
                group(noop_counted.si(n) for _ in range(n)).apply_async()
                enqueues.append(time.time() - t0)
            times.append(_wait_done(client) - t0)
        finally:
            worker.stop()
    client.close()
    return {
        "n": n,
        "seconds": round(statistics.median(times), 4),
        "enqueue_seconds": round(statistics.median(enqueues), 4),
        "runs": times,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chord", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=1000)
    ap.add_argument("--group", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.chord, args.chain, args.group, args.runs = 100, 100, 1000, 1
    import celery as celery_module

    notes: list[str] = []
    out: dict[str, Any] = {
        "library": "celery",
        "version": celery_module.__version__,
        "settings": {
            "pool": f"prefork -c {CORES}",
            "prefetch_multiplier": 64,
            "gossip_mingle_heartbeat": "off",
            "result_backend": "redis",
        },
        "chord": measure("chord", args.chord, args.runs),
    }
    try:
        out["chain"] = measure("chain", args.chain, args.runs)
    except RecursionError as exc:  # a long chain nests its signatures in the message
        notes.append(f"a chain of {args.chain} failed: RecursionError: {exc}")
        out["chain"] = None
    g = measure("group", args.group, args.runs)
    out["group"] = {
        "n": g["n"],
        "enqueue_seconds": g["enqueue_seconds"],
        "complete_seconds": g["seconds"],
        "runs": g["runs"],
    }
    out["notes"] = notes
    text = json.dumps(out)
    (ROOT / "benchmarks" / "results" / "workflows-celery.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

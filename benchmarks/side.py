"""One measurement of one library, run by that library's virtual environment.

``python -m benchmarks.side LIB SCENARIO [--variant V] [--params JSON]`` (from the repository
root) prints one line ``BENCH-RESULT {json}`` on stdout. ``BENCH_REDIS_URL`` names the
Redis database the library has to itself; it is flushed when the measurement ends.
Workers run as subprocesses in their own session, so the whole process tree (Celery's
prefork children, RQ's work horses, Dramatiq's and taskiq's supervisors) is measured and
cleaned up together.

Scenarios:

- ``produce``: enqueue one task per call (sync producer, async producer), and in bulk;
- ``throughput``: pre-fill the queue, start one worker, time the first task's start to the
  last task's end (recorded by the tasks in Redis), and the worker's RSS afterwards;
- ``latency``: an idle worker; RSS at rest; pick-up after a second of idleness; then tasks
  at a steady rate, enqueue call to task start;
- ``recovery``: a worker holding tasks is SIGKILLed while a second one is up; time until
  every task has finished, with each library's own recovery feature set short
  (``BENCH_RECOVERY=1``: see each ``libs/<name>_app.py``);
- ``memory``: Redis memory per queued task: ``used_memory`` before and after ``n`` tasks
  of one integer argument are enqueued, no worker running;
- ``floor``: redis-py alone, one command per round trip and pipelines of 100;
- ``profile-throughput``: py-spy attached to an idle worker that then runs ``n`` tasks;
- ``latency-trace``: taskq's pick-up path cut in three with Redis's MONITOR timestamps;
- ``versions``: the versions of the packages in this environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

from benchmarks import probe

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PROBE = os.environ.get("BENCH_PROBE_KEY", "bench-probe")
MARKER = "taskq-benchmarks:owner"
POLL = 0.005


def log(msg: str) -> None:
    print(f"[side {os.getpid()}] {msg}", file=sys.stderr, flush=True)


def rclient() -> redis.Redis:
    return redis.Redis.from_url(URL)


def clean() -> None:
    """Empty this library's database, leaving the marker that says it is ours."""
    c = rclient()
    c.flushdb()
    c.set(MARKER, "1")
    c.close()


# -- workers


class WorkerProcess:
    """A worker started with the library's own command, in a session of its own."""

    def __init__(self, cmd: list[str], env: dict[str, str], n: int = 0) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="bench-worker-", suffix=".log", delete=False
        )
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_REDIS_URL": URL,
            "BENCH_PROBE_KEY": PROBE,
            "BENCH_N": str(n),
            **env,
        }
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"worker exited with {self.proc.returncode}; its output:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def rss_mib(self) -> float:
        """RSS of the worker's whole process tree (children included), in MiB."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return float("nan")
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 2**20

    def processes(self) -> int:
        try:
            return 1 + len(psutil.Process(self.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return 0

    def _tree(self) -> list[psutil.Process]:
        """The worker and every descendant: RQ's work horse calls setsid(), so a signal
        to the process group alone would miss it."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _kill_all(self, procs: list[psutil.Process]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()

    def kill(self) -> None:
        """SIGKILL to the worker's whole process tree: what a crash or an OOM kill does."""
        self._kill_all(self._tree())
        self.proc.wait(10)

    def stop(self, grace: float = 2.0) -> None:
        procs = self._tree()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"worker {self.pid} ignored SIGTERM for {grace}s; killing it")
        # whatever is left (a work horse, a pool process) goes too
        self._kill_all(procs + [p for p in self._tree() if p not in procs])
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.log.close()
        if os.environ.get("BENCH_KEEP_LOGS") != "1":
            Path(self.log.name).unlink(missing_ok=True)
        else:
            log(f"worker log kept: {self.log.name}")


@contextlib.contextmanager
def worker(adapter: Any, variant: str, n: int = 0) -> Iterator[WorkerProcess]:
    env = adapter.worker_env(variant) if hasattr(adapter, "worker_env") else {}
    w = WorkerProcess(adapter.worker_command(variant), env, n)
    try:
        yield w
    finally:
        w.stop()


def wait_until(
    cond: Callable[[], bool], timeout: float, w: WorkerProcess | None = None, poll: float = POLL
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if w is not None:
            w.check()
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


# -- scenarios


def _interleaved(blocks: int) -> Iterator[str]:
    """``lib floor floor lib lib floor ...``: each block of the library's enqueues next to
    one of the floor's, neither always first."""
    for b in range(blocks):
        yield from ("lib", "floor") if b % 2 == 0 else ("floor", "lib")


def produce(adapter: Any, p: dict[str, Any]) -> dict[str, Any]:
    """Enqueue rates: one per call from a sync and from an async producer, and bulk.

    One at a time, the library's enqueues run in blocks interleaved (A B B A ...) with
    blocks of redis-py's own RPUSH of a message-sized payload in the same process: that
    floor is what the enqueue target is judged against, so that the machine's drift (its
    speed moves by a fifth within minutes) falls on both alike."""
    import redis.asyncio as aioredis

    n, n_bulk, batch = p["n"], p["n_bulk"], p["batch"]
    blocks = p.get("blocks", 10)
    per = max(1, n // blocks)
    only = set(p.get("only", ["sync", "async", "bulk", "extras"]))
    kind = adapter.throughput_kind("async")
    # the peers' environments have no taskq: the orchestrator passes the size
    payload = b"x" * (p.get("payload") or _taskq_message_size())
    out: dict[str, Any] = {}
    if adapter.sync_producer and "sync" in only:
        r = rclient()
        for _ in range(50):  # connections, scripts, routing tables
            adapter.enqueue(kind)
            r.rpush(FLOOR_KEY, payload)
        calls: dict[str, Callable[[], object]] = {
            "lib": lambda: adapter.enqueue(kind),
            "floor": lambda: r.rpush(FLOOR_KEY, payload),
        }
        spent = dict.fromkeys(calls, 0.0)
        for part in _interleaved(blocks):
            call, t = calls[part], time.perf_counter()
            for _ in range(per):
                call()
            spent[part] += time.perf_counter() - t
        r.delete(FLOOR_KEY)
        r.close()
        out["enqueue_sync"] = blocks * per / spent["lib"]
        out["enqueue_floor_sync"] = blocks * per / spent["floor"]
    if adapter.async_producer and "async" in only:

        async def one_at_a_time() -> tuple[float, float]:
            a = aioredis.Redis.from_url(URL)
            for _ in range(50):
                await adapter.aenqueue(kind)
                await a.rpush(FLOOR_KEY, payload)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "lib": lambda: adapter.aenqueue(kind),
                "floor": lambda: a.rpush(FLOOR_KEY, payload),
            }
            spent = dict.fromkeys(calls, 0.0)
            for part in _interleaved(blocks):
                call, t = calls[part], time.perf_counter()
                for _ in range(per):
                    await call()
                spent[part] += time.perf_counter() - t
            await a.delete(FLOOR_KEY)
            await a.aclose()
            await adapter.aclose()
            return blocks * per / spent["lib"], blocks * per / spent["floor"]

        out["enqueue_async"], out["enqueue_floor_async"] = asyncio.run(one_at_a_time())
    if adapter.bulk and "bulk" in only:
        args: list[tuple[Any, ...]] = [()] * batch
        adapter.enqueue_bulk(kind, args)
        t = time.perf_counter()
        for _ in range(n_bulk // batch):
            adapter.enqueue_bulk(kind, args)
        out["enqueue_bulk"] = (n_bulk // batch) * batch / (time.perf_counter() - t)
    if hasattr(adapter, "extras") and "extras" in only:
        out.update(adapter.extras())
    return out


def throughput(adapter: Any, p: dict[str, Any], variant: str) -> dict[str, Any]:
    """One worker process on a pre-filled queue of ``windows`` × ``n`` no-op tasks: one rate
    per window of ``n`` tasks (the first from the first task's start, each next one from
    the end of the one before), so a library whose ``n`` tasks take a fraction of a second
    is measured several times per worker instead of once on a noisy machine."""
    n, cap = p["n"], p["cap"]
    windows = max(1, int(p.get("windows", 1)))
    kind = adapter.throughput_kind(variant)
    c = rclient()
    t = time.perf_counter()
    adapter.prefill(kind, n * windows)
    prefill_s = time.perf_counter() - t
    out: dict[str, Any] = {"n": n, "windows": windows, "prefill_s": prefill_s}
    last = probe.end_key(windows - 1)
    with worker(adapter, variant, n) as w:
        if not wait_until(lambda: c.exists(f"{PROBE}:start") > 0, p["boot_timeout"], w, 0.02):
            raise RuntimeError(f"no task started within {p['boot_timeout']}s:\n{w.tail()}")
        start = float(c.get(f"{PROBE}:start") or 0)
        deadline = start + cap * windows
        wait_until(
            lambda: c.exists(last) > 0 or time.monotonic() > deadline, cap * windows + 5, w, 0.02
        )
        ends = [c.get(probe.end_key(k)) for k in range(windows)]
        done = [float(e) for e in ends if e is not None]
        if done:
            marks = [start, *done]
            rates = [n / (b - a) for a, b in itertools.pairwise(marks)]
            out["throughput_windows"] = rates
            out["throughput"] = statistics.median(rates)
            out["done"] = n * len(done)
            if len(done) >= 2:
                # CPU per task from the end of the first window to the end of the last: the
                # worker process (all its threads) and the Redis server
                first, last = probe.end_key(0), probe.end_key(len(done) - 1)
                tasks = n * (len(done) - 1)
                for what, suffix in (("worker", "cpu"), ("redis", "redis_cpu")):
                    a, b = c.get(f"{first}:{suffix}"), c.get(f"{last}:{suffix}")
                    if a is not None and b is not None:
                        out[f"cpu_us_per_task_{what}"] = (float(b) - float(a)) / tasks * 1e6
        else:
            progress = c.get(f"{PROBE}:progress")
            if progress is None:
                raise RuntimeError(f"fewer than 1000 tasks ran in {cap}s:\n{w.tail()}")
            count, at = progress.split()
            out["throughput"] = int(count) / (float(at) - start)
            out["done"] = int(count)
            out["capped_s"] = cap
        time.sleep(0.2)  # let the last batch settle before reading memory
        out["rss_after_mib"] = w.rss_mib()
        out["worker_processes"] = w.processes()
    c.close()
    return out


def profile_throughput(adapter: Any, p: dict[str, Any], variant: str) -> dict[str, Any]:
    """py-spy attached to an idle worker, which then runs ``n`` no-op tasks."""
    n = p["n"]
    kind = adapter.throughput_kind(variant)
    c = rclient()
    with worker(adapter, variant, n) as w:
        time.sleep(p["boot_s"])
        w.check()
        spy = subprocess.Popen(
            [p["py_spy"], "record", "--pid", str(w.pid), "--rate", str(p["rate"])]
            + ["--format", "raw", "--output", p["out"]]
            + (["--gil"] if p.get("gil") else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(1.0)  # py-spy attaches
            adapter.prefill(kind, n)
            if not wait_until(lambda: c.exists(probe.end_key(0)) > 0, p["timeout"], w, 0.02):
                raise RuntimeError(f"the profiled worker did not finish {n} tasks:\n{w.tail()}")
            start, end = float(c.get(f"{PROBE}:start") or 0), float(c.get(probe.end_key(0)) or 0)
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
    c.close()
    if not Path(p["out"]).exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-2000:]}")
    return {"profile": p["out"], "throughput_while_profiled": n / (end - start)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def latency(adapter: Any, p: dict[str, Any], variant: str) -> dict[str, Any]:
    """Pick-up latency of an idle worker, and its RSS at rest. ``windows`` × ``n`` tasks are
    sent on one schedule; each window of ``n`` has its own percentiles (one measurement),
    and the result's are their medians."""
    n, rate, probes = p["n"], p["rate"], p["idle_probes"]
    windows = max(1, int(p.get("windows", 1)))
    total = n * windows
    kind = adapter.latency_kind(variant)
    c = rclient()
    key = f"{PROBE}:lat"

    async def scenario(w: WorkerProcess) -> dict[str, Any]:
        async def send(tag: str) -> None:
            t0 = time.monotonic()
            if adapter.sync_producer:
                adapter.enqueue(kind, tag, t0)
            else:
                await adapter.aenqueue(kind, tag, t0)

        async def wait_count(count: int, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while c.llen(key) < count:
                w.check()
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.002)
            return True

        t = time.monotonic()
        await send("warm")
        if not await wait_count(1, p["boot_timeout"]):
            raise RuntimeError(f"the worker ran nothing in {p['boot_timeout']}s:\n{w.tail()}")
        boot = time.monotonic() - t
        await asyncio.sleep(1.0)
        rss_rest = w.rss_mib()
        for k in range(probes):
            await asyncio.sleep(1.0)  # a second of idleness before each probe
            await send(f"idle{k}")
            if not await wait_count(2 + k, 30):
                raise RuntimeError(f"idle probe {k} not picked up in 30s:\n{w.tail()}")
        base = 1 + probes
        t_start = time.monotonic()
        for i in range(total):
            delay = t_start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(f"b{i}")
        sent_in = time.monotonic() - t_start
        complete = await wait_count(base + total, 60)
        if adapter.async_producer and not adapter.sync_producer:
            await adapter.aclose()
        entries = [_text(e).split() for e in c.lrange(key, 0, -1)]
        values = {tag: float(v) * 1000 for tag, v in entries}
        idle = [values[f"idle{k}"] for k in range(probes)]
        per_window = []
        for w0 in range(0, total, n):
            burst = [values[f"b{i}"] for i in range(w0, w0 + n) if f"b{i}" in values]
            per_window.append({q: _percentile(burst, q) for q in (50, 95, 99)})
        picked = [values[f"b{i}"] for i in range(total) if f"b{i}" in values]
        return {
            "boot_and_first_task_s": boot,
            "rss_rest_mib": rss_rest,
            **{
                f"latency_p{q}_ms": statistics.median(w[q] for w in per_window)
                for q in (50, 95, 99)
            },
            "latency_windows": [{f"latency_p{q}_ms": w[q] for q in w} for w in per_window],
            "latency_max_ms": max(picked),
            "latency_idle_ms": statistics.median(idle),
            "latency_idle_all_ms": idle,
            "picked_up": len(picked),
            "sent": total,
            "complete": complete,
            "achieved_rate": total / max(1e-9, sent_in),
        }

    with worker(adapter, variant) as w:
        out = asyncio.run(scenario(w))
    c.close()
    return out


def latency_trace(adapter: Any, p: dict[str, Any], variant: str) -> dict[str, Any]:
    """taskq's pick-up path, cut in three with the Redis server's MONITOR timestamps.

    For each task, sent one at a time: the producer's call (wall clock) → Redis receives
    the enqueue script → Redis receives the worker's fetch script → the task starts (wall
    clock in the worker). MONITOR adds work to Redis, so the total is a little above the
    latency measured without it.
    """
    from taskq_core.brokers import scripts

    names = {s.sha: s.name for s in scripts.ALL}
    n, rate = p["n"], p["rate"]
    db = int(URL.rsplit("/", 1)[1])
    c = rclient()
    events: list[tuple[float, str]] = []
    ready, stop = threading.Event(), threading.Event()

    def watch() -> None:
        mc = rclient()
        with mc.monitor() as m:  # type: ignore[no-untyped-call]
            ready.set()
            while not stop.is_set():
                cmd = m.next_command()
                parts = str(cmd.get("command", "")).split()
                if cmd.get("db") == db and parts and parts[0].upper() == "EVALSHA":
                    events.append((float(cmd["time"]), names.get(parts[1], "?")))
        mc.close()

    sent: dict[str, float] = {}
    with worker(adapter, variant) as w:
        adapter.enqueue("lat_traced", "warm")
        if not wait_until(lambda: c.llen(f"{PROBE}:wall") > 0, p["boot_timeout"], w, 0.01):
            raise RuntimeError(f"the worker ran nothing:\n{w.tail()}")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ready.wait(10)
        time.sleep(0.5)
        # one at a time at ``rate``, or each after ``idle`` seconds of rest (the first task
        # after idleness)
        pause = p.get("idle") or 1 / rate
        for i in range(n):
            time.sleep(pause)
            tag = f"t{i}"
            sent[tag] = time.time()
            adapter.enqueue("lat_traced", tag)
        wait_until(lambda: c.llen(f"{PROBE}:wall") >= n + 1, 30, w, 0.01)
        stop.set()
        c.ping()  # one more command, so the watcher sees the stop
        watcher.join(5)
    started = {
        tag: float(t) for tag, t in (_text(e).split() for e in c.lrange(f"{PROBE}:wall", 0, -1))
    }
    c.close()
    events.sort()
    # a single task due now goes through enqueue_one.lua, batches through enqueue.lua
    enq = [t for t, name in events if name in ("enqueue", "enqueue_one")]
    fetch = [t for t, name in events if name == "fetch"]
    segments: dict[str, list[float]] = {"call": [], "wake": [], "deliver": [], "total": []}
    for tag, t0 in sent.items():
        t_enq = next((t for t in enq if t >= t0), None)
        t_fetch = None if t_enq is None else next((t for t in fetch if t >= t_enq), None)
        t_start = started.get(tag)
        if t_enq is None or t_fetch is None or t_start is None or t_start < t_fetch:
            continue
        segments["call"].append((t_enq - t0) * 1000)
        segments["wake"].append((t_fetch - t_enq) * 1000)
        segments["deliver"].append((t_start - t_fetch) * 1000)
        segments["total"].append((t_start - t0) * 1000)
    return {
        "traced": len(segments["total"]),
        "sent": n,
        "segments": {
            k: {"p50": _percentile(v, 50), "p95": _percentile(v, 95), "max": max(v)}
            for k, v in segments.items()
            if v
        },
    }


def recovery(adapter: Any, p: dict[str, Any], variant: str) -> dict[str, Any]:
    """A worker holding tasks is SIGKILLed; how long until every task has finished?

    ``BENCH_RECOVERY=1`` (in this process, so in the producer's calls, and in the workers'
    environment) turns on the library's own recovery feature with a short setting, which
    the adapter names in ``recovery_setting`` (``None``: the library has none)."""
    k, bound, reps = p["k"], p["bound"], p["reps"]
    os.environ["BENCH_RECOVERY"] = "1"
    c = rclient()
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        if rep:
            clean()

        async def send_all(ids: range = range(k)) -> None:
            for i in ids:
                if adapter.sync_producer:
                    adapter.enqueue("hold", i)
                else:
                    await adapter.aenqueue("hold", i)
            if adapter.async_producer and not adapter.sync_producer:
                await adapter.aclose()

        env = adapter_env(adapter, variant)
        if "lease" in p:  # taskq only, in quick runs: a short lease keeps them short
            env |= {"BENCH_TASKQ_LEASE": str(p["lease"]), "BENCH_TASKQ_RENEW": str(p["renew"])}
        a = WorkerProcess(adapter.worker_command(variant), {**env, "BENCH_ROLE": "doomed"})
        b: WorkerProcess | None = None
        try:
            asyncio.run(send_all())
            running = min(k, adapter.recovery_running)

            def took_them(n: int = running) -> bool:
                return c.llen(f"{PROBE}:started") >= n

            if not wait_until(took_them, 60, a, 0.02):
                raise RuntimeError(f"worker A did not start {running} tasks:\n{a.tail()}")
            time.sleep(1.0)  # let it prefetch whatever it prefetches
            held = sorted({int(e.split()[0]) for e in c.lrange(f"{PROBE}:started", 0, -1)})
            b = WorkerProcess(adapter.worker_command(variant), env)
            time.sleep(p["b_boot"])  # worker B is up and idle before A dies
            b.check()
            t_kill = time.monotonic()
            a.kill()

            def finished() -> set[int]:
                return {int(e.split()[0]) for e in c.lrange(f"{PROBE}:finished", 0, -1)}

            ok = wait_until(lambda: len(finished()) >= k, bound, None, 0.05)
            elapsed = time.monotonic() - t_kill
            done = finished()
            after: dict[str, Any] = {}
            if not ok:
                # what the library's database still holds (a task not recovered but kept
                # somewhere may yet run; none kept: it is lost); then one more task is
                # enqueued, for a library that recovers only when new work comes in
                after["keys_left"] = _keys_left(c)
                t_next = time.monotonic()
                asyncio.run(send_all(range(k, k + 1)))
                nudged = wait_until(lambda: len(finished() & set(range(k))) >= k, 15, None, 0.05)
                after["after_next_enqueue_s"] = time.monotonic() - t_next if nudged else None
                after["finished_after_next_enqueue"] = sorted(finished() & set(range(k)))
            runs.append(
                {
                    "recovered": ok,
                    "seconds": elapsed if ok else None,
                    "bound_s": bound,
                    "held_by_killed_worker": held,
                    "finished_within_bound": sorted(done),
                    **after,
                }
            )
            log(f"recovery {rep + 1}/{reps}: {f'{elapsed:.1f}s' if ok else 'not within bound'}")
        finally:
            a.stop(1)
            if b is not None:
                b.stop()
    c.close()
    secs = [r["seconds"] for r in runs if r["seconds"] is not None]
    return {
        "recovery_s_runs": [r["seconds"] for r in runs],
        "recovery_detail": runs,
        "recovered_all_runs": len(secs) == len(runs),
        "recovery_setting": (
            f"lease {p['lease']:g} s, renewal every {p['renew']:g} s (the quick run's)"
            if "lease" in p and adapter.name == "taskq"
            else getattr(adapter, "recovery_setting", None)
        ),
    }


def _keys_left(c: redis.Redis) -> dict[str, str]:
    """The library's keys (the probe's and the marker left out): type and size of each."""
    out: dict[str, str] = {}
    for raw in sorted(c.scan_iter(count=1000)):
        key = _text(raw)
        if key == MARKER or key.startswith(PROBE):
            continue
        kind = _text(c.type(key))
        size = {"list": c.llen, "hash": c.hlen, "set": c.scard, "zset": c.zcard}.get(kind)
        sizes = {"stream": c.xlen, "string": c.strlen}
        size = size or sizes.get(kind)
        out[key] = f"{kind} {size(key) if size else ''}".strip()
        if len(out) >= 50:
            break
    return out


def _enqueue_ints(adapter: Any, kind: str, ids: range) -> None:
    """``kind(i)`` for every ``i``: the library's bulk API in batches of 1,000 where it
    has one, else one call each (an asyncio producer: 100 calls in flight at a time, on
    its one connection pool), then the producer's connections closed."""
    if adapter.bulk:
        for start in range(0, len(ids), 1000):
            adapter.enqueue_bulk(kind, [(i,) for i in ids[start : start + 1000]])
    elif adapter.sync_producer:
        for i in ids:
            adapter.enqueue(kind, i)
    else:

        async def fill() -> None:
            try:
                for start in range(0, len(ids), 100):
                    await asyncio.gather(
                        *(adapter.aenqueue(kind, i) for i in ids[start : start + 100])
                    )
            finally:
                await adapter.aclose()

        asyncio.run(fill())
    adapter.close()


def memory(adapter: Any, p: dict[str, Any]) -> dict[str, Any]:
    """Redis memory per queued task: ``n`` tasks of one integer argument (``hold(i)``, the
    recovery test's task: outside a doomed worker it is a no-op) enqueued with no worker
    running. The server's ``used_memory`` after a ``MEMORY PURGE``
    (:func:`benchmarks.redis_memory.used_memory`, as ``benchmarks/payloads.py`` reads it)
    before and after, each time on a fresh connection with the producer's closed; divided
    by ``n``. A warm-up enqueue first loads whatever scripts the library uses (the script
    cache counts in ``used_memory``), then the database is emptied. ``used_memory`` is the
    whole server's: the sum of ``MEMORY USAGE`` of the database's keys is kept beside it,
    as a check that no one else's keys moved it."""
    from benchmarks.redis_memory import keys_memory, used_memory

    n = p["n"]
    kind = "hold"
    _enqueue_ints(adapter, kind, range(10))
    clean()

    def read() -> int:
        c = rclient()
        try:
            return used_memory(c)
        finally:
            c.close()

    before = read()
    t = time.perf_counter()
    _enqueue_ints(adapter, kind, range(n))
    seconds = time.perf_counter() - t
    after = read()
    c = rclient()
    keys, key_bytes = keys_memory(c, skip=(MARKER,))
    c.close()
    return {
        "tasks": n,
        "used_memory_before": before,
        "used_memory_after": after,
        "redis_bytes_per_task": (after - before) / n,
        "keys": keys,
        "keys_bytes_per_task": key_bytes / n,
        "enqueue_s": seconds,
        "how": "bulk" if adapter.bulk else ("sync" if adapter.sync_producer else "async"),
    }


def adapter_env(adapter: Any, variant: str) -> dict[str, str]:
    return adapter.worker_env(variant) if hasattr(adapter, "worker_env") else {}


#: the list the interleaved floor of the produce scenario pushes to (in the library's own DB)
FLOOR_KEY = "bench-floor:produce"


def otel_floor(n: int) -> dict[str, float]:
    """What OpenTelemetry's SDK itself costs per span here, in CPU time: the consumer span
    any instrumentation of a task makes (the message's ``traceparent`` extracted, six
    attributes, the span made current, then ended; no span processor), the same span for a
    message whose trace was not sampled, and the least span (``start_span`` and ``end``,
    nothing else). No task queue is involved."""
    try:
        from opentelemetry import context, propagate, trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import SpanKind
    except ImportError:  # an environment without the SDK: no figure rather than a wrong one
        return {}
    tracer = TracerProvider().get_tracer("floor")
    sampled = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    unsampled = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}

    def consumer_span(i: int, carrier: dict[str, str]) -> None:
        attributes: dict[str, str | int] = {
            "messaging.system": "floor",
            "messaging.operation.type": "process",
            "messaging.destination.name": "default",
            "messaging.message.id": str(i),
            "floor.task": "noop",
            "floor.attempt": 1,
        }
        parent = propagate.extract(carrier)
        span = tracer.start_span("process noop", parent, SpanKind.CONSUMER, attributes)
        token = context.attach(trace.set_span_in_context(span))
        context.detach(token)
        span.end()

    def least_span(i: int, carrier: dict[str, str]) -> None:
        tracer.start_span("noop").end()

    out: dict[str, float] = {}
    for key, make, carrier in (
        ("otel_span_us", consumer_span, sampled),
        # the same for a message whose trace was not sampled where it began: the SDK's
        # default sampler (ParentBased) makes a non-recording span
        ("otel_span_unsampled_us", consumer_span, unsampled),
        ("otel_span_bare_us", least_span, sampled),
    ):
        for i in range(n // 10):  # warm-up
            make(i, carrier)
        t = time.process_time()
        for i in range(n):
            make(i, carrier)
        out[key] = (time.process_time() - t) / n * 1e6
    return out


def message_floor(n: int) -> dict[str, float]:
    """What taskq's own message handling costs per task, in CPU time: decoding a typical
    message (every field checked), and signing it plus verifying it (HMAC-SHA256 of its
    canonical bytes, ``security.signing_keys``): the producer signs, the worker verifies.
    No broker is involved."""
    import uuid

    from taskq_core.message import Message, decode
    from taskq_core.signing import Signer

    m = Message(
        id=uuid.uuid4().hex,
        task="shop.send_receipt",
        queue="default",
        args=[12345, "customer@example.com"],
        kwargs={"locale": "en"},
        enqueued_at=1 << 40,
    )
    plain = m.encode()
    signer = Signer({"bench": "a-secret-of-32-characters-000000"})

    def decode_plain() -> None:
        decode(plain)

    def sign_verify() -> None:
        decode(m.encode(signer=signer), verify=signer.verify)

    def encode_decode() -> None:  # the same without signing: the difference is signing's
        decode(m.encode())

    out: dict[str, float] = {}
    for key, fn in (
        ("decode_us", decode_plain),
        ("encode_decode_us", encode_decode),
        ("sign_verify_us", sign_verify),
    ):
        for _ in range(n // 10):  # warm-up
            fn()
        t = time.process_time()
        for _ in range(n):
            fn()
        out[key] = (time.process_time() - t) / n * 1e6
    out["signing_us"] = max(0.0, out["sign_verify_us"] - out["encode_decode_us"])
    return out


def floor(p: dict[str, Any]) -> dict[str, Any]:
    """redis-py alone: one RPUSH per round trip (sync and asyncio), and pipelines of 100;
    and OpenTelemetry's SDK alone (:func:`otel_floor`)."""
    import redis.asyncio as aioredis

    n, n_pipe, size = p["n"], p["n_pipe"], p["payload"] or _taskq_message_size()
    payload = b"x" * size
    r = rclient()
    for _ in range(100):
        r.rpush("floor", payload)
    t = time.perf_counter()
    for _ in range(n):
        r.rpush("floor", payload)
    sync_rate = n / (time.perf_counter() - t)
    r.delete("floor")

    async def one_at_a_time() -> float:
        a = aioredis.Redis.from_url(URL)
        for _ in range(100):
            await a.rpush("floor", payload)
        t = time.perf_counter()
        for _ in range(n):
            await a.rpush("floor", payload)
        rate = float(n / (time.perf_counter() - t))
        await a.aclose()
        return rate

    async_rate = asyncio.run(one_at_a_time())
    # how long this machine takes to answer a process that slept: a PING after 10 ms, and
    # after 1 s (the pick-up latency probes' idleness)
    pings: dict[str, list[float]] = {}
    for key, idle in (("redis_ping_after_10ms_ms", 0.01), ("redis_ping_after_1s_ms", 1.0)):
        for _ in range(p.get("idle_pings", 3)):
            time.sleep(idle)
            t = time.perf_counter()
            r.ping()
            pings.setdefault(key, []).append((time.perf_counter() - t) * 1000)
    r.delete("floor")
    batches = n_pipe // 100
    t = time.perf_counter()
    for _ in range(batches):
        pipe = r.pipeline(transaction=False)
        for _ in range(100):
            pipe.rpush("floor", payload)
        pipe.execute()
    pipe_rate = batches * 100 / (time.perf_counter() - t)
    r.close()
    return {
        **otel_floor(p.get("n_spans", 20000)),
        **message_floor(p.get("n_messages", 20000)),
        **{k: statistics.median(v) for k, v in pings.items()},
        "redis_ping_after_1s_all_ms": pings["redis_ping_after_1s_ms"],
        "redis_one_command_sync": sync_rate,
        "redis_one_command_async": async_rate,
        "redis_pipeline_100": pipe_rate,
        "payload_bytes": size,
    }


def _taskq_message_size() -> int:
    """The size of the message taskq enqueues for a no-op task (the floor pushes as much)."""
    import uuid

    from taskq_core.message import Message

    m = Message(id=uuid.uuid4().hex, task="noop_async", queue="default", enqueued_at=1 << 40)
    return len(m.encode())


def versions(lib: str) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    if lib != "floor":
        out.update(importlib.import_module(f"benchmarks.libs.{lib}_app").versions())
    else:
        from importlib.metadata import version

        out.update({"redis": version("redis"), "hiredis": version("hiredis")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib")
    ap.add_argument("scenario")
    ap.add_argument("--variant", default="default")
    ap.add_argument("--params", default="{}")
    args = ap.parse_args()
    params = json.loads(args.params)
    # the variant, for the library's module (imported below, and again by its workers, which
    # inherit this environment): a peer's "tuned" settings are read from it at import
    os.environ["BENCH_VARIANT"] = args.variant
    # the orchestrator stops an overrunning measurement with SIGTERM: unwind, so that the
    # workers (each in a session of its own) are stopped and the database flushed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.scenario == "versions":
        result = versions(args.lib)
    else:
        clean()
        try:
            if args.scenario == "floor":
                result = floor(params)
            else:
                adapter = importlib.import_module(f"benchmarks.libs.{args.lib}_app").Adapter()
                try:
                    if args.scenario == "produce":
                        result = produce(adapter, params)
                    elif args.scenario == "throughput":
                        result = throughput(adapter, params, args.variant)
                    elif args.scenario == "latency":
                        result = latency(adapter, params, args.variant)
                    elif args.scenario == "recovery":
                        result = recovery(adapter, params, args.variant)
                    elif args.scenario == "memory":
                        result = memory(adapter, params)
                    elif args.scenario == "latency-trace":
                        result = latency_trace(adapter, params, args.variant)
                    elif args.scenario == "profile-throughput":
                        result = profile_throughput(adapter, params, args.variant)
                    else:
                        raise SystemExit(f"unknown scenario {args.scenario!r}")
                finally:
                    adapter.close()
        finally:
            c = rclient()
            c.flushdb()
            c.close()
    print("BENCH-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

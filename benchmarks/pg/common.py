"""What every library's PostgreSQL benchmark shares: sizes, the measures, the worker
process, the probe the tasks write to, the database reset, and the result's shape.

A library module (``bench_<lib>.py``) defines a :class:`Lib` and calls :func:`main`:

    python -m benchmarks.pg.bench_procrastinate --mode quick    # one JSON line on stdout
    python -m benchmarks.pg.bench_procrastinate worker          # its worker (run by the above)

The measures (:data:`METRICS`), each on a freshly reset schema:

1. ``enqueue_one_per_s``: one task per call, awaited one after the other (async producer);
2. ``enqueue_bulk_per_s``: the library's bulk API, batches of 100;
3. ``processing_per_s``: ``n`` no-op tasks queued beforehand, then ONE worker process
   started; from the first task's start (recorded by the task, wall clock) to the moment
   the broker holds no unfinished job (:meth:`Lib.unfinished`, polled every 20 ms once
   the ``n``-th task has ended; where that is not known, the ``n``-th task's end). The
   worker's boot is beside it (``boot_s``, ``processing_incl_boot_per_s``). The tables
   are ANALYZEd after the prefill (:func:`analyze_schema`);
4. ``latency_p50_ms`` / ``latency_p99_ms``: one idle worker, a task enqueued every ~20 ms;
   each records ``time.time()`` when it starts, the producer took ``time.time()`` right
   before its enqueue call: latency = start - enqueue;
5. ``idle_first_ms``: the same worker left idle for a few seconds, then one enqueue (3
   repetitions, the median).

Logs go to stderr; the one stdout line is the result (:func:`result_shape`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

ROOT = Path(__file__).resolve().parents[2]
#: the benchmark's database (``BENCH_PG_URL``); each library has a schema of its own in it
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/taskq_bench")
DB_NAME = PG_URL.rsplit("/", 1)[1].split("?", 1)[0]
#: the server's maintenance database, to create :data:`DB_NAME` when it is missing
PG_ADMIN_URL = PG_URL.rsplit("/", 1)[0] + "/postgres"

#: sizes of a run (``--mode``): N per measure, the pace of the latency probe, the idleness
SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "enqueue_one": 500,
        "enqueue_bulk": 2000,
        "batch": 100,
        "processing": 1000,
        "processing_cap_s": 120,
        "latency": 50,
        "latency_every_s": 0.02,
        "idle_s": 2.0,
        "idle_reps": 3,
        "boot_timeout_s": 60,
    },
    "full": {
        "enqueue_one": 5000,
        "enqueue_bulk": 50000,
        "batch": 100,
        "processing": 20000,
        "processing_cap_s": 240,
        "latency": 300,
        "latency_every_s": 0.02,
        "idle_s": 5.0,
        "idle_reps": 3,
        "boot_timeout_s": 90,
    },
}

#: the headline numbers of a result: key, label, unit, True where higher is better
METRICS: list[tuple[str, str, str, bool]] = [
    ("enqueue_one_per_s", "enqueue, one task per call", "tasks/s", True),
    ("enqueue_bulk_per_s", "bulk enqueue, batches of 100", "tasks/s", True),
    ("processing_per_s", "processing, one worker process (no-op tasks)", "tasks/s", True),
    ("latency_p50_ms", "pick-up latency p50 (a task every ~20 ms)", "ms", False),
    ("latency_p99_ms", "pick-up latency p99 (a task every ~20 ms)", "ms", False),
    ("idle_first_ms", "first task after idle (median of 3)", "ms", False),
]

#: the prefill of the processing measure goes in batches of this size (not measured)
PREFILL_BATCH = 1000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} pg {os.getpid()}] {msg}", file=sys.stderr, flush=True)


# -- timing helpers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list, as side.py's."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


async def timed_rate(n: int, call: Callable[[], Awaitable[object]]) -> float:
    """``n`` awaited calls, one after the other: calls per second."""
    t = time.perf_counter()
    for _ in range(n):
        await call()
    return n / (time.perf_counter() - t)


async def wait_for(
    cond: Callable[[], bool], timeout: float, worker: WorkerProcess | None = None
) -> bool:
    """Poll ``cond`` every 5 ms until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if worker is not None:
            worker.check()
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


# -- the database


def ensure_database() -> None:
    """Create :data:`DB_NAME` when the server does not have it yet."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if found is None:
            log(f"creating database {DB_NAME}")
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def reset_schema(schema: str) -> None:
    """Drop ``schema`` with everything in it and create it empty (the library then installs
    its tables into it: its connections' ``search_path`` starts with it)."""
    import psycopg

    ensure_database()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


def analyze_schema(schema: str) -> None:
    """``ANALYZE`` every table of ``schema``: the planner's statistics of a table just
    filled, which autovacuum would gather within a minute on a live system (its
    autoanalyze threshold is 50 rows + 10 %), so that no library's queries run on the
    plans of an empty table. ``BENCH_PG_ANALYZE=0`` leaves it out."""
    if os.environ.get("BENCH_PG_ANALYZE") == "0":
        return
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(f'ANALYZE "{schema}"."{table}"')


class PgCounter:
    """``SELECT count(*) ...`` of the jobs a library has not finished, on one connection of
    the producer's (opened on first use): a library's :meth:`Lib.unfinished`."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._conn: Any = None

    def __call__(self) -> int:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(PG_URL, autocommit=True)
        row = self._conn.execute(self.sql).fetchone()
        return int(row[0]) if row else 0


async def drained_at(lib: Lib, timeout: float) -> float | None:
    """``time.time()`` when the library first has no unfinished job, polled every 20 ms;
    None where that is not known, or if it has not drained in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = lib.unfinished()
        if left is None:
            return None
        if left == 0:
            return time.time()
        await asyncio.sleep(0.02)
    return None


#: the server settings a result records beside its numbers (commits wait for the WAL's
#: fsync unless these say otherwise)
SERVER_SETTINGS = ("server_version", "fsync", "synchronous_commit", "shared_buffers")


def server_settings() -> dict[str, str]:
    import psycopg

    with contextlib.suppress(Exception), psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
            (list(SERVER_SETTINGS),),
        ).fetchall()
        return {name: f"{value}{f' x {unit}' if unit else ''}" for name, value, unit in rows}
    return {}


# -- what the tasks record (in the worker process)


class Probe:
    """Lines appended to the file ``BENCH_PG_PROBE`` names, by the benchmark's tasks:

    - ``start T``: the first no-op task started (``time.time()``);
    - ``progress K T``: every 1,000th no-op task ended; ``done N T``: the ``BENCH_PG_N``-th;
    - ``lat TAG SECONDS``: a latency task started, ``SECONDS`` after its enqueue call.

    Costs a counter increment per no-op task, a short write per 1,000 tasks."""

    def __init__(self) -> None:
        self.path = os.environ.get("BENCH_PG_PROBE")
        self.n = int(os.environ.get("BENCH_PG_N", "0") or 0)
        self.count = 0
        self._file: TextIO | None = None

    def _write(self, line: str) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 - the worker's life
        self._file.write(line + "\n")

    def noop(self) -> None:
        """Called by every no-op task, at its end (its start, for the first one)."""
        if self.count == 0:
            self._write(f"start {time.time()!r}")
        self.count += 1
        if self.count == self.n:
            self._write(f"done {self.count} {time.time()!r}")
        elif self.count % 1000 == 0:
            self._write(f"progress {self.count} {time.time()!r}")

    def lat(self, tag: str, t0: float) -> None:
        """Called first thing by a latency task, with the producer's time of enqueue."""
        self._write(f"lat {tag} {time.time() - t0!r}")


PROBE = Probe()


class ProbeFile:
    """The producer's side of :class:`Probe`: a temporary file, read again on each poll."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="bench-pg-probe-", suffix=".txt")
        os.close(fd)
        self.path = Path(name)

    def lines(self) -> list[list[str]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [line.split() for line in text.splitlines() if line.strip()]

    def first(self, kind: str) -> list[str] | None:
        return next((parts for parts in self.lines() if parts[0] == kind), None)

    def latencies(self) -> dict[str, float]:
        return {p[1]: float(p[2]) for p in self.lines() if p[0] == "lat" and len(p) == 3}

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# -- the worker process


class WorkerProcess:
    """``python -m benchmarks.pg.bench_<lib> worker ...`` in a session of its own, its output
    in a temporary log; stopped with SIGTERM, then SIGKILL for whatever is left."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="bench-pg-worker-", suffix=".log", delete=False
        )
        self.started = time.time()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"the worker exited with {self.proc.returncode}; its output:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"worker {self.proc.pid} ignored SIGTERM for {grace:g}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.log.close()
        if os.environ.get("BENCH_KEEP_LOGS") == "1":
            log(f"worker log kept: {self.log.name}")
        else:
            Path(self.log.name).unlink(missing_ok=True)


# -- a library


class Lib(Protocol):
    """One library's producer, worker and schema. Its tasks are a no-op one (which calls
    ``PROBE.noop()``) and a latency one taking ``tag`` and ``t0`` (``PROBE.lat(tag, t0)``)."""

    name: str
    #: the PostgreSQL schema its tables live in (None: not on PostgreSQL)
    schema: str | None

    def describe(self) -> dict[str, Any]:
        """``versions``, ``settings`` (worker and producer, as run) and ``docs`` (the URLs
        each setting is based on), and ``broker`` (``postgresql`` or ``redis``)."""
        ...

    async def reset(self) -> None:
        """Everything of the library's dropped, then its schema installed afresh. Called
        with the producer closed."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue_noop(self) -> None: ...

    async def enqueue_noop_bulk(self, n: int) -> None:
        """``n`` no-op tasks in one call of the library's bulk API."""
        ...

    async def enqueue_lat(self, tag: str, t0: float) -> None: ...

    def unfinished(self) -> int | None:
        """How many jobs the broker holds that have not finished (None: not known); the
        processing measure ends when it reads 0."""
        ...

    def run_worker(self) -> None:
        """The worker, in this process, until SIGTERM."""
        ...


# -- the measures


async def measure_enqueue_one(lib: Lib, p: dict[str, Any]) -> dict[str, Any]:
    await lib.reset()
    await lib.open()
    try:
        for _ in range(20):  # connections, prepared statements
            await lib.enqueue_noop()
        rate = await timed_rate(p["enqueue_one"], lib.enqueue_noop)
    finally:
        await lib.close()
    return {"enqueue_one_per_s": rate, "enqueue_one_n": p["enqueue_one"]}


async def measure_enqueue_bulk(lib: Lib, p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["enqueue_bulk"], p["batch"]
    await lib.reset()
    await lib.open()
    try:
        await lib.enqueue_noop_bulk(batch)  # warm-up
        batches = n // batch
        t = time.perf_counter()
        for _ in range(batches):
            await lib.enqueue_noop_bulk(batch)
        rate = batches * batch / (time.perf_counter() - t)
    finally:
        await lib.close()
    return {"enqueue_bulk_per_s": rate, "enqueue_bulk_n": batches * batch, "batch": batch}


def _worker(lib: Lib, argv: list[str], probe: ProbeFile, n: int = 0) -> WorkerProcess:
    module = f"benchmarks.pg.bench_{lib.name}"
    return WorkerProcess(
        [sys.executable, "-m", module, *argv, "worker"],
        {"BENCH_PG_PROBE": str(probe.path), "BENCH_PG_N": str(n)},
    )


async def measure_processing(lib: Lib, p: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    n, cap = p["processing"], p["processing_cap_s"]
    await lib.reset()
    await lib.open()
    try:
        t = time.perf_counter()
        for at in range(0, n, PREFILL_BATCH):
            await lib.enqueue_noop_bulk(min(PREFILL_BATCH, n - at))
        prefill_s = time.perf_counter() - t
        if lib.schema is not None:
            analyze_schema(lib.schema)
        out: dict[str, Any] = {
            "processing_n": n,
            "prefill_s": prefill_s,
            "analyzed": lib.schema is not None and os.environ.get("BENCH_PG_ANALYZE") != "0",
        }
        probe = ProbeFile()
        w = _worker(lib, argv, probe, n)
        try:
            if not await wait_for(lambda: probe.first("start") is not None, p["boot_timeout_s"], w):
                raise RuntimeError(f"no task started within {p['boot_timeout_s']}s:\n{w.tail()}")
            done = await wait_for(lambda: probe.first("done") is not None, cap, w)
            start = float((probe.first("start") or ["", "0"])[1])
            end = 0.0
            if done:
                end = float((probe.first("done") or ["", "", "0"])[2])
                out["processing_tasks_end_per_s"] = n / (end - start)
            else:  # capped: the rate of what ran
                last = [x for x in probe.lines() if x[0] == "progress"]
                if not last:
                    raise RuntimeError(f"fewer than 1000 tasks ran in {cap}s:\n{w.tail()}")
                out["processing_per_s"] = int(last[-1][1]) / (float(last[-1][2]) - start)
                out["processing_capped_s"] = cap
            out["boot_s"] = start - w.started
            # the end: the library has acknowledged every job (none left unfinished in the
            # database), polled every 20 ms from the n-th task's end; where the library's
            # table is not known, the n-th task's end
            drained = await drained_at(lib, 60) if done else None
            if done and drained is None and lib.unfinished() is not None:
                raise RuntimeError("the broker still held unfinished jobs 60 s after the end")
            if done:
                end = drained if drained is not None else end
                out["processing_end"] = "database" if drained is not None else "task"
                out["processing_per_s"] = n / (end - start)
                out["processing_s"] = end - start
                out["processing_incl_boot_per_s"] = n / (end - w.started)
        finally:
            w.stop()
            probe.remove()
    finally:
        await lib.close()
    return out


async def measure_latency(lib: Lib, p: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Pick-up latency at a steady pace, then the first task after idleness, with the same
    (idle) worker."""
    n, every, idle_s, reps = p["latency"], p["latency_every_s"], p["idle_s"], p["idle_reps"]
    await lib.reset()
    await lib.open()
    probe = ProbeFile()
    w = _worker(lib, argv, probe)
    try:

        async def send(tag: str) -> None:
            await lib.enqueue_lat(tag, time.time())

        def seen(count: int) -> bool:
            return len(probe.latencies()) >= count

        def picked(tag: str) -> Callable[[], bool]:
            return lambda: tag in probe.latencies()

        await send("warm")
        if not await wait_for(lambda: seen(1), p["boot_timeout_s"], w):
            raise RuntimeError(f"the worker ran nothing in {p['boot_timeout_s']}s:\n{w.tail()}")
        await asyncio.sleep(1.0)
        t_start = time.monotonic()
        for i in range(n):
            delay = t_start + i * every - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(f"b{i}")
        sent_in = time.monotonic() - t_start
        complete = await wait_for(lambda: seen(1 + n), 60, w)
        values = probe.latencies()
        burst = [values[f"b{i}"] * 1000 for i in range(n) if f"b{i}" in values]
        idle: list[float] = []
        for k in range(reps):
            tag = f"idle{k}"
            await asyncio.sleep(idle_s)
            await send(tag)
            if not await wait_for(picked(tag), 30, w):
                raise RuntimeError(f"idle probe {k} not picked up in 30 s:\n{w.tail()}")
            idle.append(probe.latencies()[tag] * 1000)
    finally:
        w.stop()
        probe.remove()
        await lib.close()
    return {
        "latency_p50_ms": percentile(burst, 50),
        "latency_p95_ms": percentile(burst, 95),
        "latency_p99_ms": percentile(burst, 99),
        "latency_max_ms": max(burst),
        "latency_n": n,
        "latency_picked_up": len(burst),
        "latency_complete": complete,
        "latency_achieved_rate": n / max(1e-9, sent_in),
        "idle_first_ms": statistics.median(idle),
        "idle_first_all_ms": idle,
        "idle_s": idle_s,
    }


# -- the result


def result_shape(
    lib: Lib, mode: str, metrics: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """One library's result: ``metrics`` holds every key of :data:`METRICS` that was
    measured (and the details beside them); ``errors`` the measures that failed."""
    return {
        "lib": lib.name,
        "mode": mode,
        "params": SIZES[mode],
        "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "postgres": server_settings().get("server_version"),
        "postgres_settings": server_settings(),
        "loadavg_1m_after": os.getloadavg()[0],
        **lib.describe(),
        "metrics": metrics,
        "errors": errors,
    }


async def run_all(lib: Lib, mode: str, argv: list[str], only: set[str]) -> dict[str, Any]:
    p = SIZES[mode]
    metrics: dict[str, Any] = {}
    errors: dict[str, str] = {}
    steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("enqueue_one", lambda: measure_enqueue_one(lib, p)),
        ("enqueue_bulk", lambda: measure_enqueue_bulk(lib, p)),
        ("processing", lambda: measure_processing(lib, p, argv)),
        ("latency", lambda: measure_latency(lib, p, argv)),
    ]
    for name, step in steps:
        if only and name not in only:
            continue
        log(f"{lib.name}: {name}")
        try:
            metrics.update(await step())
        except Exception as exc:  # one measure failing leaves the others
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
    return result_shape(lib, mode, metrics, errors)


class Skip(Exception):
    """Raised by a library's factory when it cannot run here (the reason is reported)."""


def main(
    make: Callable[[argparse.Namespace], Lib], add_args: Callable[..., None] | None = None
) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(SIZES), default="quick")
    ap.add_argument("--only", default="", help="measures: enqueue_one,enqueue_bulk,...")
    if add_args is not None:
        add_args(ap)
    ap.add_argument("role", nargs="?", default="bench", choices=["bench", "worker"])
    args = ap.parse_args()
    if args.role == "bench":
        # the orchestrator stops an overrunning library with SIGTERM: unwind, so that the
        # worker (in a session of its own) is stopped too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # what the worker subprocess is given again: the library's own options
    passed = [a for a in sys.argv[1:] if a not in ("bench", "worker")]
    try:
        lib = make(args)
    except Skip as exc:
        print(json.dumps({"skipped": str(exc)}), flush=True)
        return
    if args.role == "worker":
        lib.run_worker()
        return
    only = {s for s in args.only.split(",") if s}
    result = asyncio.run(run_all(lib, args.mode, passed, only))
    print(json.dumps(result), flush=True)

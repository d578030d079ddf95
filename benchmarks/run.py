#!/usr/bin/env python3
"""Benchmarks taskq side by side with Celery, RQ, Dramatiq, Huey, arq, SAQ and taskiq.

    python benchmarks/run.py                   # full run: ~15-20 minutes on 2 cores
    python benchmarks/run.py --quick           # smoke run (CI): taskq and redis-py only
    python benchmarks/run.py --only taskq,celery --runs 5

Every library runs on the same Redis (127.0.0.1:6379), each in a database of its own that
is flushed after every measurement. Measurements are interleaved (each run goes through
every library before the next run starts, in a rotated order) and repeated ``--runs``
times; medians are reported with their min-max and each peer's ratio to taskq. Every peer's
worker runs twice, with its defaults and ``tuned`` (its best documented settings for short
tasks, see ``libs/<name>_app.py``; ``--peer-variants``), and the ratio is to its better one.

taskq's side runs with the project's ``.venv``; the peers are installed into
``benchmarks/.venv-peers`` from ``benchmarks/requirements-peers.txt`` (created on first use
by a full run, never by ``--quick``). A full run writes ``benchmarks/results/latest.json``,
``docs/benchmarks.md`` and the chart ``docs/benchmarks-ratios.png``; other runs write
``benchmarks/results/quick.json`` or ``partial.json`` (or ``--out``) and leave the doc alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PROJECT_VENV_PY = ROOT / ".venv" / "bin" / "python"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_PY = PEERS_VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements-peers.txt"
RESULTS = BENCH / "results"

# taskq's side needs redis-py and psutil: run the orchestrator with the project's venv
# (or, where there is none, with the interpreter that has taskq installed)
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and PROJECT_VENV_PY.exists():
    os.execv(
        str(PROJECT_VENV_PY),
        [str(PROJECT_VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]],
    )
VENV_PY = PROJECT_VENV_PY if PROJECT_VENV_PY.exists() else Path(sys.executable)

sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from benchmarks import report  # noqa: E402

PEERS = ["celery", "rq", "dramatiq", "huey", "arq", "saq", "taskiq"]
LIBS = ["taskq", *PEERS]
#: each library's own Redis database (the peers use fixed key names)
DB = {"floor": 8, "taskq": 9, "celery": 10, "rq": 11, "dramatiq": 12, "huey": 13}
DB.update({"arq": 14, "saq": 15, "taskiq": 7})
MARKER = "taskq-benchmarks:owner"

FULL: dict[str, dict[str, Any]] = {
    "produce": {"n": 5000, "n_bulk": 20000, "batch": 100},
    # taskq's 20,000 tasks take about a second: it gets 3 windows of them per worker
    # (the peers' take 10 s or more, one window each; see side.throughput)
    "throughput": {"n": 20000, "cap": 10, "boot_timeout": 90, "windows": 3},
    # 2 windows of 500 tasks at 200/s for every library: a p99 is 5 tasks, which one
    # stall of this shared machine moves
    "latency": {"n": 500, "rate": 200, "idle_probes": 3, "boot_timeout": 90, "windows": 2},
    # each peer with its own recovery feature set short (side.recovery, libs/*_app.py)
    "recovery": {"k": 4, "bound": 120, "reps": 3, "b_boot": 5},
    # Redis memory per queued task: 100,000 tasks of one integer argument, no worker
    "memory": {"n": 100000},
    "floor": {"n": 20000, "n_pipe": 200000, "payload": 0, "n_spans": 20000, "n_messages": 50000},
}
QUICK: dict[str, dict[str, Any]] = {
    "produce": {"n": 500, "n_bulk": 5000, "batch": 100},
    "throughput": {"n": 2000, "cap": 20, "boot_timeout": 60, "windows": 2},
    "latency": {"n": 100, "rate": 200, "idle_probes": 1, "boot_timeout": 60},
    # a short lease keeps the smoke run short; full runs use taskq's defaults (15 s / 5 s)
    "recovery": {"k": 4, "bound": 30, "reps": 1, "b_boot": 2, "lease": 3.0, "renew": 1.0},
    "memory": {"n": 2000},
    "floor": {"n": 2000, "n_pipe": 20000, "payload": 0, "n_spans": 2000, "n_messages": 5000},
}
#: taskq's throughput variants (task kind; metrics on, off, or no middleware at all; metrics
#: and OpenTelemetry tracing on), in groups run back to back: the costs of metrics and of
#: tracing are ratios within a group, seconds apart, which the machine's drift from one
#: minute to the next cannot reach. A cost group goes there and back (A B B A): two pairs
#: per run, each of neighbours, and neither side always first
_COSTS_ASYNC = ["async-nometrics", "async", "async-traced"]
_COSTS_SYNC = ["sync-nometrics", "sync"]
TASKQ_THROUGHPUT = [
    [*_COSTS_ASYNC, *reversed(_COSTS_ASYNC)],
    [*_COSTS_SYNC, *reversed(_COSTS_SYNC)],
    ["async-bare"],
]
#: each peer's worker settings: its defaults, and its best documented settings for short
#: tasks (each cited in ``libs/<name>_app.py`` and in the doc); the recovery test runs the
#: defaults only
PEER_VARIANTS = ["default", "tuned"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- environments


def python_for(lib: str) -> Path:
    return VENV_PY if lib in ("taskq", "floor") else PEERS_PY


def _requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_peers_venv() -> None:
    """Create (or refresh) the peers' virtual environment from the requirements file."""
    stamp = PEERS_VENV / ".requirements.sha256"
    if PEERS_PY.exists() and stamp.exists() and stamp.read_text() == _requirements_hash():
        return
    # the same interpreter as taskq's venv, so both sides run the same Python
    base = getattr(sys, "_base_executable", sys.executable)
    if not PEERS_PY.exists():
        log(f"creating {PEERS_VENV.relative_to(ROOT)} with {base}")
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    log(f"installing {REQUIREMENTS.relative_to(ROOT)} (first use only)")
    pip = [str(PEERS_PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(_requirements_hash())


# -- Redis databases


def redis_url(base: str, lib: str) -> str:
    return f"{base.rstrip('/')}/{DB[lib]}"


def claim_databases(base: str, libs: list[str]) -> None:
    """Refuse to touch a database that holds someone else's keys."""
    clients = [(lib, redis.Redis.from_url(redis_url(base, lib))) for lib in ["floor", *libs]]
    try:
        for lib, c in clients:
            if c.dbsize() and not c.exists(MARKER):
                raise SystemExit(
                    f"Redis database {DB[lib]} (for {lib}) holds {c.dbsize()} keys that are "
                    "not the benchmark's; empty it or point --redis elsewhere"
                )
        for _, c in clients:
            c.set(MARKER, "1")
    finally:
        for _, c in clients:
            c.close()


def release_databases(base: str, libs: list[str]) -> None:
    for lib in ["floor", *libs]:
        c = redis.Redis.from_url(redis_url(base, lib))
        c.flushdb()
        c.close()


# -- running one measurement


class SideError(RuntimeError):
    pass


_current: subprocess.Popen[str] | None = None


def side(
    lib: str,
    scenario: str,
    params: dict[str, Any],
    base: str,
    variant: str = "default",
    timeout: float = 900,
    wrap: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``benchmarks/side.py`` for one library in its environment; its JSON result."""
    global _current
    cmd = [str(python_for(lib)), "-m", "benchmarks.side", lib, scenario]
    cmd += ["--variant", variant, "--params", json.dumps(params)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BENCH_REDIS_URL": redis_url(base, lib),
        "BENCH_PROBE_KEY": f"bench-probe:{lib}",
    }
    proc = subprocess.Popen(
        [*(wrap or []), *cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _current = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the side stops its workers and flushes
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise SideError(
            f"{lib} {scenario}: no result within {timeout:.0f}s\n{err[-3000:]}"
        ) from None
    finally:
        _current = None
    for line in out.splitlines():
        if line.startswith("BENCH-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            return result
    raise SideError(f"{lib} {scenario} {variant} failed (exit {proc.returncode}):\n{err[-3000:]}")


def available(libs: list[str], base: str) -> tuple[list[str], dict[str, Any], list[str]]:
    """The libraries that import in their environment, with their package versions."""
    versions: dict[str, Any] = {}
    ok: list[str] = []
    skipped: list[str] = []
    for lib in ["floor", *libs]:
        if lib != "floor" and lib != "taskq" and not PEERS_PY.exists():
            skipped.append(f"{lib}: {PEERS_VENV.relative_to(ROOT)} does not exist")
            continue
        try:
            versions[lib] = side(lib, "versions", {}, base, timeout=120)
            if lib != "floor":
                ok.append(lib)
        except SideError as exc:
            if lib in ("floor", "taskq"):
                raise
            skipped.append(f"{lib}: does not import ({str(exc).strip().splitlines()[-1]})")
    return ok, versions, skipped


# -- the machine


def machine_info(base: str) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    c = redis.Redis.from_url(f"{base.rstrip('/')}/0")
    info = c.info("server")
    cfg = c.config_get("save") | c.config_get("appendonly")
    c.close()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": os_name,
        "python": platform.python_version(),
        "redis": info.get("redis_version"),
        "redis_persistence": f"save={cfg.get('save')!r}, appendonly={cfg.get('appendonly')}",
        "redis_url": base,
    }


class LoadWatch:
    """Samples what other processes on this machine use while the benchmark runs."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._me = os.getpid()

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _ours(self) -> set[int]:
        try:
            me = psutil.Process(self._me)
            mine = {self._me, *(p.pid for p in me.children(recursive=True))}
        except psutil.Error:
            mine = {self._me}
        # the workers run in sessions of their own: also count whatever runs our code
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info.get("cmdline") or [])
            if "benchmarks." in cmd or "benchmarks/" in cmd or "redis-server" in cmd:
                mine.add(p.pid)
        return mine

    @staticmethod
    def _cpu_ticks() -> tuple[int, int] | None:
        """(steal, all) clock ticks of the machine's CPUs so far, from /proc/stat: steal is
        the time the host ran something else while this VM had work to do."""
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        except OSError:
            return None
        ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
        return ticks[7], sum(ticks)

    def _run(self) -> None:
        prev: dict[int, float] = {}
        ticks = self._cpu_ticks()
        while not self._stop.wait(self.interval):
            now_ticks = self._cpu_ticks()
            steal = None
            if ticks is not None and now_ticks is not None and now_ticks[1] > ticks[1]:
                steal = (now_ticks[0] - ticks[0]) / (now_ticks[1] - ticks[1])
            ticks = now_ticks
            ours = self._ours()
            now: dict[int, float] = {}
            for p in psutil.process_iter(["cpu_times"]):
                t = p.info.get("cpu_times")
                if t is not None and p.pid not in ours:
                    now[p.pid] = t.user + t.system
            other = sum(v - prev.get(pid, v) for pid, v in now.items())
            prev = now
            self.samples.append(
                {
                    "t": time.time(),
                    "loadavg_1m": os.getloadavg()[0],
                    "other_cpu_cores": max(0.0, other / self.interval),
                    **({"steal": steal} if steal is not None else {}),
                }
            )

    def summary(self) -> dict[str, Any]:
        s = self.samples[1:]  # the first interval has no baseline
        if not s:
            return {"samples": 0}
        other = [x["other_cpu_cores"] for x in s]
        steal = sorted(x["steal"] for x in s if "steal" in x)
        stolen = (
            {
                "steal_mean": sum(steal) / len(steal),
                "steal_p90": steal[int(0.9 * (len(steal) - 1))],
                "steal_max": steal[-1],
            }
            if steal
            else {}
        )
        return {
            **stolen,
            "samples": len(s),
            "loadavg_1m_median": statistics.median(x["loadavg_1m"] for x in s),
            "loadavg_1m_max": max(x["loadavg_1m"] for x in s),
            "other_processes_cpu_cores_mean": sum(other) / len(other),
            "other_processes_cpu_cores_max": max(other),
            "shared": sum(other) / len(other) > 0.05 or max(other) > 0.25,
        }


# -- the plan


Entry = tuple[str, str, str]  # scenario, library, variant


def plan(libs: list[str], peer_variants: list[str] | None = None) -> list[list[Entry]]:
    """One run: groups of (scenario, lib, variant), in order; a group runs back to back.
    Scenario by scenario, every library in turn, so that whatever else the machine does
    falls on all of them alike. A peer's worker runs in each of ``peer_variants`` (its
    defaults, and its best documented settings: ``tuned``), back to back in one group; the
    producers are the same in both, so enqueueing is measured once."""
    pv = list(peer_variants or PEER_VARIANTS)
    groups: list[list[Entry]] = [[("floor", "floor", "default")]]
    groups += [[("produce", lib, "default")] for lib in libs]
    peers = [lib for lib in libs if lib != "taskq"]
    variants = [list(g) for g in TASKQ_THROUGHPUT] if "taskq" in libs else []
    # alternate taskq's groups with the peers: A B A B ...
    while variants or peers:
        if variants:
            groups.append([("throughput", "taskq", v) for v in variants.pop(0)])
        if peers:
            peer = peers.pop(0)
            groups.append([("throughput", peer, v) for v in pv])
    groups += [
        [("latency", lib, v) for v in (["default"] if lib == "taskq" else pv)] for lib in libs
    ]
    return groups


def rotate(groups: list[list[Entry]], k: int) -> list[Entry]:
    """The same scenarios in the same order, each scenario's groups rotated by ``k``."""
    out: list[Entry] = []
    for scenario in dict.fromkeys(g[0][0] for g in groups):
        same = [g for g in groups if g[0][0] == scenario]
        j = k % len(same)
        for g in same[j:] + same[:j]:
            # a group's order flips from run to run: neither side of a ratio always goes first
            out += g if k % 2 == 0 else g[::-1]
    return out


def params_for(sizes: dict[str, dict[str, Any]], scenario: str, lib: str) -> dict[str, Any]:
    """The sizes of ``scenario`` for ``lib``: several processing windows are taskq's only."""
    p = sizes[scenario]
    if scenario == "throughput" and lib != "taskq":
        p = {**p, "windows": 1}
    return p


def run_memory(libs: list[str], sizes: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """Redis memory per queued task, one library after another with no worker running
    anywhere (``used_memory`` is the whole server's): raw entries of scenario ``memory``."""
    raw: list[dict[str, Any]] = []
    for lib in libs:
        t = time.time()
        try:
            res = side(lib, "memory", sizes, base, timeout=900)
        except SideError as exc:
            res = {"error": str(exc)}
        raw.append(
            {"run": 1, "scenario": "memory", "lib": lib, "variant": "default", "result": res,
             "wall_s": time.time() - t}
        )  # fmt: skip
        log(f"memory   {lib:<9} {report.brief('memory', res)} ({time.time() - t:.1f}s)")
    return raw


def run_recovery(libs: list[str], sizes: dict[str, Any], base: str) -> dict[str, dict[str, Any]]:
    """Recovery of every library at once: the waits are idle, and each has its own DB."""
    results: dict[str, dict[str, Any]] = {}
    threads: list[threading.Thread] = []

    def one(lib: str) -> None:
        p = dict(sizes)
        if lib != "taskq":
            p["reps"] = 1  # the peers' waits are bounded by minutes, not seconds
        try:
            results[lib] = side(lib, "recovery", p, base, timeout=p["bound"] * p["reps"] + 400)
        except SideError as exc:
            results[lib] = {"error": str(exc)}

    for lib in libs:
        t = threading.Thread(target=one, args=(lib,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run for CI (taskq + redis-py)")
    ap.add_argument("--only", help="comma-separated libraries (taskq is always included)")
    ap.add_argument("--runs", type=int, help="runs of each measurement (default 3, quick 1)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL")
    ap.add_argument("--out", type=Path, help="where to write the JSON results")
    ap.add_argument("--no-profile", action="store_true", help="skip py-spy profiles")
    ap.add_argument("--write-doc", action="store_true", help="write the doc for a partial run")
    ap.add_argument("--keep-logs", action="store_true", help="keep the workers' logs in /tmp")
    ap.add_argument("--no-curves", action="store_true", help="skip the cost curves (curves.py)")
    ap.add_argument(
        "--peer-variants",
        default=",".join(PEER_VARIANTS),
        help="the peers' worker settings to measure (default: default,tuned)",
    )
    args = ap.parse_args()

    sizes = QUICK if args.quick else FULL
    # the interleaved floor of the produce scenario pushes a taskq-sized message; the peers'
    # environments cannot measure one
    from taskq_core.message import Message

    message = Message(id="0" * 32, task="noop_async", queue="default", enqueued_at=1 << 40)
    payload = len(message.encode(compact=True))  # the stored form (the default)
    sizes = {**sizes, "produce": {**sizes["produce"], "payload": payload}}
    runs = args.runs or (1 if args.quick else 3)
    peer_variants = [v.strip() for v in args.peer_variants.split(",") if v.strip()]
    if not peer_variants or set(peer_variants) - set(PEER_VARIANTS):
        ap.error(f"--peer-variants: one or more of {','.join(PEER_VARIANTS)}")
    if args.only:
        wanted = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in LIBS]
        if unknown:
            ap.error(f"unknown libraries {unknown}; known: {','.join(LIBS)}")
    else:
        wanted = ["taskq"] if args.quick else list(LIBS)
    libs = ["taskq", *[x for x in wanted if x != "taskq"]]
    full = not args.quick and not args.only
    mode = "quick" if args.quick else ("full" if full else "partial")
    if args.keep_logs:
        os.environ["BENCH_KEEP_LOGS"] = "1"
    if not args.quick and any(lib in PEERS for lib in libs):
        ensure_peers_venv()

    started = time.time()
    base = args.redis
    libs, versions, skipped = available(libs, base)
    for s in skipped:
        log(f"skipped {s}")
    claim_databases(base, libs)
    machine = machine_info(base)
    log(f"{mode} run of {', '.join(libs)} (+ redis-py floor), {runs} run(s)")
    raw: list[dict[str, Any]] = []
    errors: list[str] = []
    recovery: dict[str, dict[str, Any]] = {}
    rec_sizes = dict(sizes["recovery"])
    try:
        with LoadWatch() as watch:
            entries = plan(libs, peer_variants)
            for r in range(runs):
                for scenario, lib, variant in rotate(entries, r):
                    t = time.time()
                    try:
                        res = side(lib, scenario, params_for(sizes, scenario, lib), base, variant)
                    except SideError as exc:
                        errors.append(f"run {r + 1}: {exc}")
                        log(f"run {r + 1} {scenario} {lib} {variant}: FAILED\n{exc}")
                        continue
                    raw.append(
                        {
                            "run": r + 1,
                            "scenario": scenario,
                            "lib": lib,
                            "variant": variant,
                            "result": res,
                            "wall_s": time.time() - t,
                        }
                    )
                    log(
                        f"run {r + 1}/{runs} {scenario:<10} {lib:<9} {variant:<16} "
                        f"{report.brief(scenario, res)} ({time.time() - t:.1f}s)"
                    )
            log("memory: Redis memory per queued task, one library at a time, no worker")
            memory = run_memory(libs, sizes["memory"], base)
            errors += [
                f"memory {e['lib']}: {e['result']['error']}"
                for e in memory
                if "error" in e["result"]
            ]
            raw += [e for e in memory if "error" not in e["result"]]
            log("recovery: every library at once, a worker SIGKILLed while it holds tasks")
            t = time.time()
            recovery = run_recovery(libs, rec_sizes, base)
            for lib, res in recovery.items():
                log(f"recovery {lib:<9} {report.brief('recovery', res)}")
            log(f"recovery phase took {time.time() - t:.0f}s")
            load = watch.summary()
    finally:
        release_databases(base, libs)

    results = report.summarise(raw, recovery, libs)
    data: dict[str, Any] = {
        "schema": 1,
        "mode": mode,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": 0.0,
        "machine": machine,
        "versions": versions,
        "libraries": report.library_notes(libs),
        "skipped": skipped,
        "runs": runs,
        "sizes": sizes,
        "load": load,
        "metrics": results,
        "errors": errors,
    }
    if full and not args.no_curves:
        # the cost curves (a redis-server of their own), before the goals that read them
        log("cost curves: benchmarks/curves.py")
        curves = [sys.executable, str(ROOT / "benchmarks" / "curves.py")]
        done = subprocess.run(curves, check=False, cwd=ROOT)
        if done.returncode:
            errors.append(f"benchmarks/curves.py exited with {done.returncode}")
    data["ratios"] = report.ratios(data)
    data["targets"] = report.targets(data)
    if full and not args.no_profile:
        from benchmarks import profiles
        from benchmarks.goals import judge

        data["profiles"] = profiles.run_profiles(data, base, side)
        judge(data, base, None)  # and the memory profile of an unmet RSS goal
    data["duration_s"] = time.time() - started
    out = args.out or RESULTS / {"full": "latest.json", "quick": "quick.json"}.get(
        mode, "partial.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    (out.with_suffix(".raw.json")).write_text(json.dumps(raw, indent=1) + "\n")
    print(report.console(data))
    if full or args.write_doc:
        chart = ROOT / "docs" / "benchmarks-ratios.png"
        made = report.make_chart(out, chart)
        report.write_doc(data, ROOT / "docs" / "benchmarks.md", chart if made else None)
        log(
            f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}, "
            "docs/benchmarks.md" + (", docs/benchmarks-ratios.png" if made else "")
        )
    else:
        log(f"wrote {out}")
    log(f"took {data['duration_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        if _current is not None and _current.poll() is None:
            _current.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                _current.wait(30)
        sys.exit(130)

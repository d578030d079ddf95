#!/usr/bin/env python3
"""How fast the autoscaler reacts: from a burst of tasks to the first scale-up decision,
and to the new worker processes taking tasks.

    python benchmarks/autoscale.py                    # both profiles, 3 runs each (~2 min)
    python benchmarks/autoscale.py --profile fast --runs 1

Each run starts the real supervisor (``taskq worker --processes auto --min-processes 1
--max-processes 4 --concurrency 4``) in a subprocess, waits until its one process is
ready, enqueues a burst of 800 sync tasks of 0.25 s (200 s of work) in one round trip,
and watches from outside, as an operator would:

* the first published decision ``up`` (contract 2: the ``at`` of the record that carries
  it, polled every 20 ms);
* the first task started by a process that did not exist before the burst (each task
  records its pid and start time in Redis);
* the most processes the autoscaler asked for during the burst, and when it asked.

Two profiles: ``default`` (the shipped settings: a reading every 2 s, 2 readings to agree,
10 s between scale-ups) and ``fast`` (a reading every 0.5 s, 1 reading, 1 s cooldown).
Times are medians with min-max over ``--runs``; the table is printed and written to
``benchmarks/results/autoscale.json``. Keys live under a unique prefix, deleted after.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
if __name__ == "__main__":
    # taskq, redis-py and psutil come from the project's venv, as for benchmarks/run.py
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PY.exists():
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from taskq_core import TaskQueue  # noqa: E402

# -- the application the supervisor and its worker processes load (--app
# benchmarks.autoscale:tq); its settings come from the environment the run sets

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("BENCH_AUTOSCALE_PREFIX", "bench-autoscale")
tq = TaskQueue(
    URL,
    key_prefix=PREFIX,
    supervisor=json.loads(os.environ.get("BENCH_AUTOSCALE_SUPERVISOR", "{}")),
    monitoring={"task_logs": False},
)
_r = redis.Redis.from_url(URL)


@tq.task(name="bench.autoscale.work")
def work(seconds: float) -> None:
    """A slow task that notes which process started it, and when."""
    _r.rpush(f"{PREFIX}:bench:starts", f"{os.getpid()}:{time.time():.4f}")
    time.sleep(seconds)


# -- the benchmark


PROFILES: dict[str, dict[str, float | int]] = {
    "default": {},
    "fast": {"interval": 0.5, "readings_up": 1, "cooldown_up": 1.0},
}
BURST = 800
TASK_SECONDS = 0.25
MAX_PROCESSES = 4
CONCURRENCY = 4


def _main() -> int:
    import argparse
    import signal
    import statistics
    import subprocess

    root = ROOT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default=URL, help="Redis URL (keys under a unique prefix)")
    parser.add_argument("--out", default=str(root / "benchmarks" / "results" / "autoscale.json"))
    args = parser.parse_args()

    from taskq_core.observability.heartbeat import read_workers
    from taskq_core.supervisor.publish import read_autoscaler

    def one_run(profile: str, n: int) -> dict[str, float | None]:
        prefix = f"bench-autoscale-{os.urandom(4).hex()}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
            "BENCH_REDIS_URL": args.redis,
            "BENCH_AUTOSCALE_PREFIX": prefix,
            "BENCH_AUTOSCALE_SUPERVISOR": json.dumps(PROFILES[profile]),
        }
        client = redis.Redis.from_url(args.redis)
        app = TaskQueue(args.redis, key_prefix=prefix)
        task = app.task(name=work.name)(work.fn)  # the producer's side of the task
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskq_core.cli",
                "worker",
                "--app",
                "benchmarks.autoscale:tq",
                "--processes",
                "auto",
                "--min-processes",
                "1",
                "--max-processes",
                str(MAX_PROCESSES),
                "--concurrency",
                str(CONCURRENCY),
                "--log-level",
                "WARNING",
            ],
            cwd=root,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while len(workers := read_workers(app)) < 1:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the supervisor's first process did not start")
                time.sleep(0.05)
            before = {int(w["pid"]) for w in workers}
            burst_at = time.time()
            app.enqueue_many([task.call(TASK_SECONDS) for _ in range(BURST)])
            decision = new_proc = peak_at = None
            peak, seen = 1, 0
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                for rec in read_autoscaler(app):
                    if rec.get("decision") != "up":
                        continue
                    decided = rec["at"] / 1000 - burst_at
                    if decision is None:
                        decision = decided
                    if rec["target"] > peak:
                        peak, peak_at = rec["target"], decided
                starts = client.lrange(f"{prefix}:bench:starts", seen, -1)
                seen += len(starts)
                for raw in starts:
                    assert isinstance(raw, bytes)  # a client without decode_responses
                    pid, started = raw.decode().split(":")
                    if new_proc is None and int(pid) not in before:
                        new_proc = float(started) - burst_at
                if seen >= BURST:
                    break  # every task has started: the burst no longer calls for more
                time.sleep(0.02)
            result: dict[str, float | None] = {
                "first_up_decision": _round(decision),
                "new_process_taking": _round(new_proc),
                "peak_decision": _round(peak_at),
                "peak_processes": float(peak),
            }
            print(f"  {profile} run {n}: " + ", ".join(_fmt(k, v) for k, v in result.items()))
            return result
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            app.close()
            client.close()

    profiles = list(PROFILES) if args.profile == "both" else [args.profile]
    report: dict[str, object] = {
        "benchmark": "autoscale",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "workload": {
            "burst": BURST,
            "task_seconds": TASK_SECONDS,
            "min_processes": 1,
            "max_processes": MAX_PROCESSES,
            "concurrency": CONCURRENCY,
        },
        "profiles": {},
    }
    rows: list[tuple[str, str, list[float]]] = []
    for profile in profiles:
        print(f"profile {profile} ({_describe(profile)}):")
        runs = [one_run(profile, n + 1) for n in range(args.runs)]
        summary: dict[str, object] = {}
        for key in ("first_up_decision", "new_process_taking", "peak_decision", "peak_processes"):
            values = [v for r in runs if (v := r[key]) is not None]
            summary[key] = {
                "median": round(statistics.median(values), 3) if values else None,
                "min": round(min(values), 3) if values else None,
                "max": round(max(values), 3) if values else None,
                "missing": len(runs) - len(values),
            }
            rows.append((profile, key, [float(v) for v in values]))
        report["profiles"][profile] = {  # type: ignore[index]
            "settings": _settings(profile),
            "runs": runs,
            "summary": summary,
        }

    labels = {
        "first_up_decision": "burst -> first scale-up decision",
        "new_process_taking": "burst -> a new process takes tasks",
        "peak_decision": "burst -> decision for the peak count",
        "peak_processes": f"peak processes (max {MAX_PROCESSES})",
    }
    print()
    print(f"{'profile':<9} {'measure':<36} {'median':>8} {'min-max':>15}  runs")
    for profile, key, values in rows:
        unit = "" if key == "peak_processes" else " s"
        if values:
            med = f"{statistics.median(values):.2f}{unit}"
            span = f"{min(values):.2f}-{max(values):.2f}{unit}"
        else:
            med, span = "n/a", "n/a"
        print(f"{profile:<9} {labels[key]:<36} {med:>8} {span:>15}  {len(values)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


def _settings(profile: str) -> dict[str, object]:
    from taskq_core.settings import SupervisorSettings

    s = SupervisorSettings(**PROFILES[profile])
    return {k: getattr(s, k) for k in ("interval", "readings_up", "cooldown_up", "step_up")}


def _describe(profile: str) -> str:
    s = _settings(profile)
    return (
        f"a reading every {s['interval']}s, {s['readings_up']} reading(s) to agree, "
        f"{s['cooldown_up']}s between scale-ups"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return f"{key} n/a"
    return f"{key} {value:.0f}" if key == "peak_processes" else f"{key} {value:.2f}s"


if __name__ == "__main__":
    raise SystemExit(_main())

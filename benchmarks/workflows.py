#!/usr/bin/env python3
"""Workflows, taskq side by side with Celery's canvas on the same Redis.

    python benchmarks/workflows.py            # chord 1,000, chain 1,000, group 10,000; 3 runs
    python benchmarks/workflows.py --quick    # chord 100, chain 100, group 1,000; 1 run (CI)

For taskq: one ``taskq worker`` (one process, its default concurrency: the setting this
machine's throughput benchmark found best for short tasks), the producer in this process.

* **chord**: N no-op members and a callback given their N results: seconds from before the
  enqueue to the callback's result (``WorkflowHandle.result``, woken by the broker's
  announcement, no polling).
* **chain**: N steps, each the previous result plus one: seconds from before the enqueue
  to the last step's result (and that result is N).
* **group**: N no-op members: the enqueue's seconds (one round trip), and to completion.
* **added cost of a step**: the same N no-ops enqueued as plain tasks (one bulk enqueue,
  then waiting for the last), against the group: the difference per task, beside one Redis
  round trip (PING) measured here.

Celery's side is ``benchmarks/workflows_celery.py``, run by the peers' virtualenv
(``benchmarks/.venv-peers``) when it exists, on its own Redis database; its figures are read
from its JSON. Results: ``benchmarks/results/workflows.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = ROOT / "benchmarks" / ".venv-peers" / "bin" / "python"
if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PY.exists():
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402 - after the venv re-exec above

RESULTS = ROOT / "benchmarks" / "results"
APP = """
import os

from taskq_core import TaskQueue

tq = TaskQueue.from_config()


if os.environ.get("BENCH_WF_SYNC") == "1":  # plain functions, run in the worker's threads

    @tq.task(name="wf.noop")
    def noop():
        return 1

    @tq.task(name="wf.step")
    def step(x):
        return x + 1

    @tq.task(name="wf.collect")
    def collect(xs):
        return len(xs)

else:  # coroutines, run on the worker's event loop (taskq's native kind of task)

    @tq.task(name="wf.noop")
    async def noop():
        return 1

    @tq.task(name="wf.step")
    async def step(x):
        return x + 1

    @tq.task(name="wf.collect")
    async def collect(xs):
        return len(xs)
"""


class Worker:
    """One ``taskq worker`` process on the benchmark's prefix."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        args = [sys.executable, "-m", "taskq_core.cli", "worker", "--app", "wfbench:tq"]
        self.proc = subprocess.Popen([*args, "--log-level", "WARNING"], env=env, cwd=cwd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 4)


def _rtt(url: str, n: int = 2000) -> float:
    """Seconds of one PING round trip from this process (median of ``n``)."""
    client = redis.Redis.from_url(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - t0)
    client.close()
    return statistics.median(samples)


def measure_taskq(url: str, chord_n: int, chain_n: int, group_n: int, runs: int) -> dict[str, Any]:
    from taskq_core import chain, chord, group

    prefix = f"bench-wf-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="taskq-wf-"))
    (work / "wfbench.py").write_text(APP)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")},
        "TASKQ_BROKER_URL": url,
        "TASKQ_KEY_PREFIX": prefix,
        "PYTHONPATH": f"{work}{os.pathsep}{ROOT}",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("TASKQ_")})
    sys.path.insert(0, str(work))
    import wfbench  # type: ignore[import-not-found]

    tq = wfbench.tq
    noop, step, collect = wfbench.noop, wfbench.step, wfbench.collect
    client = redis.Redis.from_url(url)
    worker = Worker(env, work)
    out: dict[str, Any] = {"chord": [], "chain": [], "group_enqueue": [], "group": [], "plain": []}
    try:
        # warm: the worker up, the scripts loaded
        chain(noop.call(), noop.si()).enqueue().result(timeout=60)
        for _ in range(runs):
            t0 = time.perf_counter()
            h = chord([noop.call() for _ in range(chord_n)], collect.s()).enqueue()
            assert h.result(timeout=600) == chord_n
            out["chord"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            h = chain(step.call(0), *(step.s() for _ in range(chain_n - 1))).enqueue()
            assert h.result(timeout=600) == chain_n
            out["chain"].append(time.perf_counter() - t0)

            members = [noop.call() for _ in range(group_n)]
            t0 = time.perf_counter()
            h = group(members).enqueue()
            out["group_enqueue"].append(time.perf_counter() - t0)
            assert len(h.result(timeout=600)) == group_n
            out["group"].append(time.perf_counter() - t0)

            sigs = [noop.call() for _ in range(group_n)]
            t0 = time.perf_counter()
            handles = tq.enqueue_many(sigs)
            handles[-1].result(timeout=600)
            while tq.broker.queue_info(["default"])[0].ready or any(
                i.leased for i in tq.broker.queue_info(["default"])
            ):
                time.sleep(0.001)
            out["plain"].append(time.perf_counter() - t0)
    finally:
        worker.stop()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()
    rtt = _rtt(url)
    group_per = _median(out["group"]) / group_n
    plain_per = _median(out["plain"]) / group_n
    return {
        "library": "taskq",
        "worker": "taskq worker (one process, default concurrency), tasks "
        + (
            "plain functions (BENCH_WF_SYNC=1)"
            if os.environ.get("BENCH_WF_SYNC") == "1"
            else "async def (BENCH_WF_SYNC=1: plain functions)"
        ),
        "chord": {"n": chord_n, "seconds": _median(out["chord"]), "runs": out["chord"]},
        "chain": {"n": chain_n, "seconds": _median(out["chain"]), "runs": out["chain"]},
        "group": {
            "n": group_n,
            "enqueue_seconds": _median(out["group_enqueue"]),
            "complete_seconds": _median(out["group"]),
            "runs": list(zip(out["group_enqueue"], out["group"], strict=True)),
        },
        "plain": {"n": group_n, "complete_seconds": _median(out["plain"]), "runs": out["plain"]},
        "step_cost_us": {
            "group_member": round(group_per * 1e6, 1),
            "plain_task": round(plain_per * 1e6, 1),
            "added": round((group_per - plain_per) * 1e6, 1),
            "redis_round_trip": round(rtt * 1e6, 1),
        },
    }


def measure_celery(args: argparse.Namespace) -> dict[str, Any] | None:
    if not PEERS_PY.exists():
        return None
    extra = ["--quick"] if args.quick else []
    extra += ["--chord", str(args.chord), "--chain", str(args.chain), "--group", str(args.group)]
    extra += ["--runs", str(args.runs)]
    done = subprocess.run(
        [str(PEERS_PY), str(ROOT / "benchmarks" / "workflows_celery.py"), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        return {"library": "celery", "error": done.stderr[-2000:]}
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def table(taskq: dict[str, Any], celery: dict[str, Any] | None) -> str:
    def cell(d: dict[str, Any] | None, *path: str) -> str:
        node: Any = d
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return f"{node:.3f} s" if isinstance(node, (int, float)) else "—"

    def ratio(*path: str) -> str:
        a: Any = taskq
        b: Any = celery
        for p in path:
            a = a.get(p) if isinstance(a, dict) else None
            b = b.get(p) if isinstance(b, dict) else None
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
            return f"{b / a:.1f}×"
        return "—"

    rows = [
        ("chord", ("chord", "seconds"), f"chord of {taskq['chord']['n']} no-ops, to the callback"),
        ("chain", ("chain", "seconds"), f"chain of {taskq['chain']['n']} steps, to the last"),
        ("group", ("group", "enqueue_seconds"), f"group of {taskq['group']['n']}: enqueue"),
        ("group", ("group", "complete_seconds"), f"group of {taskq['group']['n']}: to the last"),
    ]
    lines = ["| | taskq | Celery | taskq faster by |", "|---|---|---|---|"]
    for _, path, label in rows:
        lines.append(f"| {label} | {cell(taskq, *path)} | {cell(celery, *path)} | {ratio(*path)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    ap.add_argument("--chord", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=1000)
    ap.add_argument("--group", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run (CI's smoke run)")
    ap.add_argument("--no-celery", action="store_true", help="taskq only")
    ap.add_argument("--out", type=Path, default=RESULTS / "workflows.json")
    args = ap.parse_args()
    if args.quick:
        args.chord, args.chain, args.group, args.runs = 100, 100, 1000, 1
    taskq = measure_taskq(args.url, args.chord, args.chain, args.group, args.runs)
    celery = None if args.no_celery else measure_celery(args)
    result = {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "taskq": taskq, "celery": celery}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(taskq, celery))
    print(json.dumps(taskq["step_cost_us"]))


if __name__ == "__main__":
    main()

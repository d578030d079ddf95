#!/usr/bin/env python3
"""Flow control under real worker processes: a rate limit held cluster-wide, the CPU of the
workers while they are throttled, a concurrency cap never exceeded, and how soon a slot
held by a SIGKILLed process is handed over.

    python benchmarks/flow.py              # 500/s for 30 s, cap 5; about 50 s
    python benchmarks/flow.py --quick      # 200/s for 4 s (CI's smoke run)

Three ``taskq worker`` processes (concurrency 8) on one Redis, started as an operator
would. Each task records its start time (and the running count of its key) in Redis.

* **rate**: a backlog of ``rate_limit="R/s"`` tasks larger than the run; the achieved rate
  is counted over ``--seconds`` after the first second (the burst a quiet bucket allows is
  left out), as the most starts in any 1 s window, and as the CPU the three processes used
  in that time (user + system, from psutil), against the one core a busy loop would take.
* **cap**: ``max_concurrency=N`` tasks of 20 ms: the most running at once (kept by the
  tasks themselves, atomically in Redis) against N.
* **handover**: ``max_concurrency=1`` per key: the process running a key's long task is
  SIGKILLed; the time from the kill to the start of that key's next task, against the lease
  (2 s here).

Results: ``benchmarks/results/flow.json`` and a markdown table. Keys live under a unique
prefix, deleted after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PY.exists():
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402 - after the venv re-exec above
import redis  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LEASE = 2.0
APP = """
import os, time
import redis
from taskq_core import TaskQueue

tq = TaskQueue.from_config()
r = redis.Redis.from_url(os.environ["TASKQ_BROKER_URL"])
P = os.environ["TASKQ_KEY_PREFIX"] + ":probe:"
RATE = os.environ.get("FLOW_RATE", "500/s")
_RUN = r.register_script(
    "local n = redis.call('INCR', KEYS[1]) "
    "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end "
    "return n"
)


def _start(key):
    r.rpush(P + "starts:" + key, repr(time.time()))
    _RUN(keys=[P + "running:" + key, P + "max:" + key])


def _end(key):
    r.decr(P + "running:" + key)


@tq.task(name="flow.rate", rate_limit=RATE)
def rate(i):
    _start("rate")
    _end("rate")


@tq.task(name="flow.cap", max_concurrency=int(os.environ.get("FLOW_CAP", "5")))
def cap(i):
    _start("cap")
    time.sleep(0.02)
    _end("cap")


@tq.task(name="flow.one", max_concurrency=1, concurrency_key=lambda key, seconds: key)
def one(key, seconds):
    _start(key)
    time.sleep(seconds)
    _end(key)
"""


class Workers:
    def __init__(self, url: str, env: dict[str, str], n: int = 3) -> None:
        self.url = url
        self.env = env
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "taskq_core.cli", "worker", "--app", "flowapp:tq",
                 "--concurrency", "8", "--log-level", "WARNING"],
                env=env, cwd=env["FLOW_DIR"],
            )
            for _ in range(n)
        ]  # fmt: skip
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    def cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.ps if p.is_running())

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _app(env: dict[str, str]) -> Any:
    """The app module in this process, as the producer (it declares the same limits)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("TASKQ_", "FLOW_"))})
    sys.path.insert(0, env["FLOW_DIR"])
    import flowapp  # type: ignore[import-not-found]

    return flowapp


def run(url: str, rate: int, seconds: float, cap: int) -> dict[str, Any]:
    prefix = f"bench-flow-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="taskq-flow-"))
    (work / "flowapp.py").write_text(APP)
    env = {
        **os.environ,
        "TASKQ_BROKER_URL": url,
        "TASKQ_KEY_PREFIX": prefix,
        "TASKQ_WORKER__LEASE_SECONDS": str(LEASE),
        "TASKQ_WORKER__RENEW_INTERVAL": "0.5",
        "TASKQ_WORKER__GRACE_PERIOD": "1",
        "FLOW_RATE": f"{rate}/s",
        "FLOW_CAP": str(cap),
        "FLOW_DIR": str(work),
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
    }
    r = redis.Redis.from_url(url)
    probe = prefix + ":probe:"
    app = _app(env)
    tq = app.tq
    out: dict[str, Any] = {"rate_limit": rate, "seconds": seconds, "cap_limit": cap, "lease": LEASE}
    try:
        # -- rate: a backlog longer than the run
        tq.enqueue_many([app.rate.call(i) for i in range(int(rate * (seconds + 3)))])
        workers = Workers(url, env)
        try:
            while r.llen(probe + "starts:rate") == 0:
                time.sleep(0.01)
            time.sleep(1.0)  # past the burst a quiet bucket allows
            t0, cpu0 = time.time(), workers.cpu()
            time.sleep(seconds)
            t1, cpu1 = time.time(), workers.cpu()
            starts = sorted(float(x) for x in r.lrange(probe + "starts:rate", 0, -1))
            inside = [t for t in starts if t0 <= t < t1]
            achieved = len(inside) / (t1 - t0)
            most, j = 0, 0
            for i, t in enumerate(inside):
                while inside[j] < t - 1.0:
                    j += 1
                most = max(most, i - j + 1)
            out["rate"] = {
                "achieved_per_s": round(achieved, 2),
                "error_pct": round((achieved / rate - 1) * 100, 2),
                "most_in_1s": most,
                "workers_cpu_pct_of_one_core": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
                "cpu_ms_per_task": round((cpu1 - cpu0) * 1000 / max(1, len(inside)), 3),
            }
        finally:
            workers.stop()
        # what is left of the backlog goes: the next measures start from an empty queue
        for key in r.scan_iter(f"{prefix}:{{default}}:*"):
            r.delete(key)
        # -- cap
        n = 300
        tq.enqueue_many([app.cap.call(i) for i in range(n)])
        workers = Workers(url, env)
        try:
            deadline = time.monotonic() + 120
            while r.llen(probe + "starts:cap") < n and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)
            out["cap"] = {
                "tasks": int(r.llen(probe + "starts:cap")),
                "most_at_once": int(r.get(probe + "max:cap") or 0),
            }
            # -- handover: the holder of key k's slot is SIGKILLed
            app.one.enqueue("k", 60.0)
            while r.llen(probe + "starts:k") == 0:
                time.sleep(0.01)
            app.one.enqueue("k", 0.01)
            time.sleep(LEASE)  # its renewals keep the lease: the next one waits
            waiting = r.llen(probe + "starts:k")
            holder = None
            from taskq_core.observability.heartbeat import read_workers

            while holder is None:
                busy = {w["pid"] for w in read_workers(tq) if w.get("busy")}
                holder = next((p for p in workers.procs if p.pid in busy), None)
                time.sleep(0.05)
            killed = time.time()
            holder.send_signal(signal.SIGKILL)
            while r.llen(probe + "starts:k") < 2 and time.time() - killed < 30:
                time.sleep(0.005)
            nxt = float(r.lindex(probe + "starts:k", 1) or 0)
            out["handover"] = {
                "started_while_held": int(waiting) - 1,
                "seconds_after_kill": round(nxt - killed, 3) if nxt else None,
            }
        finally:
            workers.stop()
    finally:
        tq.close()
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)
    return out


def table(result: dict[str, Any]) -> str:
    rate, cap, hand = result["rate"], result["cap"], result["handover"]
    return "\n".join(
        [
            "| measure | value |",
            "|---|---|",
            f"| rate limit | {result['rate_limit']}/s over {result['seconds']:g} s, 3 processes |",
            f"| achieved | {rate['achieved_per_s']}/s ({rate['error_pct']:+.2f} %) |",
            f"| most starts in any 1 s | {rate['most_in_1s']} |",
            f"| worker CPU while throttled | {rate['workers_cpu_pct_of_one_core']} % of one "
            f"core for the 3 processes ({rate['cpu_ms_per_task']} ms per task) |",
            f"| concurrency cap | {result['cap_limit']}: most at once {cap['most_at_once']} "
            f"({cap['tasks']} tasks, 3 processes x 8 slots) |",
            f"| slot hand-over after SIGKILL | {hand['seconds_after_kill']} s (lease "
            f"{result['lease']:g} s); started while held: {hand['started_while_held']} |",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--cap", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200/s for 4 s (a smoke run)")
    ap.add_argument("--output", default=str(RESULTS / "flow.json"))
    args = ap.parse_args()
    if args.quick:
        args.rate, args.seconds = 200, 4.0
    result = run(args.redis, args.rate, args.seconds, args.cap)
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

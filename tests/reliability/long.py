"""The long fault run (not part of CI): many tasks through a few worker processes while a
random one is SIGKILLed every few seconds and restarted, then every task classified.

    .venv/bin/python -m tests.reliability.long --tasks 50000
    .venv/bin/python -m tests.reliability.long --tasks 50000 --supervisor --restart-backoff-max 1
    .venv/bin/python -m tests.reliability.long --tasks 50000 --crashers 3

``--crashers N`` spreads N tasks among the others that kill their own process on every
delivery (``--crash-how``): each must end dead-lettered, and the processes they kill count as
faults that explain the runs they cut.

Writes ``benchmarks/results/reliability.json`` and regenerates the results section of
``docs/reliability.md`` (between its ``long-run`` markers). Exits 1 if a task was lost, ran
without being enqueued, or ran twice with no kill or crash to explain it, or if a crasher
was not dead-lettered.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .harness import ROOT, Report, Rig, child_pids, read_journal

BEGIN, END = "<!-- long-run:begin -->", "<!-- long-run:end -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.long", description=__doc__)
    p.add_argument("--tasks", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=3, help="worker processes")
    p.add_argument("--concurrency", type=int, default=8, help="tasks at once per process")
    p.add_argument("--ms", type=float, nargs=2, default=(30.0, 90.0), metavar=("MIN", "MAX"))
    p.add_argument(
        "--every", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN", "MAX"),
        help="seconds between kills (uniform)",
    )  # fmt: skip
    p.add_argument("--lease", type=float, default=3.0)
    p.add_argument("--renew", type=float, default=1.0)
    p.add_argument(
        "--supervisor", action="store_true",
        help="one `taskq worker --processes N` whose children are killed (it restarts them)",
    )  # fmt: skip
    p.add_argument(
        "--restart-backoff-max", type=float, metavar="S",
        help="the supervisor's supervisor.restart_backoff_max (default 60 s: a kill every few"
        " seconds counts as a crash loop, and restarts soon wait a minute)",
    )  # fmt: skip
    p.add_argument(
        "--crashers", type=int, default=0, metavar="N",
        help="tasks that kill their own process on every delivery, spread among the others",
    )  # fmt: skip
    p.add_argument(
        "--crash-how", choices=("kill", "segv", "exit"), default="kill",
        help="how a crasher kills its process: SIGKILL, SIGSEGV or os._exit(1)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800.0, help="give up after this long")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reliability.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs/reliability.md")
    p.add_argument("--workdir", type=Path, help="keep the journal and logs here")
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    try:
        redis_version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[2]
    except (OSError, subprocess.CalledProcessError, IndexError):
        redis_version = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version.removeprefix("v="),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace, workdir: Path) -> tuple[Report, dict[str, Any]]:
    env = {}
    if args.restart_backoff_max is not None:
        env["TASKQ_TEST_RESTART_BACKOFF_MAX"] = str(args.restart_backoff_max)
    rig = Rig(workdir, lease=args.lease, renew=args.renew, env=env)
    try:
        if args.supervisor:
            sup = rig.start_worker(args.concurrency, processes=args.workers)

            def pids() -> list[int]:
                return child_pids(sup.pid)

            def restart() -> None:
                return None
        else:
            # a worker that dies (a kill, a crasher) is replaced within 0.1 s
            rig.keep_workers(args.workers, args.concurrency)

            def pids() -> list[int]:
                return [p.pid for p in rig.live_workers()]

            def restart() -> None:
                return None

        t0 = time.monotonic()
        parts = args.crashers + 1
        for k in range(parts):  # the crashers evenly spread among the tasks
            n = args.tasks * (k + 1) // parts - args.tasks * k // parts
            rig.enqueue(n, tuple(args.ms), seed=args.seed + k)
            if k < args.crashers:
                rig.enqueue_crasher(args.crash_how)
        enqueue_s = time.monotonic() - t0
        total = len(rig.enqueued)
        last_kill_at = 0.95 * total  # the tail runs undisturbed, so the run ends
        kills = rig.storm(
            tuple(args.every),
            until=lambda: len(rig.finished_ids()) >= last_kill_at,
            restart=restart,
            pids=pids,
            seed=args.seed,
            timeout=args.timeout,
        )
        done = rig.wait_done(args.timeout, quiet=4 * (args.lease + args.renew) + 10, poll=1.0)
        elapsed = time.monotonic() - t0
        crashers = crasher_outcomes(rig, wait=4 * (args.lease + args.renew) + 10)
        report = rig.report()
        last: dict[int, float] = {}
        for _, _, pid, t in read_journal(rig.journal):
            last[pid] = t
        extra = {
            # every fault, with how long its process had been silent (no journal line) when
            # it was killed: a process starved of CPU holds finished tasks unsettled
            "fault_log": [
                {
                    "kind": f.kind,
                    "pid": f.pid,
                    "t": round(f.t, 3),
                    "silent_before_s": round(f.t - last[f.pid], 3) if f.pid in last else None,
                }
                for f in report.faults
            ],
            "kills": kills,
            "crashers": crashers,
            "all_finished": done,
            "enqueue_s": round(enqueue_s, 2),
            "run_s": round(elapsed, 1),
            "queue_stats": rig.stats(),
        }
        return report, extra
    finally:
        rig.close()


def crasher_outcomes(rig: Rig, wait: float) -> list[dict[str, Any]]:
    """Each crasher's end: its state (``dead`` expected, waiting up to ``wait`` seconds for
    it) and, once dead-lettered, the reason given."""
    deadline = time.monotonic() + wait
    out = []
    for label, task_id in rig.crashers.items():
        rec = rig.tq.broker.get("default", task_id)
        while (rec is None or rec.state != "dead") and time.monotonic() < deadline:
            time.sleep(0.5)
            rec = rig.tq.broker.get("default", task_id)
        error = None
        if rec is not None and rec.record:
            error = json.loads(rec.record).get("error")
        out.append({"label": label, "state": rec.state if rec else None, "error": error})
    return out


def results(args: argparse.Namespace, report: Report, extra: dict[str, Any]) -> dict[str, Any]:
    argv = ["--tasks", str(args.tasks)] if len(sys.argv) <= 1 else sys.argv[1:]
    summary = report.summary()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": ".venv/bin/python -m tests.reliability.long " + shlex.join(argv),
        "settings": {
            "tasks": args.tasks,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "task_ms": list(args.ms),
            "kill_every_s": list(args.every),
            "lease_s": args.lease,
            "renew_s": args.renew,
            "supervisor": args.supervisor,
            "restart_backoff_max_s": args.restart_backoff_max,
            "crashers": args.crashers,
            "crash_how": args.crash_how,
        },
        **extra,
        "summary": summary,
        "lost_ids": report.lost[:50],
        "unexpected_ids": report.unexpected[:50],
        "unexplained_duplicates": {i: report.duplicated[i] for i in report.unexplained[:50]},
        "recoveries": [
            {
                "kind": r.kind,
                "in_flight": r.tasks_in_flight,
                "in_flight_done_s": None if r.in_flight is None else round(r.in_flight, 3),
                "next_finish_s": None if r.next_finish is None else round(r.next_finish, 3),
                "chained": r.chained,
            }
            for r in report.recoveries
        ],
        "machine": machine(),
    }


def markdown(res: dict[str, Any]) -> str:
    s, st, m = res["summary"], res["settings"], res["machine"]
    rin, rnext = s["recovery_in_flight_s"], s["recovery_next_finish_s"]
    chain = s["recovery_in_flight_chained_s"]
    bound = st["lease_s"] + st["renew_s"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["extra_runs_by_reason"].items()))
    where = "children of one supervisor" if st["supervisor"] else "top-level worker processes"
    crash = ""
    if st.get("crashers"):
        dead = sum(c["state"] == "dead" for c in res["crashers"])
        crash = (
            f"; {st['crashers']} crasher tasks ({st['crash_how']}), {s['faults'].get('crash', 0)}"
            f" crashes, {dead} of {st['crashers']} crashers dead-lettered"
        )
    lines = [
        BEGIN,
        "",
        f"Last run: {res['date']}, `{res['command']}`",
        "",
        "| | |",
        "|---|---|",
        f"| tasks | {s['tasks']:,} ({st['task_ms'][0]:g}-{st['task_ms'][1]:g} ms each) |",
        f"| processes | {st['workers']} {where} x concurrency {st['concurrency']}, "
        f"lease {st['lease_s']:g} s, renewal {st['renew_s']:g} s |",
        f"| faults injected | {res['kills']} SIGKILLs of a random worker process, one every "
        f"{st['kill_every_s'][0]:g}-{st['kill_every_s'][1]:g} s{crash} |",
        f"| run time | {res['run_s']} s (enqueue {res['enqueue_s']} s) |",
        f"| ok (ran once) | {s['ok']:,} |",
        f"| **lost** | **{s['lost']}** |",
        f"| duplicated (ran more than once) | {s['duplicated']} |",
        f"| of which explained by a kill or a crash | {s['duplicates_explained_by_death']} |",
        f"| **unexplained duplicates** | **{s['duplicates_unexplained']}** |",
        f"| extra runs by reason | {reasons or 'none'} |",
        f"| unexpected (ran, never enqueued) | {s['unexpected']} |",
        f"| recovery: killed process's tasks done elsewhere | median {rin.get('median', '-')} s,"
        f" max {rin.get('max', '-')} s over {rin['n']} kills (bound: lease + renewal ="
        f" {bound:g} s) |",
        f"| the same when a later kill cut a re-delivered task again (chained) |"
        f" kills: {chain['n']}, max {chain.get('max', '-')} s |",
        f"| recovery: next finish anywhere | median {rnext.get('median', '-')} s,"
        f" max {rnext.get('max', '-')} s |",
        f"| machine | {m['cpu']}, {m['cpus']} CPUs shared, {m['system']}, Python {m['python']},"
        f" redis-server {m['redis_server']}; load average at the end {m['load_avg_at_end']} |",
        "",
        "Raw figures: `benchmarks/results/reliability.json`.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_doc(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} section to replace")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + section + tail)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # stopped by SIGTERM or SIGINT (even started in the background, where SIGINT is
    # ignored), the run still stops its redis-server and workers on the way out
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report, extra = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="taskq-long-") as tmp:
            report, extra = run(args, Path(tmp))
    res = results(args, report, extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    write_doc(args.doc, markdown(res))
    print(json.dumps(res["summary"], indent=2))
    bad = res["summary"]["lost"] or res["summary"]["unexpected"] or report.unexplained
    bad = bad or any(c["state"] != "dead" for c in res["crashers"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

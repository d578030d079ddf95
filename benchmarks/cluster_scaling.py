#!/usr/bin/env python3
"""What one task costs each Redis node, on a single Redis and on a Redis Cluster of 3
masters (no replicas), and the throughput that projects to at 3, 10 and 30 masters.

    python benchmarks/cluster_scaling.py            # 20,000 tasks, 3 runs of each set-up
    python benchmarks/cluster_scaling.py --quick    # 2,000 tasks, one run each (CI's smoke run)

The workload: N no-op tasks (``async def``, taskq's native kind) spread evenly over 12
queues ``s0`` .. ``s11``, enqueued by this process in ``enqueue_many`` batches of 100 (one
queue per batch, the queues in turn); then one ``taskq worker --burst`` process serving
all 12 queues (concurrency 32, the default middleware: metrics, heartbeats) runs them all
and exits. A queue's keys carry its name as a hash tag, so a queue lives on one master;
which master each queue lands on is printed (CRC16 of the name, not chosen).

Around each phase (enqueue, work), every node's ``INFO cpu`` (the main thread's CPU, the
one that runs commands, when the server reports it) and ``INFO stats`` are read by a plain
client of that node: commands (those a Lua script runs count too), socket reads (one per
request or pipeline a client sends, more for one over 16 KB), network bytes in and out;
and ``DBSIZE`` before the work phase. The CPU a node burns while idle (its cron, the
cluster bus), measured over a quiet second before each run, is taken off (``net``; ``raw``
is kept too). The readings' own commands are taken off the counts; their bytes (a few KB a
phase, under 0.2 byte a task) are not. Client side: wall time, tasks/s, and CPU per task
of the producer (``time.process_time``) and of the worker (from its ``worker_started`` hook
to its ``worker_stopping`` hook, which leaves out the interpreter's start; the worker
process's whole CPU is kept as ``worker_process_cpu_us_per_task``). The set-ups (a
redis-server and a Cluster, the run's own, on free loopback ports) run interleaved (single,
cluster, single, ...); medians of the runs.

Everything (this process, the worker, every Redis node) shares this machine's cores, so the
wall times and tasks/s measure this machine, not a cluster; the per-task costs are what the
projection uses. **Projected** (computed, not measured): one master runs commands on one
thread, so it saturates at about 1e6 / (µs of its CPU per task) tasks/s; M masters with
the queues spread evenly give M times that, bounded by the queues (one queue lives on one
master, so it never exceeds one master's rate, and Q queues use at most Q masters), the
network (bytes per task against 10 Gbit/s per node) and needing ``tasks/s x client CPU
per task`` client cores.

Results: ``benchmarks/results/cluster_scaling.json`` (``measured`` and ``projected`` kept
apart) and markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PY.exists():
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402 - after the venv re-exec above
from redis.crc import key_slot  # noqa: E402

from taskq_core import TaskQueue  # noqa: E402
from taskq_core.settings import Settings  # noqa: E402
from tests.cluster.servers import ClusterGroup  # noqa: E402
from tests.replication.servers import Node  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cluster_scaling.json"
QUEUES = [f"s{i}" for i in range(12)]
BATCH = 100
CONCURRENCY = 32
MASTERS = 3
PROJECT_AT = (1, 3, 10, 30)
#: the network a node is assumed to have, for the projection's network bound
NIC_BYTES_PER_S = 10e9 / 8
CLUSTER_SLOTS = 16384
#: commands (and socket reads) each reading of a node adds to the next reading's count:
#: its INFO stats (counted once it has run) and its INFO cpu
OWN_COMMANDS = 2

APP = """
import json, os, time

from taskq_core import TaskQueue
from taskq_core.middleware import Middleware

tq = TaskQueue.from_config()


@tq.task(name="bench.noop")
async def noop():
    return None


class Stamp(Middleware):
    # the worker's own wall time and CPU from its loop's start to its end: the
    # interpreter's start and the imports are left out of the work phase's figures
    def worker_started(self, worker):
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()

    def worker_stopping(self, worker):
        seconds, cpu = time.perf_counter() - self.t0, time.process_time() - self.cpu0
        with open(os.environ["BENCH_STAMP"], "w") as f:
            json.dump({"seconds": seconds, "cpu_seconds": cpu}, f)


tq.middleware.append(Stamp())
"""


# -- readings of one node


@dataclass(frozen=True, slots=True)
class Reading:
    """One node's counters at one moment."""

    at: float  # time.perf_counter()
    cpu: float  # seconds: the main thread's (sys + user), or the process's where unknown
    cpu_process: float  # seconds: every thread of the process
    commands: int
    reads: int  # reads from client sockets: one per request or pipeline (up to 16 KB)
    net_in: int
    net_out: int


def read(client: redis.Redis) -> Reading:
    stats: dict[str, Any] = client.info("stats")
    cpu: dict[str, Any] = client.info("cpu")
    process = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    main = process
    if "used_cpu_sys_main_thread" in cpu:  # Redis >= 6.2
        main = float(cpu["used_cpu_sys_main_thread"]) + float(cpu["used_cpu_user_main_thread"])
    return Reading(
        time.perf_counter(),
        main,
        process,
        int(stats["total_commands_processed"]),
        int(stats["total_reads_processed"]),
        int(stats["total_net_input_bytes"]),
        int(stats["total_net_output_bytes"]),
    )


def delta(before: Reading, after: Reading, idle_cpu_per_s: float) -> dict[str, float]:
    """What a node did between two readings; ``cpu_us`` is net of its idle CPU over the
    interval (``cpu_raw_us`` is not)."""
    seconds = after.at - before.at
    raw = (after.cpu - before.cpu) * 1e6
    return {
        "seconds": seconds,
        "cpu_raw_us": raw,
        "cpu_us": max(0.0, raw - idle_cpu_per_s * seconds * 1e6),
        "cpu_process_us": (after.cpu_process - before.cpu_process) * 1e6,
        "commands": after.commands - before.commands - OWN_COMMANDS,
        "reads": after.reads - before.reads - OWN_COMMANDS,
        "net_bytes": (after.net_in - before.net_in) + (after.net_out - before.net_out),
    }


# -- the two set-ups


@dataclass
class Setup:
    """A Redis set-up under test: its URL, its nodes by label, the node of each queue."""

    name: str
    url: str
    ports: dict[str, int]  # label -> port
    queue_node: dict[str, str]  # queue -> label
    clients: dict[str, redis.Redis]

    def read_all(self) -> dict[str, Reading]:
        return {label: read(c) for label, c in self.clients.items()}

    def flush(self) -> None:
        for c in self.clients.values():
            c.flushall()

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


def single_setup(node: Node) -> Setup:
    return Setup(
        "single",
        f"redis://127.0.0.1:{node.port}/0",
        {"single": node.port},
        dict.fromkeys(QUEUES, "single"),
        {"single": redis.Redis(port=node.port, socket_timeout=10)},
    )


def cluster_setup(group: ClusterGroup) -> Setup:
    ports = {f"m{i + 1}": port for i, port in enumerate(group.master_ports())}
    label = {port: name for name, port in ports.items()}
    # the ready list of each queue; every key of the queue has the same hash tag, so the
    # prefix (each run's own) does not move it
    queue_node = {q: label[group.master_of(f"bench:{{{q}}}:ready").port] for q in QUEUES}
    clients = {name: redis.Redis(port=port, socket_timeout=10) for name, port in ports.items()}
    return Setup("cluster", group.url, ports, queue_node, clients)


# -- one run: the enqueue phase, the work phase


def _split(n: int) -> dict[str, int]:
    """``n`` tasks over the queues, as evenly as whole tasks allow."""
    per, extra = divmod(n, len(QUEUES))
    return {q: per + (1 if i < extra else 0) for i, q in enumerate(QUEUES)}


def _worker(url: str, prefix: str, work: Path, stamp: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")},
        "TASKQ_BROKER_URL": url,
        "TASKQ_KEY_PREFIX": prefix,
        "BENCH_STAMP": str(stamp),
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "taskq_core.cli", "worker", "--app", "csbench:tq",
         "--queues", ",".join(QUEUES), "--concurrency", str(CONCURRENCY), "--burst",
         "--log-level", "warning"],
        env=env, cwd=work,
    )  # fmt: skip


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the redis-servers are still
    running, so not counted: only the worker processes that have exited are)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _idle(setup: Setup, seconds: float) -> dict[str, float]:
    """Each node's CPU per second while nothing uses it (its cron, the cluster bus)."""
    before = setup.read_all()
    time.sleep(seconds)
    after = setup.read_all()
    return {
        k: max(0.0, (after[k].cpu - before[k].cpu) / (after[k].at - before[k].at)) for k in before
    }


def one_run(setup: Setup, n: int, work: Path, idle_seconds: float) -> dict[str, Any]:
    """Enqueue ``n`` tasks, run them with one burst worker; the readings of each phase."""
    setup.flush()
    idle = _idle(setup, idle_seconds)
    prefix = f"bench-cs-{uuid.uuid4().hex[:8]}"
    tq = TaskQueue(settings=Settings(broker_url=setup.url, key_prefix=prefix))
    task = tq.task(name="bench.noop")(lambda: None)
    counts = _split(n)
    per_queue = {q: [task.options(queue=q).call() for _ in range(c)] for q, c in counts.items()}
    # batches of 100, one queue each, the queues in turn (a producer's bulk enqueues)
    batches = []
    for at in range(0, max(counts.values()), BATCH):
        batches += [sigs[at : at + BATCH] for sigs in per_queue.values() if sigs[at:]]
    stamp = work / f"stamp-{prefix}.json"
    proc: subprocess.Popen[bytes] | None = None
    try:
        r0 = setup.read_all()
        t0, cpu0 = time.perf_counter(), time.process_time()
        for batch in batches:
            tq.enqueue_many(batch)
        t1, cpu1 = time.perf_counter(), time.process_time()
        r1 = setup.read_all()
        keys = {label: int(c.dbsize()) for label, c in setup.clients.items()}
        r2 = setup.read_all()
        kids0 = _children_cpu()
        proc = _worker(setup.url, prefix, work, stamp)
        code = proc.wait(600)
        r3 = setup.read_all()
        process_cpu = _children_cpu() - kids0
        if code != 0:
            raise RuntimeError(f"the worker exited with {code}")
        worker = json.loads(stamp.read_text())
        # read after the last reading, so it costs the figures nothing
        infos = tq.broker.queue_info(QUEUES)
    finally:
        if proc is not None and proc.poll() is None:  # it failed or hung: not left behind
            proc.kill()
            proc.wait(10)
        tq.close()
        stamp.unlink(missing_ok=True)
    left = {i.name: (i.ready, i.delayed, i.leased, i.dead) for i in infos}
    if any(sum(v) for v in left.values()):
        raise RuntimeError(f"tasks left after the worker (ready, delayed, leased, dead): {left}")
    enqueue = {k: delta(r0[k], r1[k], idle[k]) for k in r0}
    work_phase = {k: delta(r2[k], r3[k], idle[k]) for k in r0}
    return {
        "tasks": n,
        "idle_cpu_us_per_s": {k: v * 1e6 for k, v in idle.items()},
        "keys_before_work": keys,
        "enqueue": {
            "wall_s": t1 - t0,
            "client_cpu_s": cpu1 - cpu0,
            "nodes": enqueue,
        },
        "work": {
            "wall_s": worker["seconds"],
            "process_wall_s": r3[next(iter(r3))].at - r2[next(iter(r2))].at,
            "client_cpu_s": worker["cpu_seconds"],
            "worker_process_cpu_s": process_cpu,
            "nodes": work_phase,
        },
    }


def warm(setup: Setup, work: Path) -> None:
    """A few tasks through every queue first: the scripts are loaded on every node and
    the first connections made before anything is measured."""
    one_run(setup, len(QUEUES) * 2, work, 0.05)


# -- figures of a run, and medians of runs


def _node_tasks(setup: Setup, n: int) -> dict[str, int]:
    out = dict.fromkeys(setup.ports, 0)
    for q, c in _split(n).items():
        out[setup.queue_node[q]] += c
    return out


def figures(setup: Setup, run: dict[str, Any]) -> dict[str, Any]:
    """Per phase and in total: per node and summed over nodes, per task."""
    n = run["tasks"]
    own = _node_tasks(setup, n)
    out: dict[str, Any] = {"tasks": n}
    phases: dict[str, dict[str, dict[str, float]]] = {
        "enqueue": run["enqueue"]["nodes"],
        "work": run["work"]["nodes"],
    }
    phases["total"] = {
        k: {m: phases["enqueue"][k][m] + phases["work"][k][m] for m in phases["work"][k]}
        for k in phases["work"]
    }
    for phase, nodes in phases.items():
        total_cpu = sum(d["cpu_us"] for d in nodes.values()) or 1.0
        per_node = {
            k: {
                "cpu_us_per_task": d["cpu_us"] / n,
                "cpu_raw_us_per_task": d["cpu_raw_us"] / n,
                "cpu_process_us_per_task": d["cpu_process_us"] / n,
                # the master's cost per task of its own queues: what its saturation rests on
                "cpu_us_per_own_task": d["cpu_us"] / own[k] if own[k] else 0.0,
                "commands_per_task": d["commands"] / n,
                "reads_per_task": d["reads"] / n,
                "net_bytes_per_task": d["net_bytes"] / n,
                "cpu_share": d["cpu_us"] / total_cpu,
            }
            for k, d in nodes.items()
        }
        summed = {
            m: sum(v[m] for v in per_node.values())
            for m in (
                "cpu_us_per_task",
                "cpu_raw_us_per_task",
                "cpu_process_us_per_task",
                "commands_per_task",
                "reads_per_task",
                "net_bytes_per_task",
            )
        }
        entry: dict[str, Any] = {"nodes": per_node, "sum": summed}
        if phase != "total":
            wall = run[phase]["wall_s"]
            entry |= {
                "wall_s": wall,
                "tasks_per_s": n / wall,
                "client_cpu_us_per_task": run[phase]["client_cpu_s"] * 1e6 / n,
            }
        if phase == "work":
            entry["process_wall_s"] = run["work"]["process_wall_s"]
            entry["worker_process_cpu_us_per_task"] = run["work"]["worker_process_cpu_s"] * 1e6 / n
        out[phase] = entry
    out["client_cpu_us_per_task"] = (
        out["enqueue"]["client_cpu_us_per_task"] + out["work"]["client_cpu_us_per_task"]
    )
    out["task_share"] = {k: c / n for k, c in own.items()}
    out["keys_before_work"] = run["keys_before_work"]
    out["idle_cpu_us_per_s"] = run["idle_cpu_us_per_s"]
    return out


def median_tree(trees: Sequence[Any]) -> Any:
    """The median of each number across ``trees`` (same-shaped nested dicts)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: median_tree([t[k] for t in trees]) for k in first}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    return statistics.median(trees)


# -- the projection


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The slots of each master as ``redis-cli --cluster create`` assigns them: even
    contiguous ranges (its own rounding)."""
    per = CLUSTER_SLOTS / masters
    out, first, cursor = [], 0, 0.0
    for i in range(masters):
        last = math.floor(cursor + per - 1 + 0.5)  # C's lround, for a positive number
        if last > CLUSTER_SLOTS or i == masters - 1:
            last = CLUSTER_SLOTS - 1
        last = max(last, first)
        out.append((first, last))
        first, cursor = last + 1, cursor + per
    return out


def queues_per_master(queues: Sequence[str], masters: int) -> list[int]:
    """How many of ``queues`` each of ``masters`` masters holds, by their names' slots."""
    ranges = slot_ranges(masters)
    counts = [0] * masters
    for q in queues:
        slot = key_slot(f"{{{q}}}".encode())
        counts[next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot <= hi)] += 1
    return counts


def project(single: dict[str, Any], clustered: dict[str, Any]) -> dict[str, Any]:
    """Tasks/s at ``PROJECT_AT`` masters from the measured per-task costs (see the module
    docstring); M = 1 from the single Redis, the others from the 3-master Cluster."""
    rows: dict[str, Any] = {}
    for m in PROJECT_AT:
        src = single if m == 1 else clustered
        total = src["total"]["sum"]
        cpu_us = total["cpu_us_per_task"]  # summed over masters: cross-master costs included
        master_rate = 1e6 / cpu_us  # one master's command thread, busy all the time
        net_rate = NIC_BYTES_PER_S / total["net_bytes_per_task"]
        per_master = min(master_rate, net_rate)
        even = m * per_master
        per_queue_cap = per_master  # one queue: one slot, one master
        held = queues_per_master(QUEUES, m)
        # these 12 queues, equally busy, as their names hash: the busiest master saturates
        # first, when the whole carries len(QUEUES) / (its queues) of its rate
        hashed = per_master * len(QUEUES) / max(held)
        bound = "redis CPU (one thread per master)" if master_rate <= net_rate else "network"
        client_us = src["client_cpu_us_per_task"]
        rows[str(m)] = {
            "masters": m,
            "costs_from": "single Redis" if m == 1 else f"{MASTERS}-master Cluster",
            "master_tasks_per_s": master_rate,
            "network_tasks_per_s_per_master": net_rate,
            "tasks_per_s_even": even,
            "bound_even": bound,
            "one_queue_max_tasks_per_s": per_queue_cap,
            "queues_per_master_hashed": held,
            "tasks_per_s_12_queues_hashed": hashed,
            "bound_12_queues_hashed": (
                f"the busiest master ({max(held)} of {len(QUEUES)} queues; "
                f"{sum(1 for h in held if h)} of {m} masters used)"
                if max(held) * m > len(QUEUES)
                else bound
            ),
            "client_cores_needed": even * client_us / 1e6,
            "client_cores_needed_12_queues_hashed": hashed * client_us / 1e6,
            "network_mb_per_s_per_master": per_master * total["net_bytes_per_task"] / 1e6,
        }
    return {
        "note": (
            "computed, not measured: a master saturates at 1e6 / (Redis main-thread CPU µs "
            "per task, net of idle, summed over the masters, enqueue + work) tasks/s, or at "
            f"{NIC_BYTES_PER_S * 8 / 1e9:g} Gbit/s of its network, whichever is lower; "
            "M masters with equally busy queues spread evenly (at least one per master) "
            "give M times that. One queue never exceeds one master's rate. "
            "'12_queues_hashed': this benchmark's 12 queues placed by their names' slots on "
            "M masters with redis-cli's slot ranges. Client cores: tasks/s x the measured "
            "producer + worker CPU per task. Per-task costs at saturation are likely lower "
            "(more commands per event-loop wake-up), so these are conservative for Redis."
        ),
        "rows": rows,
    }


# -- output


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def tables(out: dict[str, Any]) -> str:
    s, c = out["measured"]["single"], out["measured"]["cluster"]
    lines = [
        f"| measured (medians of {out['runs']}) | single Redis | Cluster, {MASTERS} masters |",
        "|---|---|---|",
    ]

    def row(name: str, path: str, digits: int = 1) -> None:
        """One figure of both set-ups, by its path in their figures (``total.sum.x``)."""
        got = []
        for figs in (s, c):
            value: Any = figs
            for part in path.split("."):
                value = value[part]
            got.append(_fmt(value, digits))
        lines.append(f"| {name} | {got[0]} | {got[1]} |")

    row("tasks", "tasks", 0)
    for phase in ("enqueue", "work"):
        row(f"{phase}: tasks/s (this machine)", f"{phase}.tasks_per_s", 0)
    for phase in ("enqueue", "work", "total"):
        row(f"Redis CPU µs/task, {phase} (sum of nodes)", f"{phase}.sum.cpu_us_per_task")
    row("Redis CPU µs/task, total, raw (idle not taken off)", "total.sum.cpu_raw_us_per_task")
    for phase in ("enqueue", "work", "total"):
        row(f"commands/task, {phase} (sum)", f"{phase}.sum.commands_per_task", 2)
    for phase in ("enqueue", "work"):
        row(f"socket reads/task, {phase} (sum; ~ requests)", f"{phase}.sum.reads_per_task", 2)
    row("network bytes/task, total (sum)", "total.sum.net_bytes_per_task", 0)
    row("producer CPU µs/task", "enqueue.client_cpu_us_per_task")
    row("worker CPU µs/task", "work.client_cpu_us_per_task")
    lines += [
        "",
        "| master | queues | task share | Redis CPU share | CPU µs/task of its queues "
        "| commands/task | keys before work |",
        "|---|---|---|---|---|---|---|",
    ]
    qs = out["measured"]["cluster_queues"]
    for node, f in c["total"]["nodes"].items():
        mine = ", ".join(q for q, k in qs.items() if k == node) or "none"
        lines.append(
            f"| {node} (:{out['measured']['cluster_ports'][node]}) | {mine} "
            f"| {c['task_share'][node]:.0%} | {f['cpu_share']:.0%} "
            f"| {f['cpu_us_per_own_task']:.1f} | {f['commands_per_task']:.2f} "
            f"| {_fmt(c['keys_before_work'][node])} |"
        )
    lines += [
        "",
        "| masters (projected) | per-task costs of | tasks/s, queues spread evenly "
        "| tasks/s, these 12 queues as hashed | client cores needed (even) "
        "| network MB/s per master | bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["projected"]["rows"].values():
        lines.append(
            f"| {r['masters']} | {r['costs_from']} | {_fmt(r['tasks_per_s_even'])} "
            f"| {_fmt(r['tasks_per_s_12_queues_hashed'])} | {r['client_cores_needed']:.1f} "
            f"| {r['network_mb_per_s_per_master']:.1f} | {r['bound_even']}; hashed: "
            f"{r['bound_12_queues_hashed']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    n, runs, idle_s = (2000, 1, 0.5) if args.quick else (20000, 3, 1.0)
    n, runs = args.tasks or n, args.runs or runs
    measured: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
    with tempfile.TemporaryDirectory(prefix="taskq-cs-") as tmp:
        root = Path(tmp)
        work = root / "app"
        work.mkdir()
        (work / "csbench.py").write_text(APP)
        single_node = Node(root, "single", ["--save", "", "--appendonly", "no"])
        group = ClusterGroup(root / "cluster", masters=MASTERS, replicas=0)
        setups: list[Setup] = []
        try:
            single_node.start()
            group.start()
            setups = [single_setup(single_node), cluster_setup(group)]
            cluster = setups[1]
            placed = sorted(queues_per_master(QUEUES, MASTERS))
            seen = sorted(list(cluster.queue_node.values()).count(k) for k in cluster.ports)
            print("queues per master:", {
                k: [q for q, m in cluster.queue_node.items() if m == k] for k in cluster.ports
            }, "(the model of redis-cli's slot ranges says", placed, ")", flush=True)  # fmt: skip
            if placed != seen:
                print("warning: the slot-range model differs from the Cluster's", seen)
            for setup in setups:
                warm(setup, work)
            for i in range(runs):
                for setup in setups:  # interleaved: drift hits both alike
                    run = one_run(setup, n, work, idle_s)
                    measured[setup.name].append(figures(setup, run))
                    f = measured[setup.name][-1]
                    print(
                        f"run {i + 1} {setup.name}: Redis CPU "
                        f"{f['total']['sum']['cpu_us_per_task']:.1f} µs/task, "
                        f"work {f['work']['tasks_per_s']:,.0f} tasks/s",
                        flush=True,
                    )
        finally:
            for setup in setups:
                setup.close()
            group.stop()
            single_node.kill()
    single, clustered = median_tree(measured["single"]), median_tree(measured["cluster"])
    out: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": runs,
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "note": (
                "this process (producer), the worker process and every Redis node share these "
                "cores: wall times and tasks/s are this machine's, not a cluster's"
            ),
        },
        "workload": {
            "tasks": n,
            "queues": QUEUES,
            "batch": BATCH,
            "task": "async def noop (taskq's native kind), default middleware",
            "worker": f"one `taskq worker --burst`, concurrency {CONCURRENCY}, all 12 queues",
            "cluster": f"{MASTERS} masters, no replicas (redis-cli --cluster create)",
            "redis_cpu": (
                "INFO cpu used_cpu_{sys,user}_main_thread (the thread that runs commands), "
                "net of each node's idle CPU measured before the run; *_raw_* keeps it in, "
                "*_process_* counts every thread"
            ),
        },
        "measured": {
            "single": single,
            "cluster": clustered,
            "cluster_ports": setups[1].ports,
            "cluster_queues": setups[1].queue_node,
            # the Cluster's cost over the single Redis's, per task
            "cluster_over_single": {
                "redis_cpu": clustered["total"]["sum"]["cpu_us_per_task"]
                / single["total"]["sum"]["cpu_us_per_task"],
                "commands": clustered["total"]["sum"]["commands_per_task"]
                / single["total"]["sum"]["commands_per_task"],
                "socket_reads": clustered["total"]["sum"]["reads_per_task"]
                / single["total"]["sum"]["reads_per_task"],
                "client_cpu": clustered["client_cpu_us_per_task"]
                / single["client_cpu_us_per_task"],
            },
            "runs": measured,
        },
        "projected": project(single, clustered),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print()
    print(tables(out))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()

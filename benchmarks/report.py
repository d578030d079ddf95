"""Turns the measurements into medians, ratios, targets, a console table and the doc.

Used by ``benchmarks/run.py`` (taskq's environment: standard library only here, so the doc
can be re-rendered from a JSON file with ``python -m benchmarks.report results.json``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "redis-py"
#: peers whose tasks are coroutines; the others' are plain functions
ASYNC_PEERS = {"arq", "saq", "taskiq"}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str  # "rate" | "ms" | "mib" | "s" | "x"


METRICS = [
    Metric("enqueue_sync", "enqueue one per call, sync producer", "tasks/s", True, "rate"),
    Metric("enqueue_async", "enqueue one per call, async producer", "tasks/s", True, "rate"),
    Metric(
        "enqueue_floor_sync",
        "redis-py RPUSH, one per round trip, interleaved with the sync enqueues",
        "commands/s",
        True,
        "rate",
    ),
    Metric(
        "enqueue_floor_async",
        "redis-py RPUSH (asyncio), interleaved with the async enqueues",
        "commands/s",
        True,
        "rate",
    ),
    Metric("enqueue_bulk", "bulk enqueue (batches of 100)", "tasks/s", True, "rate"),
    Metric("throughput_async", "processing, no-op async tasks", "tasks/s", True, "rate"),
    Metric("throughput_sync", "processing, no-op sync tasks", "tasks/s", True, "rate"),
    Metric("latency_p50_ms", "pick-up latency p50 (200/s)", "ms", False, "ms"),
    Metric("latency_p95_ms", "pick-up latency p95", "ms", False, "ms"),
    Metric("latency_p99_ms", "pick-up latency p99", "ms", False, "ms"),
    Metric("latency_idle_ms", "first task after 1 s idle", "ms", False, "ms"),
    Metric("recovery_s", "recovery after SIGKILL", "s", False, "s"),
    Metric("rss_rest_mib", "worker RSS at rest", "MiB", False, "mib"),
    Metric("rss_after_mib", "worker RSS after the processing run", "MiB", False, "mib"),
    Metric("redis_bytes_per_task", "Redis memory per queued task", "bytes", False, "rate"),
]
TASKQ_ONLY = [
    Metric(
        "throughput_async_metrics_off", "processing, async, metrics off", "tasks/s", True, "rate"
    ),
    Metric("throughput_sync_metrics_off", "processing, sync, metrics off", "tasks/s", True, "rate"),
    Metric(
        "throughput_async_bare", "processing, async, no middleware at all", "tasks/s", True, "rate"
    ),
    Metric(
        "throughput_async_traced",
        "processing, async, metrics and tracing (OpenTelemetry) on",
        "tasks/s",
        True,
        "rate",
    ),
    Metric("rss_after_sync_mib", "worker RSS after the sync processing run", "MiB", False, "mib"),
    Metric("round_trips_per_enqueue", "Redis round trips per enqueue", "", False, "x"),
    *(
        Metric(f"decomp_{key}", f"interleaved, taskq's client: {label}", "tasks/s", True, "rate")
        for key, label in (
            ("rpush_sync", "RPUSH, one per round trip"),
            ("leanpush_sync", "RPUSH, one per round trip, sent taskq's lean way"),
            ("script_sync", "the enqueue script alone (built beforehand)"),
            ("enqueue_sync", "taskq's enqueue"),
            ("rpush_pipeline", "RPUSH, pipelines of 100"),
            ("leanpush_pipeline", "RPUSH, pipelines of 100, sent taskq's lean way"),
            ("script_bulk", "the enqueue script alone, 100 tasks a call"),
            ("enqueue_bulk", "taskq's enqueue_many, 100 tasks"),
            ("rpush_async", "RPUSH, asyncio, one per round trip"),
            ("leanpush_async", "RPUSH, asyncio, one per round trip, sent taskq's lean way"),
            ("script_async", "the enqueue script alone, asyncio"),
            ("enqueue_async", "taskq's enqueue_async"),
        )
    ),
    *(
        Metric(f"stage_{key}", f"CPU only: {label}", "µs per task", False, "ms")
        for key, label in (
            ("items_sync", "TaskQueue._items, one task (check, id, message, encode)"),
            ("plan_sync", "Plans.enqueue + ScriptCall.packed, one task"),
            ("items_bulk", "TaskQueue._items, 100 tasks"),
            ("plan_bulk", "Plans.enqueue + ScriptCall.packed, 100 tasks"),
        )
    ),
]
FLOOR_METRICS = [
    Metric(
        "redis_one_command_sync",
        "redis-py, one RPUSH per round trip (sync)",
        "commands/s",
        True,
        "rate",
    ),
    Metric(
        "redis_one_command_async",
        "redis-py, one RPUSH per round trip (asyncio)",
        "commands/s",
        True,
        "rate",
    ),
    Metric("redis_pipeline_100", "redis-py, pipelines of 100 RPUSH", "commands/s", True, "rate"),
    Metric(
        "redis_ping_after_10ms_ms",
        "redis-py, one PING after 10 ms of sleep (median of 3)",
        "ms",
        False,
        "ms",
    ),
    Metric(
        "redis_ping_after_1s_ms",
        "redis-py, one PING after 1 s of sleep (median of 3): how slowly this machine wakes",
        "ms",
        False,
        "ms",
    ),
    Metric(
        "otel_span_us",
        "OpenTelemetry SDK alone: a task's consumer span (traceparent extracted, 6 attributes,"
        " made current, ended; no processor)",
        "µs CPU per span",
        False,
        "ms",
    ),
    Metric(
        "otel_span_unsampled_us",
        "OpenTelemetry SDK alone: the same span for a message whose trace was not sampled",
        "µs CPU per span",
        False,
        "ms",
    ),
    Metric(
        "otel_span_bare_us",
        "OpenTelemetry SDK alone: the least span (start_span, end)",
        "µs CPU per span",
        False,
        "ms",
    ),
    Metric(
        "decode_us",
        "taskq alone: decode a typical message, every field checked",
        "µs CPU per message",
        False,
        "ms",
    ),
    Metric(
        "sign_verify_us",
        "taskq alone: encode and sign a typical message, then verify and decode it"
        " (security.signing_keys, HMAC-SHA256)",
        "µs CPU per message",
        False,
        "ms",
    ),
    Metric(
        "signing_us",
        "taskq alone: what signing adds per task (the line above minus encode and decode"
        " without signing)",
        "µs CPU per message",
        False,
        "ms",
    ),
]
BY_KEY = {m.key: m for m in [*METRICS, *TASKQ_ONLY, *FLOOR_METRICS]}
THROUGHPUT_KEYS = {
    "async": "throughput_async",
    "sync": "throughput_sync",
    "async-nometrics": "throughput_async_metrics_off",
    "sync-nometrics": "throughput_sync_metrics_off",
    "async-bare": "throughput_async_bare",
    "async-traced": "throughput_async_traced",
}
WORKER_NOTES = {
    "taskq": "`taskq worker` (the CLI), 1 process, default concurrency 16 and default "
    "prefetch (short tasks: about 5 ms of work per slot leased ahead); async tasks on the "
    "loop, sync tasks on its 16 threads; results kept (default TTL)",
    "celery": "`celery worker -P prefork -c {cores}`: prefork pool, one child per core "
    "(3 processes), default prefetch (4), acks on receipt (default), no result backend",
    "rq": "standard `Worker` (`Worker.work()`): forks a work horse for every job; results "
    "kept 500 s (default)",
    "dramatiq": "`dramatiq -p 1 -t 8`: 1 worker process with 8 threads, under its supervisor "
    "process; default middleware, no result backend",
    "huey": "`huey_consumer -k thread -w 8`: 1 process, 8 worker threads; `RedisHuey` "
    "defaults (blocking reads)",
    "arq": "`arq WorkerSettings`: 1 asyncio process, defaults (max_jobs 10, poll_delay 0.5 s, "
    "results kept 1 h)",
    "saq": "`saq settings`: 1 asyncio process, concurrency 10 (default)",
    "taskiq": "`taskiq worker --workers 1`: 1 worker process under its supervisor, "
    "`RedisStreamBroker` + `RedisAsyncResultBackend` (taskiq-redis's README setup), "
    "max_async_tasks 100 (default)",
}
PRODUCER_NOTES = {
    "taskq": ("`task.enqueue()`", "`await task.enqueue_async()`", "`TaskQueue.enqueue_many`"),
    "celery": ("`task.delay()`", None, None),
    "rq": ("`Queue.enqueue()`", None, "`Queue.enqueue_many`"),
    "dramatiq": ("`actor.send()`", None, None),
    "huey": ("calling the task", None, None),
    "arq": (None, "`await pool.enqueue_job()`", None),
    "saq": (None, "`await queue.enqueue()`", None),
    "taskiq": (None, "`await task.kiq()`", None),
}
_CELERY_OPT = "https://docs.celeryq.dev/en/stable/userguide/optimizing.html"
_DRAMATIQ_ENV = "https://dramatiq.io/reference.html"
_ARQ = "https://arq-docs.helpmanual.io/"
#: each peer's ``tuned`` variant: its best documented settings for short tasks (throughput
#: and pick-up latency), each with the page of the peer's own documentation that gives it.
#: The producers are the same as the defaults'; the recovery test runs the defaults only.
TUNED_NOTES: dict[str, dict[str, Any]] = {
    "celery": {
        "worker": "`celery worker -P prefork -c {cores} --prefetch-multiplier 128 -O default "
        "--without-gossip --without-mingle --without-heartbeat`",
        "settings": [
            (
                "prefetch multiplier 128 (default 4): for many short tasks, where throughput "
                "and round-trip latency matter, the optimizing guide advises a large one",
                _CELERY_OPT,
            ),
            (
                "`-O default`, not `-O fair`: the guide's fair scheduling is for long tasks "
                "(`default` is also Celery 5's default)",
                _CELERY_OPT,
            ),
            (
                "`--without-gossip --without-mingle --without-heartbeat`: no worker-to-worker "
                "events, start-up sync or event heartbeats, which a lone worker does not use",
                "https://docs.celeryq.dev/en/stable/reference/cli.html",
            ),
        ],
    },
    "rq": {
        "worker": "`SimpleWorker`: each job runs in the worker process (no work horse forked "
        "per job); results kept 500 s (default)",
        "settings": [
            (
                "`SimpleWorker` instead of `Worker`: RQ's performance notes measure it about "
                "6× faster on short jobs and name it for jobs of a few milliseconds, where the "
                "fork is the bottleneck",
                "https://github.com/rq/rq/blob/master/docs/benchmark.md",
            ),
        ],
    },
    "dramatiq": {
        "worker": "`dramatiq -p 1 -t 8` with `dramatiq_worker_timeout=10` and "
        "`dramatiq_queue_prefetch=64`",
        "settings": [
            (
                "`dramatiq_worker_timeout` 10 ms (default 1,000 ms): the longest an idle "
                "consumer backs off between fetches",
                _DRAMATIQ_ENV,
            ),
            (
                "`dramatiq_queue_prefetch` 64 (default 2 × threads = 16): messages fetched "
                "ahead by the worker process",
                _DRAMATIQ_ENV,
            ),
        ],
    },
    "huey": {
        "worker": "`huey_consumer -k process -w {cores}`: one worker process per core",
        "settings": [
            (
                "`-k process -w {cores}` (default variant: `-k thread -w 8`): the consumer "
                "documentation advises process workers for CPU-bound work, and a no-op task's "
                "cost is all the consumer's own Python, which threads run one at a time",
                "https://huey.readthedocs.io/en/latest/consumer.html",
            ),
        ],
    },
    "arq": {
        "worker": "`arq WorkerSettings` with `poll_delay` 0.01 s and `max_jobs` 100",
        "settings": [
            ("`poll_delay` 0.01 s (default 0.5 s): how often an idle worker polls", _ARQ),
            (
                "`max_jobs` 100 (default 10): jobs run at once (the documentation: "
                "potentially hundreds at once in one process)",
                _ARQ,
            ),
        ],
    },
    "saq": {
        "worker": "`saq settings_tuned`: 1 asyncio process, concurrency 100",
        "settings": [
            (
                "`concurrency` 100 (default 10): jobs run at once, the worker setting of the "
                "README",
                "https://github.com/tobymao/saq",
            ),
        ],
    },
    "taskiq": {
        "worker": "`taskiq worker --workers 1 --max-prefetch 100`: `RedisStreamBroker` "
        "without a result backend, max_async_tasks 100 (default)",
        "settings": [
            (
                "no result backend (taskiq's own default; the default variant has the "
                "`RedisAsyncResultBackend` of taskiq-redis's README): results are not stored, "
                "one Redis write less per task; both are measured, with (default column) and "
                "without (tuned column)",
                "https://github.com/taskiq-python/taskiq-redis",
            ),
            (
                "`--max-prefetch 100` (default 0): deliveries fetched beyond the "
                "`max_async_tasks` running (100, the default, kept)",
                "https://taskiq-python.github.io/guide/cli.html",
            ),
        ],
    },
}
#: what each peer does with the tasks of a worker killed by SIGKILL, per its documentation,
#: with its recovery feature set short for the test (``BENCH_RECOVERY=1``, libs/*_app.py)
RECOVERY_NOTES = {
    "celery": "late acknowledgement (`task_acks_late=True`, `task_reject_on_worker_lost=True`; "
    "the default acknowledges on receipt, and a killed worker's tasks are then gone): the "
    "Redis transport puts a message delivered but not acknowledged back in the queue once "
    "it is older than `visibility_timeout` (1 hour by default; here 10 s), in a sweep that "
    "kombu runs every `unacked_restore_interval` × `unacked_restore_throttle` seconds (10 × "
    "10 by default; here every 5 s). The timeout runs from the delivery, which came a few "
    "seconds before the kill.",
    "rq": "a job with retries left (`Retry(max=1)` on the job; none by default) is re-queued "
    "by the `StartedJobRegistry` cleanup once its entry has expired, which is the job "
    "monitoring interval + 60 s after the dead worker's last heartbeat (here 5 + 60 s); "
    "without retries the cleanup only moves it to the `FailedJobRegistry` as abandoned. "
    "The cleanup runs in a worker's maintenance, every `maintenance_interval` (10 minutes "
    "by default; here 5 s), which an idle worker reaches only when its blocking dequeue "
    "returns, every `worker_ttl` − 15 s (here 20 − 15 s).",
    "dramatiq": "the Redis broker re-queues the messages of a worker whose heartbeat is "
    "older than `heartbeat_timeout` (60 s by default; here 10 s), in the maintenance that "
    "runs on `maintenance_chance` broker commands in a million (1,000 by default; here "
    "100,000).",
    "huey": "no recovery feature: a consumer removes a task from Redis when it dequeues "
    "it and does not acknowledge it, so a task running in a killed consumer is lost (Huey "
    "emits `SIGNAL_INTERRUPTED` only on a shutdown it sees).",
    "arq": "pessimistic execution: a job stays in the queue until it has finished, and "
    "another worker runs it again once its in-progress key expires, the job timeout + 10 s "
    "after it started (300 + 10 s by default; here `job_timeout` 15 s).",
    "saq": 'a worker\'s sweep (every 60 s by default; here `timers={"sweep": 5}`) finds '
    "active jobs past their `timeout` (10 s by default; here 15 s) or `heartbeat`, aborts "
    "them, and enqueues them again if they have a retry left (`retries`: attempts in all, "
    "1 by default, so none; here 2). The sweep waits up to 5 s for each job it aborts to "
    "acknowledge the abort (no one does: its worker is dead), one job after another.",
    "taskiq": "`RedisStreamBroker` re-claims (XAUTOCLAIM) messages delivered but not "
    "acknowledged for longer than `idle_timeout` (10 minutes by default; here 10 s). "
    "taskiq-redis 1.2.4 claims them only after a read of the stream that returned new "
    "messages: on an idle queue the killed worker's tasks wait for the next enqueue.",
    "taskq": "a task whose lease (15 s by default) was not renewed goes back to its queue.",
}
#: what the results keep of a memory measurement beside the figure itself
MEMORY_DETAIL = (
    "tasks",
    "used_memory_before",
    "used_memory_after",
    "keys",
    "keys_bytes_per_task",
    "how",
)
#: where each recovery feature and setting is documented
RECOVERY_DOCS = {
    "celery": [
        "https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#redis-visibility-timeout",
        "https://docs.celeryq.dev/en/stable/glossary.html",
        "https://docs.celeryq.dev/projects/kombu/en/main/_modules/kombu/transport/redis.html",
    ],
    "rq": [
        "https://python-rq.org/docs/exceptions",
        "https://python-rq.org/docs/job_registries/",
        "https://redis.io/docs/latest/integrate/rq/",
    ],
    "dramatiq": [
        "https://redis.io/docs/latest/integrate/dramatiq/",
        "https://github.com/Bogdanp/dramatiq/blob/master/dramatiq/brokers/redis.py",
    ],
    "huey": [
        "https://huey.readthedocs.io/en/latest/consumer.html#consumer-shutdown",
        "https://github.com/coleifer/huey/issues/571",
    ],
    "arq": [
        "https://arq-docs.helpmanual.io/",
        "https://github.com/python-arq/arq/issues/402",
    ],
    "saq": [
        "https://saq-py.readthedocs.io/en/latest/autoapi/saq/job/index.html",
        "https://saq-py.readthedocs.io/en/latest/comparison.html",
    ],
    "taskiq": [
        "https://github.com/taskiq-python/taskiq-redis",
        "https://github.com/taskiq-python/taskiq-redis/issues/101",
    ],
}


# -- summarising


def base_lib(lib: str) -> str:
    """The library of a results key: ``celery`` for ``celery`` and ``celery:tuned``."""
    return lib.split(":", 1)[0]


def lib_variant(lib: str) -> str:
    """The peer's settings a results key stands for: ``default`` or ``tuned``."""
    return lib.split(":", 1)[1] if ":" in lib else "default"


def lib_label(lib: str) -> str:
    """``celery (tuned)`` for ``celery:tuned``; a default's key as it is."""
    return lib if ":" not in lib else f"{base_lib(lib)} ({lib_variant(lib)})"


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "runs": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def summarise(
    raw: list[dict[str, Any]], recovery: dict[str, dict[str, Any]], libs: list[str]
) -> dict[str, dict[str, Any]]:
    """Per library and metric: the values of every run, median, min and max."""
    values: dict[str, dict[str, list[float]]] = {}
    extra: dict[str, dict[str, Any]] = {}

    def add(lib: str, key: str, v: Any) -> None:
        if isinstance(v, int | float):
            values.setdefault(lib, {}).setdefault(key, []).append(float(v))

    for e in raw:
        lib, res, sc, variant = e["lib"], e["result"], e["scenario"], e["variant"]
        if lib not in ("taskq", "floor") and variant != "default":
            # a peer's other settings ("tuned"): a library of its own in the results
            lib, variant = f"{lib}:{variant}", "default"
        if sc == "floor":
            for m in FLOOR_METRICS:
                add(FLOOR, m.key, res.get(m.key))
            extra.setdefault(FLOOR, {})["payload_bytes"] = res.get("payload_bytes")
            extra[FLOOR].setdefault("ping_after_1s_all_ms", []).extend(
                res.get("redis_ping_after_1s_all_ms", [])
            )
        elif sc == "produce":
            for k in (
                "enqueue_sync",
                "enqueue_async",
                "enqueue_floor_sync",
                "enqueue_floor_async",
                "enqueue_bulk",
                "round_trips_per_enqueue",
            ):
                add(lib, k, res.get(k))
            for k, v in res.items():
                if k.startswith(("decomp_", "stage_")):
                    add(lib, k, v)
            if "metrics_off_mode" in res:
                extra.setdefault(lib, {})["metrics_off_mode"] = res["metrics_off_mode"]
        elif sc == "throughput":
            if lib == "taskq":
                key = THROUGHPUT_KEYS[variant]
            else:
                key = "throughput_async" if base_lib(lib) in ASYNC_PEERS else "throughput_sync"
            for rate in res.get("throughput_windows") or [res.get("throughput")]:
                add(lib, key, rate)  # each window of n tasks is one measurement
            if lib == "taskq" and res.get("throughput"):
                # for the costs: variants measured back to back, keyed "run.pass" (a cost
                # group goes there and back in each run: pass 1 of "on" is paired with
                # pass 1 of "off", its neighbour)
                x = extra.setdefault(lib, {})
                by_run = x.setdefault("throughput_by_run", {}).setdefault(key, {})
                passes = sum(1 for r in by_run if r.split(".")[0] == str(e["run"]))
                at = f"{e['run']}.{passes + 1}"
                by_run[at] = res["throughput"]
                cpu = [res.get(f"cpu_us_per_task_{w}") for w in ("worker", "redis")]
                if all(isinstance(v, int | float) for v in cpu):
                    x.setdefault("cpu_by_run", {}).setdefault(key, {})[at] = cpu
            if variant in ("default", "async"):
                add(lib, "rss_after_mib", res.get("rss_after_mib"))
            elif variant == "sync":
                add(lib, "rss_after_sync_mib", res.get("rss_after_mib"))
            x = extra.setdefault(lib, {})
            x.setdefault(f"{key}_done", []).append(res.get("done"))
            if res.get("capped_s"):
                x[f"{key}_capped_s"] = res["capped_s"]
            x["worker_processes"] = res.get("worker_processes")
        elif sc == "memory":
            add(lib, "redis_bytes_per_task", res.get("redis_bytes_per_task"))
            extra.setdefault(lib, {})["memory"] = {k: res.get(k) for k in MEMORY_DETAIL}
        elif sc == "latency":
            # each window of n tasks is one measurement of the percentiles
            for w in res.get("latency_windows") or [res]:
                for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
                    add(lib, k, w.get(k))
            for k in ("latency_idle_ms", "rss_rest_mib"):
                add(lib, k, res.get(k))
            x = extra.setdefault(lib, {})
            x.setdefault("latency_idle_all_ms", []).extend(res.get("latency_idle_all_ms", []))
            x.setdefault("latency_achieved_rate", []).append(res.get("achieved_rate"))
            x.setdefault("latency_complete", []).append(res.get("complete"))
            x.setdefault("latency_max_ms", []).append(res.get("latency_max_ms"))
    out: dict[str, dict[str, Any]] = {}
    for lib, metrics in values.items():
        out[lib] = {k: _stats(v) for k, v in metrics.items()}
    for lib, res in recovery.items():
        if "error" in res:
            extra.setdefault(lib, {})["recovery_error"] = res["error"][-500:]
            continue
        runs = res["recovery_s_runs"]
        bound = res["recovery_detail"][0]["bound_s"]
        entry: dict[str, Any] = {"runs": runs, "bound_s": bound}
        if all(r is not None for r in runs):
            entry |= _stats(runs)
        else:
            entry |= {"median": None, "min": None, "max": None, "not_recovered": True}
        if "recovery_setting" in res:  # results from before it have no setting
            entry["setting"] = res["recovery_setting"]
            # not recovered, nothing of the held tasks ran, and Redis kept no key: lost
            entry["lost"] = all(
                not d["recovered"] and not d["finished_within_bound"] and not d.get("keys_left")
                for d in res["recovery_detail"]
            )
        out.setdefault(lib, {})["recovery_s"] = entry
        extra.setdefault(lib, {})["recovery_detail"] = res["recovery_detail"]
    for lib, x in extra.items():
        out.setdefault(lib, {})["_extra"] = x
    return out


def library_notes(libs: list[str]) -> dict[str, Any]:
    import os

    cores = os.cpu_count() or 1
    return {
        lib: {
            "worker": WORKER_NOTES[lib].format(cores=cores),
            "sync_producer": PRODUCER_NOTES[lib][0],
            "async_producer": PRODUCER_NOTES[lib][1],
            "bulk": PRODUCER_NOTES[lib][2],
            "recovery": RECOVERY_NOTES.get(lib),
            "recovery_docs": RECOVERY_DOCS.get(lib, []),
            **({"tuned": tuned_notes(lib, cores)} if lib in TUNED_NOTES else {}),
        }
        for lib in libs
    }


def tuned_notes(lib: str, cores: int) -> dict[str, Any]:
    """A peer's tuned worker, and each of its settings with its source."""
    t = TUNED_NOTES[lib]
    return {
        "worker": t["worker"].format(cores=cores),
        "settings": [
            {"setting": what.format(cores=cores), "source": url} for what, url in t["settings"]
        ],
    }


def _run_order(at: str) -> tuple[int, ...]:
    """ "run.pass" keys (older results: "run") in the order measured."""
    return tuple(int(x) for x in at.split("."))


def _median(data: dict[str, Any], lib: str, key: str) -> float | None:
    m = data["metrics"].get(lib, {}).get(key)
    value = None if m is None else m.get("median")
    return None if value is None else float(value)


def best_of(data: dict[str, Any], peer: str, key: str) -> tuple[str, float] | None:
    """A peer's best median of ``key`` over its settings (default, tuned): the results key
    it comes from, and the median."""
    better = max if BY_KEY[key].higher_is_better else min
    found = [
        (lib, v)
        for lib in data["metrics"]
        if base_lib(lib) == peer and (v := _median(data, lib, key)) is not None
    ]
    return better(found, key=lambda x: x[1]) if found else None


def ratios(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each peer's best median (default or tuned settings, whichever is better) over
    taskq's, per metric both have (recovery only when both recovered)."""
    out: dict[str, dict[str, float]] = {}
    peers = dict.fromkeys(base_lib(lib) for lib in data["metrics"])
    for lib in peers:
        if lib in ("taskq", FLOOR):
            continue
        for m in METRICS:
            found, b = best_of(data, lib, m.key), _median(data, "taskq", m.key)
            if found is not None and b:
                out.setdefault(lib, {})[m.key] = found[1] / b
    return out


def backlogged(data: dict[str, Any], lib: str) -> str | None:
    """Why ``lib``'s pick-up latencies are a queue's wait rather than a pick-up, if they are
    (from the data): its worker processes fewer tasks a second than the latency test sends,
    or its slowest task waited at least half the length of the test (the queue grew
    throughout; only in a test of 2 s or more, which a poll interval cannot fill)."""
    if _median(data, lib, "latency_p50_ms") is None:
        return None
    s = data["sizes"]["latency"]
    rate = s["rate"]
    rates = [v for k in ("throughput_async", "throughput_sync") if (v := _median(data, lib, k))]
    if rates and max(rates) < rate:
        return (
            f"its worker processes {max(rates):,.0f} tasks/s (processing row), fewer than the "
            f"{rate}/s the latency test sends"
        )
    worst = [v for v in data["metrics"][lib].get("_extra", {}).get("latency_max_ms", []) if v]
    length_ms = s["n"] * s.get("windows", 1) / rate * 1000
    if worst and length_ms >= 2000 and statistics.median(worst) >= 0.5 * length_ms:
        return (
            f"its slowest task waited {statistics.median(worst) / 1000:.1f} s (median of the "
            f"runs), half the {length_ms / 1000:.1f} s of the test or more: the queue grew "
            "throughout"
        )
    return None


# -- targets


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, each judged on this run's medians, and issue 22's goals
    (``benchmarks/goals.py``)."""
    t: list[dict[str, Any]] = []
    peers = [lib for lib in data["metrics"] if lib not in ("taskq", FLOOR)]

    def med(lib: str, key: str) -> float | None:
        return _median(data, lib, key)

    def known(libs: list[str], *keys: str) -> dict[str, float]:
        """Each library's median of the first of ``keys`` it has."""
        out: dict[str, float] = {}
        for lib in libs:
            for key in keys:
                v = med(lib, key)
                if v:
                    out[lib] = v
                    break
        return out

    def add(name: str, target: str, value: str, met: bool, detail: str = "") -> None:
        t.append({"name": name, "target": target, "value": value, "met": met, "detail": detail})

    rt = med("taskq", "round_trips_per_enqueue")
    if rt is not None:
        add(
            "enqueue_round_trips",
            "one Redis round trip per enqueue",
            f"{rt:g} round trip(s)",
            rt <= 1.0,
            "counted at the socket over 100 enqueues",
        )
    for mode in ("sync", "async"):
        tq = med("taskq", f"enqueue_{mode}")
        fl = med("taskq", f"enqueue_floor_{mode}")
        apart = med(FLOOR, f"redis_one_command_{mode}")
        if tq and fl:
            add(
                f"enqueue_{mode}_floor",
                f"one-at-a-time enqueue ({mode} producer) ≥ 0.85× redis-py one command",
                f"{tq / fl:.2f}× ({tq:,.0f} vs {fl:,.0f}/s)",
                tq / fl >= 0.85,
                "redis-py's RPUSH measured in the same process, in blocks interleaved with "
                "taskq's enqueues"
                + (
                    f"; against the floor phase, minutes apart: {tq / apart:.2f}× ({apart:,.0f}/s)"
                    if apart
                    else ""
                ),
            )
        rivals = known(peers, f"enqueue_{mode}")
        if tq and rivals:
            best = max(rivals, key=rivals.__getitem__)
            add(
                f"enqueue_{mode}_peers",
                f"one-at-a-time enqueue ({mode} producer) ahead of every peer",
                f"taskq {tq:,.0f}/s; best peer {lib_label(best)} {rivals[best]:,.0f}/s",
                tq > rivals[best],
            )
    tq, fl = med("taskq", "enqueue_bulk"), med(FLOOR, "redis_pipeline_100")
    if tq and fl:
        add(
            "bulk_floor",
            "bulk enqueue ≥ 0.5× redis-py pipelined rate",
            f"{tq / fl:.2f}× ({tq:,.0f} vs {fl:,.0f}/s)",
            tq / fl >= 0.5,
        )
    rivals = known(peers, "throughput_async", "throughput_sync")
    if rivals:
        best = max(rivals, key=rivals.__getitem__)
        for kind, factor in (("async", 10), ("sync", 5)):
            tq = med("taskq", f"throughput_{kind}")
            if tq:
                add(
                    f"throughput_{kind}",
                    f"processing, no-op {kind} tasks ≥ {factor}× the fastest peer",
                    f"{tq / rivals[best]:.1f}× ({tq:,.0f}/s vs {lib_label(best)} "
                    f"{rivals[best]:,.0f}/s)",
                    tq >= factor * rivals[best],
                )
    p99 = known(peers, "latency_p99_ms")
    tq = med("taskq", "latency_p99_ms")
    if tq and p99:
        best = min(p99, key=p99.__getitem__)
        add(
            "latency_p99",
            "pick-up latency p99 no higher than the best peer's",
            f"taskq {tq:.2f} ms; best peer {lib_label(best)} {p99[best]:.2f} ms",
            tq <= p99[best],
        )
    idle = data["metrics"].get("taskq", {}).get("_extra", {}).get("latency_idle_all_ms")
    if idle:
        pings = data["metrics"].get(FLOOR, {}).get("_extra", {}).get("ping_after_1s_all_ms")
        floor = (
            f"; redis-py's PING after 1 s of sleep, in the floor phase: median "
            f"{statistics.median(pings):.2f} ms, worst {max(pings):.2f} ms ({len(pings)} probes)"
            if pings
            else ""
        )
        add(
            "latency_idle",
            "first task after a second of idleness within 5 ms",
            f"median {statistics.median(idle):.2f} ms, worst {max(idle):.2f} ms "
            f"({len(idle)} probes)",
            max(idle) <= 5.0,
            "judged on the worst probe" + floor,
        )
    rec = data["metrics"].get("taskq", {}).get("recovery_s")
    v = data.get("versions", {}).get("taskq", {})
    lease = data["sizes"]["recovery"].get("lease") or v.get("lease_seconds", 15.0)
    renew = data["sizes"]["recovery"].get("renew") or v.get("renew_seconds", 5.0)
    if rec:
        bound = lease + renew + 2
        worst = None if rec.get("not_recovered") else max(rec["runs"])
        add(
            "recovery",
            f"recovery after SIGKILL within lease + renewal + 2 s "
            f"({lease:g} + {renew:g} + 2 = {bound:g} s)",
            "not recovered"
            if worst is None
            else f"worst {worst:.1f} s, median {rec['median']:.1f} s ({len(rec['runs'])} runs)",
            worst is not None and worst <= bound,
        )
    x = data["metrics"].get("taskq", {}).get("_extra", {})
    by_run, cpu_by_run = x.get("throughput_by_run", {}), x.get("cpu_by_run", {})

    def cost(on_key: str, off_key: str) -> tuple[float, str] | None:
        """The throughput ``on`` costs against ``off``, from the CPU time per task (worker
        process and Redis server) of the two measured back to back (each pass of each
        run): 1 - cpu_off / cpu_on; the median over the pairs. CPU time moves less than
        the rate when the host takes the machine's cores away for a while; the rates' own
        ratios are shown beside it."""
        on, off = cpu_by_run.get(on_key, {}), cpu_by_run.get(off_key, {})
        runs = [r for r in sorted(on, key=_run_order) if r in off]
        if not runs:
            return None
        costs = [1 - sum(off[r]) / sum(on[r]) for r in runs]
        won, woff = by_run.get(on_key, {}), by_run.get(off_key, {})
        walls = [1 - won[r] / woff[r] for r in runs if won.get(r) and woff.get(r)]
        detail = (
            f"CPU per task {statistics.median(sum(on[r]) for r in runs):.1f} µs on vs "
            f"{statistics.median(sum(off[r]) for r in runs):.1f} µs off (worker + Redis); "
            f"per pair {', '.join(f'{c * 100:+.1f}%' for c in costs)}; by the rates "
            f"{', '.join(f'{c * 100:+.1f}%' for c in walls)}"
        )
        return statistics.median(costs), detail

    for name, label, on_key, off_key, note, against in (
        (
            "metrics_cost_async",
            "metrics on cost at most 10% of throughput (async tasks)",
            "throughput_async",
            "throughput_async_metrics_off",
            "tracing off (its default)",
            None,
        ),
        (
            "metrics_cost_sync",
            "metrics on cost at most 10% of throughput (sync tasks)",
            "throughput_sync",
            "throughput_sync_metrics_off",
            "tracing off (its default)",
            None,
        ),
        (
            "tracing_cost_async",
            "metrics and tracing on cost at most 10% of throughput (async tasks)",
            "throughput_async_traced",
            "throughput_async_metrics_off",
            "OpenTelemetry SDK, a span per task, not exported",
            _tracing_floor,
        ),
    ):
        found = cost(on_key, off_key)
        if found is not None:
            median, detail = found
            # where a floor bounds the cost, what it leaves of the budget
            floor = against(data, cpu_by_run.get(off_key, {})) if against else ""
            add(name, label, f"{median * 100:+.1f}% ({detail})", median <= 0.10, note + floor)
    from benchmarks.goals import current_curves, goals

    return t + goals(data, current_curves())


def _tracing_floor(data: dict[str, Any], off: dict[str, list[float]]) -> str:
    """The tracing target against what the OpenTelemetry SDK alone costs a span: whether
    any instrumentation could meet it on a no-op task here."""
    span = _median(data, FLOOR, "otel_span_us")
    if span is None or not off:
        return ""
    task = statistics.median(sum(v) for v in off.values())
    budget = task / 0.9 - task  # the extra CPU per task at which throughput falls by 10%
    return (
        f"; the SDK alone costs {span:.1f} µs of CPU a span (the floors below), where 10% "
        f"of throughput allows {budget:.1f} µs on a no-op task of {task:.1f} µs: no "
        "instrumentation that makes a recording span per task meets this target here"
        if span > budget
        else f"; the SDK alone costs {span:.1f} µs a span, within the {budget:.1f} µs budget"
    )


# -- text


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ms":
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if kind == "mib":
        return f"{value:.0f}"
    if kind == "s":
        return f"{value:.1f}"
    return f"{value:g}"


def cell(data: dict[str, Any], lib: str, m: Metric, range_: bool = True) -> str:
    e = data["metrics"].get(lib, {}).get(m.key)
    if e is None:
        return "—"
    if m.key == "recovery_s":
        return _recovery_cell(e, range_)
    text = fmt(e["median"], m.fmt)
    x = data["metrics"].get(lib, {}).get("_extra", {})
    if range_ and len(e.get("runs", [])) > 1 and e["min"] != e["max"]:
        text += f" ({fmt(e['min'], m.fmt)}–{fmt(e['max'], m.fmt)})"
    if x.get(f"{m.key}_capped_s"):
        text += "†"
    return text


def _recovery_cell(e: dict[str, Any], range_: bool = True) -> str:
    """Seconds from the SIGKILL until every held task was done elsewhere, and the setting
    of the library's recovery feature it was measured with."""
    if "setting" in e and e["setting"] is None:
        if e.get("lost"):
            return "no recovery feature: the task is lost"
        text = "no recovery feature"
        if e.get("not_recovered"):
            text += f": > {e['bound_s']:.0f}"
        return text
    if e.get("not_recovered"):
        done = [r for r in e["runs"] if r is not None]
        text = f"> {e['bound_s']:.0f}" + (
            f" ({len(done)}/{len(e['runs'])} recovered)" if done else ""
        )
    else:
        text = fmt(e["median"], "s")
        if range_ and len(e.get("runs", [])) > 1 and e["min"] != e["max"]:
            text += f" ({fmt(e['min'], 's')}–{fmt(e['max'], 's')})"
    return text + (f" ({e['setting']})" if e.get("setting") else "")


def brief(scenario: str, res: dict[str, Any]) -> str:
    """One line about one measurement, for the progress log."""
    if "error" in res:
        return "error: " + str(res["error"]).strip().splitlines()[-1][:200]
    if scenario == "floor":
        return (
            f"1 cmd {res['redis_one_command_sync']:,.0f}/s, async "
            f"{res['redis_one_command_async']:,.0f}/s, pipe100 "
            f"{res['redis_pipeline_100']:,.0f}/s"
        )
    if scenario == "produce":
        parts = [
            f"{k.removeprefix('enqueue_')} {res[k]:,.0f}/s"
            for k in ("enqueue_sync", "enqueue_async", "enqueue_bulk")
            if k in res
        ]
        return ", ".join(parts)
    if scenario == "throughput":
        capped = f" (capped at {res['capped_s']}s)" if res.get("capped_s") else ""
        return (
            f"{res['throughput']:,.0f} tasks/s over {res['done']}{capped}, "
            f"RSS {res['rss_after_mib']:.0f} MiB"
        )
    if scenario == "latency":
        return (
            f"p50 {res['latency_p50_ms']:.2f} p99 {res['latency_p99_ms']:.2f} idle "
            f"{res['latency_idle_ms']:.2f} ms, RSS {res['rss_rest_mib']:.0f} MiB"
        )
    if scenario == "recovery":
        runs = res["recovery_s_runs"]
        return ", ".join("not within bound" if r is None else f"{r:.1f}s" for r in runs)
    if scenario == "memory":
        return (
            f"{res['redis_bytes_per_task']:,.0f} B/task used_memory "
            f"({res['keys_bytes_per_task']:,.0f} B/task by MEMORY USAGE of the "
            f"{res['keys']:,} keys) over {res['tasks']:,} tasks ({res['how']})"
        )
    return json.dumps(res)[:200]


def console(data: dict[str, Any]) -> str:
    """The results as plain text: medians (min–max) and each peer's ratio to taskq."""
    libs = [lib for lib in data["metrics"] if lib != FLOOR]
    lines = [
        f"\n{data['mode']} run, {data['date']}, {data['runs']} run(s) each; "
        "median (min–max); ×: the peer's best (default or tuned settings) ÷ taskq"
    ]
    for m in [*FLOOR_METRICS]:
        lines.append(f"  {m.label:<52} {cell(data, FLOOR, m):>28} {m.unit}")
    for m in [*METRICS, *TASKQ_ONLY]:
        row = [(lib, cell(data, lib, m)) for lib in libs]
        row = [(lib, c) for lib, c in row if c != "—"]
        if not row:
            continue
        lines.append(f"  {m.label} ({m.unit})" if m.unit else f"  {m.label}")
        for lib, c in row:
            # the ratio is the peer's best (default or tuned): shown beside the one it is
            best = best_of(data, base_lib(lib), m.key) if m.key in BY_KEY else None
            r = None
            if best is not None and best[0] == lib:
                r = data["ratios"].get(base_lib(lib), {}).get(m.key)
            lines.append(f"      {lib:<14} {c:<32}" + (f" ×{r:.3g}" if r is not None else ""))
    lines.append("\n  targets (issue 7):")
    for t in data["targets"]:
        mark = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        lines.append(f"    [{mark:^7}] {t['target']}: {t['value']}")
    if data["errors"]:
        lines.append(f"\n  {len(data['errors'])} measurement(s) failed; see the JSON")
    return "\n".join(lines)


def make_chart(results: Path, png: Path) -> bool:
    """Draw the ratio chart with whichever environment has matplotlib."""
    for py in (ROOT / "benchmarks/.venv-peers/bin/python", Path(sys.executable)):
        if not py.exists():
            continue
        probe = subprocess.run(
            [str(py), "-c", "import matplotlib"], capture_output=True, check=False
        )
        if probe.returncode:
            continue
        subprocess.run(
            [str(py), str(ROOT / "benchmarks" / "chart.py"), str(results), str(png)],
            check=True,
            cwd=ROOT,
        )
        return True
    print("no environment with matplotlib: chart skipped", file=sys.stderr)
    return False


def write_doc(data: dict[str, Any], path: Path, chart: Path | None) -> None:
    from benchmarks.doc import render

    path.write_text(render(data, chart.name if chart else None))


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "benchmarks/results/latest.json")
    d = json.loads(src.read_text())
    print(console(d))
    if "--doc" in sys.argv:
        png = ROOT / "docs" / "benchmarks-ratios.png"
        write_doc(d, ROOT / "docs" / "benchmarks.md", png if make_chart(src, png) else None)

#!/usr/bin/env python3
"""Redis memory per queued task, and large payloads with and without message compression
(``compress_above``), on a redis-server of this run's own (a free loopback port, no
persistence; never the Redis on 6379).

    python benchmarks/payloads.py            # 100,000 no-ops; 10 KiB, 100 KiB and 1 MiB payloads
    python benchmarks/payloads.py --quick    # 10,000 no-ops; 10 KiB and 100 KiB (a smoke run)

* **memory per queued task**: ``used_memory`` (``INFO memory``, after a ``MEMORY PURGE``,
  with the producer's connection closed) before and after enqueueing N no-op tasks of one
  integer argument (``enqueue_many``, batches of 1,000), divided by N; the stored message
  (``HSTRLEN`` of its ``msg`` field); and every key the queue holds then, with its type,
  entries, encoding and ``MEMORY USAGE``: what a queued task costs, structure by structure.
* **payloads**: for each size and content (compressible: a JSON list of records; random:
  random bytes as a base64 string), compression off and ``compress_above=4096``, in the
  order off, on, on, off (``max_payload_bytes`` the default 512 KiB, 4 MiB for 1 MiB
  payloads). Each time M tasks ``noop(i, payload)`` are enqueued in batches of about 2 MiB
  (the time of the ``enqueue_many`` calls: encoding, compression, the round trip and the
  script), ``used_memory`` per task and stored bytes per task (every ``msg`` field, read by
  a script) are read, then one burst worker in this process (concurrency 32) runs them
  all (the wall time of ``Worker.run()``, its start included). Rates are over the two
  repetitions' summed times (MB/s of payload), sizes their means. Every task must have run
  (a counter in the task and the queue's ``ok`` count), and with compression on every
  stored message of compressible content must be a zstd frame (``ZSTD_MAGIC``).

One run of each: producer, worker and redis-server share this machine's cores. Results:
``benchmarks/results/payloads.json`` and markdown tables.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import redis  # noqa: E402

from benchmarks.redis_memory import used_memory  # noqa: E402
from taskq_core import TaskQueue  # noqa: E402
from taskq_core.keys import Keys  # noqa: E402
from taskq_core.message import ZSTD_MAGIC  # noqa: E402
from taskq_core.settings import Settings  # noqa: E402
from taskq_core.task import Signature  # noqa: E402
from tests.replication.servers import Node  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "payloads.json"
PREFIX = "bench-payloads"
QUEUE = "default"
COMPRESS_ABOVE = 4096
KIB = 1024
#: max_payload_bytes: the default (512 KiB) but for payloads past it, 4 MiB (it also bounds
#: what a worker decompresses, and the worker's decompression costs more with a larger one)
DEFAULT_MAX_PAYLOAD = 512 * KIB
LARGE_MAX_PAYLOAD = 4 * 1024 * KIB
#: (payload bytes, tasks in a full run); --quick: the first two, a tenth of the tasks
SIZES = [(10 * KIB, 5000), (100 * KIB, 2000), (1024 * KIB, 200)]
KINDS = ("compressible", "random")
BATCH_BYTES = 2 * 1024 * 1024
WORKER_CONCURRENCY = 32
#: off, on, on, off for each size and content: back to back, and neither always goes first
ORDER = (False, True, True, False)
#: every stored message of a queue: count, zstd frames, bytes, smallest, largest
STORED = """
local n, magic, total, lo, hi = 0, 0, 0, -1, 0
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  local v = redis.call('HGET', KEYS[1], id)
  n = n + 1
  total = total + #v
  if string.sub(v, 1, 4) == ARGV[1] then magic = magic + 1 end
  if lo < 0 or #v < lo then lo = #v end
  if #v > hi then hi = #v end
end
return {n, magic, total, lo, hi}
"""
WORDS = (  # noqa: SIM905 - a sentence reads better than 36 quoted words
    "the quick brown fox jumps over lazy dog order invoice customer shipped pending paid "
    "refund warehouse parcel address street city country amount currency discount total "
    "review rating product item quantity price note delivery window morning evening"
).split()


class Ran:
    """Tasks run, counted by the tasks themselves (the worker runs them on its threads)."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.n += 1


def max_payload(size: int) -> int:
    return DEFAULT_MAX_PAYLOAD if size < DEFAULT_MAX_PAYLOAD - 4 * KIB else LARGE_MAX_PAYLOAD


def app(url: str, compress: bool, limit: int = DEFAULT_MAX_PAYLOAD) -> tuple[TaskQueue, Ran]:
    settings = Settings(
        broker_url=url,
        key_prefix=PREFIX,
        max_payload_bytes=limit,
        compress_above=COMPRESS_ABOVE if compress else None,
    )
    tq = TaskQueue(settings=settings)
    ran = Ran()
    tq.task(name="bench.noop")(ran)
    return tq, ran


def compressible(size: int) -> list[dict[str, Any]]:
    """JSON-ish records (an export, an order batch): at least ``size`` bytes of JSON."""
    rnd = random.Random(size)
    rows: list[dict[str, Any]] = []
    length = 2
    while length < size:
        i = len(rows)
        row = {
            "id": 100_000 + i,
            "customer": f"customer-{rnd.randrange(10_000)}",
            "email": f"user{rnd.randrange(100_000)}@example.com",
            "status": rnd.choice(["pending", "paid", "shipped", "refunded"]),
            "amount": round(rnd.uniform(1, 500), 2),
            "currency": rnd.choice(["EUR", "USD", "GBP"]),
            "tags": rnd.sample(WORDS, 3),
            "note": " ".join(rnd.choices(WORDS, k=8)),
        }
        rows.append(row)
        length += len(orjson.dumps(row)) + 1
    return rows


def incompressible(size: int) -> str:
    """Random bytes as base64 (binary data in JSON): ``size`` bytes of JSON string."""
    return base64.b64encode(os.urandom((size - 2) * 3 // 4)).decode()


def stored(c: redis.Redis, key: str) -> dict[str, int]:
    n, magic, total, lo, hi = c.eval(STORED, 1, key, ZSTD_MAGIC)
    return {"messages": n, "zstd_frames": magic, "bytes": total, "min": lo, "max": hi}


def chunks(items: Sequence[Signature], size: int) -> list[Sequence[Signature]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def enqueue(tq: TaskQueue, sigs: Sequence[Signature], batch: int) -> float:
    """Seconds the ``enqueue_many`` calls took."""
    parts = chunks(sigs, batch)
    start = time.perf_counter()
    for part in parts:
        tq.enqueue_many(part)
    return time.perf_counter() - start


def warm_up(c: redis.Redis, url: str) -> None:
    """Load every script (the script cache counts in ``used_memory``), then start empty."""
    tq, _ = app(url, True)
    try:
        noop = tq.get_task("bench.noop")
        tq.enqueue_many([noop.call(0), noop.call(1, incompressible(8 * KIB))])
        tq.worker(burst=True, handle_signals=False, concurrency=2).run()
    finally:
        tq.close()
    stored(c, Keys(PREFIX).queue(QUEUE).msg)
    c.flushdb()


def memory_per_task(c: redis.Redis, url: str, n: int) -> dict[str, Any]:
    keys = Keys(PREFIX).queue(QUEUE)
    before = used_memory(c)
    tq, _ = app(url, False)
    try:
        noop = tq.get_task("bench.noop")
        sigs = [noop.call(i) for i in range(n)]
        seconds = enqueue(tq, sigs, 1000)
    finally:
        tq.close()
    after = used_memory(c)
    held: dict[str, Any] = {}
    for raw in sorted(c.scan_iter("*")):
        key = raw.decode()
        found = c.type(key)
        kind = found.decode() if isinstance(found, bytes) else found
        size = {"list": c.llen, "hash": c.hlen, "set": c.scard, "zset": c.zcard}[kind](key)
        held[key] = {
            "type": kind,
            "entries": size,
            "encoding": (c.object("encoding", key) or b"").decode(),
            "memory_usage": c.memory_usage(key, samples=0),
        }
    newest = c.lindex(keys.ready, 0)
    one = c.hstrlen(keys.msg, newest) if newest is not None else 0
    msgs = stored(c, keys.msg)
    if held[keys.ready]["entries"] != n or msgs["messages"] != n:
        raise SystemExit(f"expected {n} queued tasks, found {held[keys.ready]} and {msgs}")
    c.flushdb()
    return {
        "tasks": n,
        "used_memory_before": before,
        "used_memory_after": after,
        "bytes_per_task": round((after - before) / n, 1),
        "stored_message_bytes": one,
        "stored_message_bytes_mean": round(msgs["bytes"] / n, 1),
        "msg_hash_bytes_per_task": round(held[keys.msg]["memory_usage"] / n, 1),
        "ready_list_bytes_per_task": round(held[keys.ready]["memory_usage"] / n, 1),
        "enqueue_per_s": round(n / seconds),
        "keys": held,
        "per_task": [
            f"one entry of the ready LIST {keys.ready} (the 32-character task id)",
            f"one field of the msg HASH {keys.msg} (the id -> the message JSON)",
        ],
        "per_queue": [
            f"{keys.stats} (HASH, counters per task name)",
            f"{keys.wake} (LIST of at most one token)",
            f"{PREFIX}:queues (SET of queue names)",
        ],
        "not_while_queued": [
            "no state entry (a queued task has none); the delayed ZSET and state HASH only "
            "for a task with a delay or ETA; an idempotency key only with idempotency_key; "
            "a gate field only with flow-control options; the result key "
            f"{PREFIX}:{{{QUEUE}}}:result:<id> once the task finished (kept result_ttl)"
        ],
    }


def payload_case(
    c: redis.Redis, url: str, size: int, kind: str, payload: Any, m: int, compress: bool
) -> dict[str, Any]:
    keys = Keys(PREFIX).queue(QUEUE)
    batch = max(1, min(500, BATCH_BYTES // size))
    payload_bytes = len(orjson.dumps(payload))
    before = used_memory(c)
    tq, _ = app(url, compress, max_payload(size))
    try:
        noop = tq.get_task("bench.noop")
        sigs = [noop.call(i, payload) for i in range(m)]
        enqueue_s = enqueue(tq, sigs, batch)
    finally:
        tq.close()
    after = used_memory(c)
    msgs = stored(c, keys.msg)
    if msgs["messages"] != m:
        raise SystemExit(f"{kind} {size}: {msgs['messages']} messages stored, not {m}")
    if compress and kind == "compressible" and msgs["zstd_frames"] != m:
        raise SystemExit(f"{kind} {size}: {msgs['zstd_frames']} of {m} stored compressed")
    if not compress and msgs["zstd_frames"]:
        raise SystemExit(f"{kind} {size}: compressed messages with compression off")
    tq, ran = app(url, compress, max_payload(size))
    try:
        start = time.perf_counter()
        tq.worker(burst=True, handle_signals=False, concurrency=WORKER_CONCURRENCY).run()
        run_s = time.perf_counter() - start
        (info,) = tq.broker.queue_info([QUEUE])
    finally:
        tq.close()
    ok = info.stats.get("ok", 0)
    if ran.n != m or ok != m or info.ready or info.leased or info.dead:
        raise SystemExit(f"{kind} {size}: ran {ran.n}, ok {ok} of {m}; left {info}")
    left = used_memory(c) - before
    c.flushdb()
    return {
        "payload": size,
        "kind": kind,
        "compress_above": COMPRESS_ABOVE if compress else None,
        "tasks": m,
        "batch": batch,
        "max_payload_bytes": max_payload(size),
        "payload_bytes": payload_bytes,
        "stored_bytes_per_task": round(msgs["bytes"] / m, 1),
        "stored_min": msgs["min"],
        "stored_max": msgs["max"],
        "zstd_frames": msgs["zstd_frames"],
        "used_memory_per_task": round((after - before) / m, 1),
        "enqueue_per_s": round(m / enqueue_s, 1),
        "enqueue_mb_per_s": round(m * payload_bytes / enqueue_s / 1e6, 1),
        "worker_per_s": round(m / run_s, 1),
        "worker_mb_per_s": round(m * payload_bytes / run_s / 1e6, 1),
        "ran": ran.n,
        "left_after_run_per_task": round(left / m, 1),
        "enqueue_s": enqueue_s,
        "run_s": run_s,
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One setting's repetitions as one row: rates over their summed times, sizes their
    means (they repeat to the byte), each repetition's own rates kept beside."""
    first, m, k = runs[0], runs[0]["tasks"], len(runs)
    enqueue_s, run_s = sum(r["enqueue_s"] for r in runs), sum(r["run_s"] for r in runs)
    size = first["payload_bytes"]

    def mean(key: str) -> float:
        return round(float(sum(r[key] for r in runs)) / k, 1)

    return {
        **{key: first[key] for key in ("payload", "kind", "compress_above", "tasks", "batch")},
        "repetitions": k,
        "max_payload_bytes": first["max_payload_bytes"],
        "payload_bytes": size,
        "stored_bytes_per_task": mean("stored_bytes_per_task"),
        "stored_min": min(r["stored_min"] for r in runs),
        "stored_max": max(r["stored_max"] for r in runs),
        "zstd_frames": [r["zstd_frames"] for r in runs],
        "used_memory_per_task": mean("used_memory_per_task"),
        "enqueue_per_s": round(k * m / enqueue_s, 1),
        "enqueue_mb_per_s": round(k * m * size / enqueue_s / 1e6, 1),
        "worker_per_s": round(k * m / run_s, 1),
        "worker_mb_per_s": round(k * m * size / run_s / 1e6, 1),
        "ran": [r["ran"] for r in runs],
        "left_after_run_per_task": mean("left_after_run_per_task"),
        "each": [
            {key: r[key] for key in ("enqueue_per_s", "worker_per_s", "used_memory_per_task")}
            for r in runs
        ],
    }


def label(size: int) -> str:
    return f"{size // KIB} KiB" if size < 1024 * KIB else f"{size // (1024 * KIB)} MiB"


def tables(out: dict[str, Any]) -> str:
    mem = out["memory_per_task"]
    lines = [
        f"| {mem['tasks']:,} queued no-op tasks (one integer argument) | bytes per task |",
        "|---|---|",
        f"| Redis `used_memory`, after − before | {mem['bytes_per_task']:,} |",
        f"| stored message (`HSTRLEN` of its `msg` field) | {mem['stored_message_bytes']} |",
        f"| `msg` hash (`MEMORY USAGE`) | {mem['msg_hash_bytes_per_task']} |",
        f"| `ready` list (`MEMORY USAGE`) | {mem['ready_list_bytes_per_task']} |",
        "",
        f"Enqueued at {mem['enqueue_per_s']:,} tasks/s (`enqueue_many` of 1,000).",
        "",
        "| payload | content | compression | stored bytes/task | Redis memory/task "
        "| enqueue tasks/s | enqueue MB/s | worker tasks/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in out["payloads"]:
        on = f"above {r['compress_above']}" if r["compress_above"] else "off"
        lines.append(
            f"| {label(r['payload'])} × {r['tasks']:,} ×{r['repetitions']} | {r['kind']} | {on} "
            f"| {r['stored_bytes_per_task']:,.0f} | {r['used_memory_per_task']:,.0f} "
            f"| {r['enqueue_per_s']:,.0f} | {r['enqueue_mb_per_s']:,.1f} "
            f"| {r['worker_per_s']:,.0f} |"
        )
    lines += [
        "",
        "| payload | content | stored, on / off | memory, on / off | enqueue, on / off "
        "| worker, on / off |",
        "|---|---|---|---|---|---|",
    ]
    for c in out["compression"]:
        lines.append(
            f"| {label(c['payload'])} | {c['kind']} | {c['stored_ratio']:.3f} "
            f"| {c['memory_ratio']:.3f} | {c['enqueue_ratio']:.2f} | {c['worker_ratio']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 no-ops; 10 and 100 KiB")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    sizes = [(s, m // 10) for s, m in SIZES[:2]] if args.quick else SIZES
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Path(tmp), "bench", ["--save", "", "--appendonly", "no"])
        node.start()
        try:
            url = f"redis://127.0.0.1:{node.port}/0"
            c = redis.Redis(port=node.port, socket_timeout=120)
            version = c.info("server")["redis_version"]
            warm_up(c, url)
            memory = memory_per_task(c, url, n)
            rows: list[dict[str, Any]] = []
            for size, m in sizes:
                for kind in KINDS:
                    payload = compressible(size) if kind == "compressible" else incompressible(size)
                    done: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
                    for compress in ORDER:
                        done[compress].append(
                            payload_case(c, url, size, kind, payload, m, compress)
                        )
                    rows += [combine(done[False]), combine(done[True])]
            c.close()
        finally:
            node.kill()
    compared = []
    for off, on in zip(rows[::2], rows[1::2], strict=True):
        compared.append(
            {
                "payload": off["payload"],
                "kind": off["kind"],
                "stored_ratio": round(
                    on["stored_bytes_per_task"] / off["stored_bytes_per_task"], 4
                ),
                "memory_ratio": round(on["used_memory_per_task"] / off["used_memory_per_task"], 4),
                "enqueue_ratio": round(on["enqueue_per_s"] / off["enqueue_per_s"], 3),
                "worker_ratio": round(on["worker_per_s"] / off["worker_per_s"], 3),
            }
        )
    out: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "note": f"{os.cpu_count()} cores shared by the producer, the worker (in the same "
            "process, after the producer) and redis-server; one run, each payload setting "
            "twice (off, on, on, off)",
            "python": sys.version.split()[0],
            "redis": version,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "memory_per_task": memory,
        "payloads": rows,
        "compression": compared,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(tables(out))
    print(f"\n{out['seconds']} s; written to {args.output}")


if __name__ == "__main__":
    main()

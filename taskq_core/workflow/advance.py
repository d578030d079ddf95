"""How a workflow's record advances: ``lua/_workflow.lua`` in Python, on a record of the
fields ``plan.py`` lists, for the brokers whose workflow logic runs in Python (the in-memory
broker under its lock, PostgreSQL in one transaction with the record's row locked).

:class:`Advance` holds the record logic; what it does to queues (a step's task put in its
queue, the tasks of cancelled steps taken out, a finished workflow kept for its TTL and
announced) goes through four methods each broker implements. The functions below are the
broker operations built on it: start, cancel, retry, and a step's end read from an outbox.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from .plan import field_int, task_id
from .plan import field_json as _json

Record = dict[str, bytes]
_FAILED_BEFORE = b'{"type":"Cancelled","message":"not run: a step before it failed"}'
_CANCELLED = b'{"type":"Cancelled","message":"its task was cancelled"}'


def _int(raw: bytes | None, default: int = 0) -> int:
    found = field_int(raw, default)
    return default if found is None else found


def _flat(spec: Any, out: list[int]) -> list[int]:
    if type(spec) is int:
        out.append(spec)
    elif type(spec) is list:
        for s in spec:
            _flat(s, out)
    return out


def _render(spec: Any, vals: dict[int, bytes]) -> bytes:
    if type(spec) is int:
        return vals.get(spec, b"null")
    return b"[" + b",".join(_render(s, vals) for s in spec) + b"]"


class Advance(abc.ABC):
    """One advance of one workflow (the Lua scripts' ``c``): ``rec`` is changed in place;
    ``changed`` names the fields written or removed since it was read."""

    def __init__(self, wid: str, rec: Record, now: int) -> None:
        self.w = wid
        self.rec = rec
        self.now = now
        self.limit = _int(rec.get("limit"), 1 << 20)
        self.queues: list[str] = _json(rec.get("queues")) or []
        self.failure: bytes | None = None
        self.changed: set[str] = set()

    # -- what the broker does to its queues

    @abc.abstractmethod
    def put(self, queue: str, tid: str, body: bytes, gate: bytes, name: str) -> None:
        """Step task ``tid`` goes into ``queue``, as an enqueue would put it."""

    @abc.abstractmethod
    def unqueue(self, queue: str, ids: list[str]) -> None:
        """The tasks of cancelled steps: a running one is asked to stop, the others go."""

    @abc.abstractmethod
    def finished(self, ttl_ms: int) -> None:
        """The workflow reached its final status: kept ``ttl_ms``, then gone; announced."""

    @abc.abstractmethod
    def count(self, queue: str, name: str) -> None:
        """Add one to counter ``name`` of ``queue``."""

    @abc.abstractmethod
    def keep(self) -> None:
        """A finished workflow runs again (a retry): kept until it finishes again."""

    # -- the record

    def d(self, i: int) -> Any:
        d = _json(self.rec.get(f"d:{i}"))
        return d if type(d) is dict else None

    def s(self, i: int) -> str:
        return self.rec.get(f"s:{i}", b"").decode()

    def set(self, **fields: Any) -> None:
        for k, v in fields.items():
            self.rec[k] = v if isinstance(v, bytes) else str(v).encode()
            self.changed.add(k)

    def drop(self, *names: str) -> None:
        for k in names:
            if self.rec.pop(k, None) is not None:
                self.changed.add(k)

    def incr(self, field: str, by: int) -> int:
        n = _int(self.rec.get(field)) + by
        self.set(**{field: b"%d" % n})
        return n

    def values(self, idx: list[int]) -> dict[int, bytes]:
        vals: dict[int, bytes] = {}
        for i in idx:
            s = self.s(i)
            if s == "succeeded":
                vals[i] = self.rec.get(f"r:{i}", b"null")
            elif s in ("failed", "cancelled"):
                vals[i] = b'{"taskq_failed":' + self.rec.get(f"e:{i}", _FAILED_BEFORE) + b"}"
            else:
                vals[i] = b"null"
        return vals

    def release(self, i: int) -> None:
        d = self.d(i)
        tmpl = self.rec.get(f"m:{i}")
        self.set(**{f"s:{i}": "queued", f"t0:{i}": self.now})
        if (
            d is None
            or tmpl is None
            or type(d.get("q")) is not int
            or not (0 <= d["q"] < len(self.queues))
        ):
            self.end(
                i,
                "failed",
                b'{"type":"BadWorkflow","message":"step %d is not stored as taskq writes it"}' % i,
            )
            return
        extra = b',"wf_in":{"at":%d' % self.now
        feed, cond = d.get("feed"), d.get("cond")
        if d.get("kind") == "errback":
            extra += b',"input":' + (self.failure or b"null")
        else:
            idx: list[int] = []
            _flat(feed, idx)
            _flat(cond, idx)
            vals = self.values(idx)
            if feed is not None:
                data = _render(feed, vals)
                if len(data) > self.limit:
                    message = (
                        f"the input of step {i} ({d.get('name')}), the results of the steps "
                        f"before it, is {len(data)} bytes, over the payload limit of "
                        f"{self.limit} bytes"
                    )
                    self.end(
                        i, "failed", orjson.dumps({"type": "PayloadTooLarge", "message": message})
                    )
                    return
                extra += b',"input":' + data
            if cond is not None:
                extra += b',"cond":' + _render(cond, vals)
        tid = task_id(self.w, i, _int(self.rec.get(f"g:{i}")))
        body = tmpl[:-1] + extra + b"}}"
        self.put(self.queues[d["q"]], tid, body, self.rec.get(f"gt:{i}", b""), str(d.get("name")))

    def dep_done(self, j: int) -> None:
        if self.incr(f"w:{j}", -1) <= 0 and self.s(j) == "pending":
            self.release(j)

    def cancel_all(self) -> None:
        n = _int(self.rec.get("n"))
        byq: dict[int, list[str]] = {}
        cancelled = 0
        for i in range(n):
            s = self.s(i)
            if s in ("pending", "queued"):
                self.set(**{f"s:{i}": "cancelled", f"t1:{i}": self.now})
                cancelled += 1
                d = self.d(i)
                if s == "queued" and d is not None and type(d.get("q")) is int:
                    byq.setdefault(d["q"], []).append(
                        task_id(self.w, i, _int(self.rec.get(f"g:{i}")))
                    )
        self.incr("left", -cancelled)
        for q, ids in byq.items():
            if 0 <= q < len(self.queues):
                self.unqueue(self.queues[q], ids)

    def errback(self, i: int, err: bytes | None) -> None:
        eb = _int(self.rec.get("errback"), -1)
        if eb < 0 or self.s(eb) != "pending":
            return
        d = self.d(i) or {}
        self.failure = (
            b'{"workflow":'
            + orjson.dumps(self.w)
            + b',"step":%d,"task":' % i
            + orjson.dumps(str(d.get("name")))
            + b',"error":'
            + (err or b"null")
            + b"}"
        )
        self.incr("left", 1)
        self.release(eb)

    def cut(self, nexts: list[int]) -> None:
        stack = list(nexts)
        while stack:
            j = stack.pop()
            if self.s(j) != "pending":
                continue
            dj = self.d(j)
            if dj is not None and dj.get("tol") == 1:
                self.dep_done(j)
            else:
                self.set(**{f"s:{j}": "cancelled", f"t1:{j}": self.now})
                self.incr("left", -1)
                if dj is not None and type(dj.get("next")) is list:
                    stack.extend(dj["next"])

    def check_done(self) -> None:
        if _int(self.rec.get("left")) > 0:
            return
        if self.rec.get("status") == b"running":
            if "failing" in self.rec:
                self.set(status="failed")
                fi = _int(self.rec.get("failed_step"))
                self.errback(fi, self.rec.get(f"e:{fi}"))
                if _int(self.rec.get("left")) > 0:
                    return
            else:
                self.set(status="succeeded")
        if "finished" in self.rec:
            return
        self.set(finished=self.now)
        if self.queues:
            self.count(self.queues[0], f"wf_{self.rec['status'].decode()}")
        self.finished(_int(self.rec.get("ttl"), 86_400_000))

    def end(self, i: int, status: str, payload: bytes) -> None:
        """Step ``i``'s task reached a final outcome: ``status`` succeeded | skipped |
        failed | cancelled, ``payload`` its result or error (JSON). Counted once."""
        if self.s(i) != "queued":
            return
        self.set(**{f"s:{i}": status, f"t1:{i}": self.now})
        if status == "succeeded":
            self.set(**{f"r:{i}": payload})
        elif status != "skipped":
            self.set(**{f"e:{i}": payload})
        self.incr("left", -1)
        d = self.d(i) or {}
        nexts: list[int] = d["next"] if type(d.get("next")) is list else []
        running = self.rec.get("status") == b"running"
        if status in ("succeeded", "skipped"):
            if running:
                for j in nexts:
                    self.dep_done(j)
        elif i != _int(self.rec.get("errback"), -1) and running:
            blocked = not nexts or any((self.d(j) or {}).get("tol") != 1 for j in nexts)
            if not blocked:
                for j in nexts:
                    self.dep_done(j)
            else:
                if "failed_step" not in self.rec:
                    self.set(failed_step=b"%d" % i)
                if self.rec.get("policy") == b"continue":
                    self.set(failing=b"1")
                    self.cut(nexts)
                else:
                    self.set(status="failed")
                    self.cancel_all()
                    self.errback(i, payload)
        self.check_done()


# -- the operations


def start(run: Advance, roots: Iterable[int]) -> None:
    """A workflow just stored: its first steps released (wf_start.lua)."""
    if run.queues:
        run.count(run.queues[0], "wf_started")
    for i in roots:
        run.release(i)
    run.check_done()


def cancel(run: Advance) -> str:
    """'cancelled', or 'was:' and the status that prevented it (wf_cancel.lua)."""
    status = run.rec.get("status", b"").decode()
    if status != "running":
        return f"was:{status}"
    run.set(status="cancelled")
    run.cancel_all()
    run.check_done()
    return "cancelled"


def retry(run: Advance, steps: Sequence[tuple[int, int, bytes]]) -> int:
    """Run ``steps`` (index, generation read, new message) again: how many, or -1 when the
    workflow changed since it was read (wf_retry.lua)."""
    rec = run.rec
    if rec.get("status") not in (b"failed", b"cancelled"):
        return -1
    eb = _int(rec.get("errback"), -1)
    for index, gen, _ in steps:
        s = run.s(index)
        ok = s in ("failed", "cancelled") or (index == eb and s != "pending")
        if _int(rec.get(f"g:{index}")) != gen or not ok:
            return -1
    again = []
    for index, gen, body in steps:
        if index == eb and run.s(index) == "queued":
            run.incr("left", -1)
        again.append(index)
        run.set(**{f"s:{index}": "pending", f"g:{index}": gen + 1, f"m:{index}": body})
        run.drop(*(f"{f}:{index}" for f in ("e", "r", "t0", "t1")))
    run.drop("failed_step", "failing", "finished")
    run.set(status="running")
    run.keep()
    ready = []
    counted = 0
    for i in again:
        if i == eb:
            continue
        counted += 1
        d = run.d(i) or {}
        deps: list[int] = d["deps"] if type(d.get("deps")) is list else []
        waiting = len([x for x in deps if run.s(x) not in ("succeeded", "skipped")])
        run.set(**{f"w:{i}": b"%d" % waiting})
        if waiting == 0:
            ready.append(i)
    run.incr("left", counted)
    if run.queues:
        run.count(run.queues[0], "wf_retried")
    for i in ready:
        run.release(i)
    run.check_done()
    return counted


def is_current(run: Advance, tid: str, step: int) -> bool:
    """Whether ``tid`` is the task of step ``step``'s present run (a workflow retried runs
    its step again under a new task id)."""
    return task_id(run.w, step, _int(run.rec.get(f"g:{step}"))) == tid


def end_unsettled(
    run: Advance, tid: str, step: int, task_state: str | None, error: bytes | None
) -> bool:
    """Step ``step``'s task ``tid`` ended outside a settle that carried its step (dead-
    lettered at fetch or as poison, unreadable, cancelled by id): its workflow advances
    from what the task's row says (wf_end.lua). False for an earlier run's task."""
    if not is_current(run, tid, step):
        return False
    status, payload = "cancelled", _CANCELLED
    if task_state in ("dead", "failed"):
        err = (_json(error) or {}).get("error") or {}
        status = "failed"
        payload = orjson.dumps(
            {"type": str(err.get("type", "Dead")), "message": str(err.get("message", ""))}
        )
    run.end(step, status, payload)
    return True


__all__ = ["Advance", "Record", "cancel", "end_unsettled", "is_current", "retry", "start"]

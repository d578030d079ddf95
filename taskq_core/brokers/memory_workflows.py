"""The in-memory broker's workflows: ``lua/_workflow.lua`` in Python, on a record of the same
fields (``workflow/plan.py``), advanced under the broker's lock in the same step that
settles a step's task. Mixed into :class:`~taskq_core.brokers.memory.MemoryBroker`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..workflow.plan import field_int, parse_task_id, task_id
from ..workflow.plan import field_json as _json
from .memory_records import mono_ms

if TYPE_CHECKING:
    from ..workflow.builder import StartRequest
    from .base import Outcome
    from .memory_state import QueueState

Record = dict[str, bytes]
_FAILED_BEFORE = b'{"type":"Cancelled","message":"not run: a step before it failed"}'


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


class _Run:
    """One advance of one workflow (the Lua scripts' ``c``)."""

    def __init__(self, broker: MemoryWorkflows, wid: str, rec: Record, now: int) -> None:
        self.b = broker
        self.w = wid
        self.rec = rec
        self.now = now
        self.limit = _int(rec.get("limit"), 1 << 20)
        self.queues: list[str] = _json(rec.get("queues")) or []
        self.failure: bytes | None = None

    def d(self, i: int) -> Any:
        d = _json(self.rec.get(f"d:{i}"))
        return d if type(d) is dict else None

    def s(self, i: int) -> str:
        return self.rec.get(f"s:{i}", b"").decode()

    def set(self, **fields: Any) -> None:
        for k, v in fields.items():
            self.rec[k] = v if isinstance(v, bytes) else str(v).encode()

    def incr(self, field: str, by: int) -> int:
        n = _int(self.rec.get(field)) + by
        self.rec[field] = b"%d" % n
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
        self.rec[f"s:{i}"] = b"queued"
        self.rec[f"t0:{i}"] = b"%d" % self.now
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
        queue = self.queues[d["q"]]
        store = self.b._store(queue)
        store.msg[tid] = tmpl[:-1] + extra + b"}}"
        store.gates.store(tid, self.rec.get(f"gt:{i}", b""))
        store.ready.appendleft(tid)
        store.state[tid] = "queued"
        store.incr(f"enqueued|{d.get('name')}")
        self.b._wake(queue, store)

    def dep_done(self, j: int) -> None:
        if self.incr(f"w:{j}", -1) <= 0 and self.s(j) == "pending":
            self.release(j)

    def unqueue(self, store: QueueState, ids: list[str]) -> None:
        gone = 0
        for tid in ids:
            if tid in store.leased:
                if tid not in store.abort:
                    store.abort[tid] = self.now
                    store.incr("abort_requested")
                continue
            state = store.state.get(tid)
            if state in ("scheduled", "throttled"):
                store.delayed.remove(tid)
            elif state == "waiting":
                store.gates.unpark(tid)
            if tid in store.suspect:
                store.suspect.remove(tid)
            if tid in store.ready:
                store.ready.remove(tid)
            if store.msg.pop(tid, None) is not None:
                gone += 1
            for per_task in (store.state, store.fence, store.unaccounted):
                per_task.pop(tid, None)
            store.gates.forget(tid)
        if gone:
            store.incr("cancelled", gone)

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
                self.unqueue(self.b._store(self.queues[q]), ids)

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
                self.rec["status"] = b"failed"
                fi = _int(self.rec.get("failed_step"))
                self.errback(fi, self.rec.get(f"e:{fi}"))
                if _int(self.rec.get("left")) > 0:
                    return
            else:
                self.rec["status"] = b"succeeded"
        if "finished" in self.rec:
            return
        self.rec["finished"] = b"%d" % self.now
        self.b._wf_expire(self.w, _int(self.rec.get("ttl"), 86_400_000))
        if self.queues:
            self.b._store(self.queues[0]).incr(f"wf_{self.rec['status'].decode()}")
        self.b._announce()

    def end(self, i: int, status: str, payload: bytes) -> None:
        if self.s(i) != "queued":
            return
        self.set(**{f"s:{i}": status, f"t1:{i}": self.now})
        if status == "succeeded":
            self.rec[f"r:{i}"] = payload
        elif status != "skipped":
            self.rec[f"e:{i}"] = payload
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
                self.rec.setdefault("failed_step", b"%d" % i)
                if self.rec.get("policy") == b"continue":
                    self.rec["failing"] = b"1"
                    self.cut(nexts)
                else:
                    self.rec["status"] = b"failed"
                    self.cancel_all()
                    self.errback(i, payload)
        self.check_done()


class MemoryWorkflows:
    """The workflow methods of the in-memory broker (its lock held, as in its settle)."""

    _lock: threading.Lock

    if TYPE_CHECKING:

        def _store(self, name: str) -> QueueState: ...
        def _wake(self, name: str, store: QueueState) -> None: ...
        def _announce(self) -> None: ...

    def _init_workflows(self) -> None:
        self._workflows: dict[str, tuple[Record, int | None]] = {}

    def _wf(self, wid: str) -> Record | None:
        found = self._workflows.get(wid)
        if found is None:
            return None
        if found[1] is not None and found[1] <= mono_ms():
            del self._workflows[wid]
            return None
        return found[0]

    def _wf_expire(self, wid: str, ttl_ms: int) -> None:
        found = self._workflows.get(wid)
        if found is not None:
            self._workflows[wid] = (found[0], mono_ms() + ttl_ms)

    def _wf_step_end(self, outcome: Outcome, now_ms: int) -> None:
        """Called by settle, lock held, for an accepted outcome of a step."""
        step = outcome.step
        assert step is not None
        rec = self._wf(step.workflow)
        if rec is not None:
            _Run(self, step.workflow, rec, now_ms).end(step.step, step.status, step.payload)

    def wf_start(self, req: StartRequest, now_ms: int) -> bool:
        from .memory import _now

        with self._lock:
            if self._wf(req.id) is not None:
                return False
            rec: Record = dict(req.fields)
            self._workflows[req.id] = (rec, None)
            run = _Run(self, req.id, rec, _now(now_ms))
            if req.queues:
                self._store(req.queues[0]).incr("wf_started")
            for i in req.roots:
                run.release(i)
            run.check_done()
            return True

    async def wf_start_async(self, req: StartRequest, now_ms: int) -> bool:
        return self.wf_start(req, now_ms)

    def wf_get(self, workflow: str) -> Record | None:
        with self._lock:
            rec = self._wf(workflow)
            return dict(rec) if rec is not None else None

    async def wf_get_async(self, workflow: str) -> Record | None:
        return self.wf_get(workflow)

    def wf_cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        from .memory import _now

        with self._lock:
            rec = self._wf(workflow)
            if rec is None:
                return ""
            status = rec.get("status", b"").decode()
            if status != "running":
                return f"was:{status}"
            rec["status"] = b"cancelled"
            run = _Run(self, workflow, rec, _now(now_ms))
            run.cancel_all()
            run.check_done()
            return "cancelled"

    async def wf_cancel_async(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        return self.wf_cancel(workflow, queues, now_ms)

    def wf_retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        from .memory import _now

        with self._lock:
            rec = self._wf(workflow)
            if rec is None:
                return -2
            if rec.get("status") not in (b"failed", b"cancelled"):
                return -1
            run = _Run(self, workflow, rec, _now(now_ms))
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
                run.set(**{f"s:{index}": "pending", f"g:{index}": gen + 1})
                rec[f"m:{index}"] = body
                for f in ("e", "r", "t0", "t1"):
                    rec.pop(f"{f}:{index}", None)
            for f in ("failed_step", "failing", "finished"):
                rec.pop(f, None)
            rec["status"] = b"running"
            self._workflows[workflow] = (rec, None)
            ready = []
            counted = 0
            for i in again:
                if i == eb:
                    continue
                counted += 1
                d = run.d(i) or {}
                deps: list[int] = d["deps"] if type(d.get("deps")) is list else []
                waiting = len([x for x in deps if run.s(x) not in ("succeeded", "skipped")])
                rec[f"w:{i}"] = b"%d" % waiting
                if waiting == 0:
                    ready.append(i)
            run.incr("left", counted)
            if run.queues:
                self._store(run.queues[0]).incr("wf_retried")
            for i in ready:
                run.release(i)
            run.check_done()
            return counted

    def wf_drain(self, queues: Sequence[str], now_ms: int) -> int:
        """Advance the workflows of steps that ended outside a settle (wf_end.lua)."""
        from .memory import _now

        n = 0
        with self._lock:
            for queue in queues:
                store = self._store(queue)
                taken, store.wfout = store.wfout[:100], store.wfout[100:]
                for tid in taken:
                    parsed = parse_task_id(tid)
                    rec = self._wf(parsed[0]) if parsed else None
                    if parsed is None or rec is None:
                        continue
                    wid, step, _ = parsed
                    run = _Run(self, wid, rec, _now(now_ms))
                    if task_id(wid, step, _int(rec.get(f"g:{step}"))) != tid:
                        continue
                    status, payload = (
                        "cancelled",
                        b'{"type":"Cancelled","message":"its task was cancelled"}',
                    )
                    if store.state.get(tid) in ("dead", "failed"):
                        err = (_json(store.error.get(tid)) or {}).get("error") or {}
                        status = "failed"
                        payload = orjson.dumps(
                            {
                                "type": str(err.get("type", "Dead")),
                                "message": str(err.get("message", "")),
                            }
                        )
                    run.end(step, status, payload)
                    n += 1
        return n

    async def wf_drain_async(self, queues: Sequence[str], now_ms: int) -> int:
        return self.wf_drain(queues, now_ms)

    async def wf_retry_async(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        return self.wf_retry(workflow, queues, steps, now_ms)


__all__ = ["MemoryWorkflows"]

"""``WorkflowHandle``: what ``enqueue`` of a workflow returns, and ``describe``, the plain
description of a workflow that the handle, the CLI and ``GET <prefix>/workflows/{id}``
show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ResultTimeout, WorkflowFailed, WorkflowNotFound
from .plan import field_int, task_id
from .plan import field_json as _json

if TYPE_CHECKING:
    from ..app import TaskQueue

#: a workflow's statuses; ``unknown`` when the broker has no record of it
STATUSES = ("running", "succeeded", "failed", "cancelled")
FINAL = frozenset({"succeeded", "failed", "cancelled"})
#: a step's states: ``queued`` is released to its queue (waiting for a worker or running)
STEP_STATES = ("pending", "queued", "succeeded", "failed", "skipped", "cancelled")

Record = dict[str, bytes]


def _int(raw: bytes | None) -> int | None:
    return field_int(raw)


def describe(wid: str, rec: Record | None, *, results: bool = True) -> dict[str, Any] | None:
    """A workflow's record as a JSON-safe description (``results``: with each step's
    result; errors are always shown, their text as the task recorded it, redacted)."""
    if not rec:
        return None
    n = _int(rec.get("n")) or 0
    eb = _int(rec.get("errback"))
    eb = eb if eb is not None and eb >= 0 else None
    queues = _json(rec.get("queues")) or []
    steps = []
    counts: dict[str, int] = {}
    for i in [*range(n), *([eb] if eb is not None else [])]:
        d = _json(rec.get(f"d:{i}"))
        if type(d) is not dict:
            d = {}
        state = rec.get(f"s:{i}", b"unknown").decode(errors="replace")
        counts[state] = counts.get(state, 0) + 1
        q = d.get("q")
        step: dict[str, Any] = {
            "index": i,
            "task": d.get("name"),
            "kind": d.get("kind", "task"),
            "queue": queues[q] if type(q) is int and 0 <= q < len(queues) else None,
            "status": state,
            "after": d.get("deps", []),
            "task_id": task_id(wid, i, _int(rec.get(f"g:{i}")) or 0),
            "released_at": _int(rec.get(f"t0:{i}")),
            "finished_at": _int(rec.get(f"t1:{i}")),
        }
        if f"e:{i}" in rec:
            step["error"] = _json(rec[f"e:{i}"])
        if results and f"r:{i}" in rec:
            step["result"] = _json(rec[f"r:{i}"])
        steps.append(step)
    failed = _int(rec.get("failed_step"))
    out: dict[str, Any] = {
        "id": wid,
        "status": rec.get("status", b"unknown").decode(errors="replace"),
        "policy": rec.get("policy", b"stop").decode(errors="replace"),
        "created_at": _int(rec.get("created")),
        "finished_at": _int(rec.get("finished")),
        "failed_step": failed,
        "counts": counts,
        "steps": steps,
    }
    if results and out["status"] == "succeeded":
        out["result"] = output(rec)
    return out


def output(rec: Record) -> Any:
    """The workflow's result: its last piece's result (a list for several)."""
    spec = _json(rec.get("out"))

    def render(s: Any) -> Any:
        if type(s) is int:
            return _json(rec.get(f"r:{s}"))
        if type(s) is list:
            return [render(x) for x in s]
        return None

    return render(spec)


def _failure(wid: str, done: dict[str, Any]) -> WorkflowFailed:
    index = done.get("failed_step")
    step = next((s for s in done["steps"] if s["index"] == index), None)
    error = (step or {}).get("error") or {}
    if done["status"] == "cancelled" and step is None:
        error = {"type": "Cancelled", "message": "the workflow was cancelled"}
    return WorkflowFailed(wid, done["status"], step, error if type(error) is dict else {})


class WorkflowHandle:
    """A workflow in the broker. Cheap to create: it holds only the id."""

    __slots__ = ("app", "id")

    def __init__(self, app: TaskQueue, workflow_id: str) -> None:
        self.app = app
        self.id = workflow_id

    def __repr__(self) -> str:
        return f"WorkflowHandle(id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkflowHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _missing(self) -> WorkflowNotFound:
        return WorkflowNotFound(f"no workflow {self.id} (or its record expired)")

    # -- blocking

    def info(self, *, results: bool = True) -> dict[str, Any]:
        """Status, steps (states, timings, errors, results); raises WorkflowNotFound."""
        found = describe(self.id, self.app.broker.wf_get(self.id), results=results)
        if found is None:
            raise self._missing()
        return found

    def status(self) -> str:
        rec = self.app.broker.wf_get(self.id)
        return rec.get("status", b"unknown").decode() if rec else "unknown"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to finish (without polling: the broker announces it) and
        return its result; raises :class:`WorkflowFailed` if it failed or was cancelled,
        :class:`ResultTimeout` if it has not finished within ``timeout`` seconds."""

        def check() -> dict[str, Any] | None:
            rec = self.app.broker.wf_get(self.id)
            return _finished(self.id, rec)

        done = self.app.broker.wait_for(f"wf:{self.id}", self.id, _forever(timeout), check)
        return self._outcome(done, timeout)

    def cancel(self) -> bool:
        """Cancel the running workflow: steps not started never run, running ones are asked
        to stop (cooperatively: see ``TaskHandle.abort``), the error callback does not run.
        True if it was cancelled now; False if it had finished (see :meth:`status`) or is
        unknown."""
        rec = self.app.broker.wf_get(self.id)
        if not rec:
            return False
        return self.app.broker.wf_cancel(self.id, _queues(rec), _ms(self.app)) == "cancelled"

    def retry(self) -> int:
        """Run a failed or cancelled workflow again from the steps that did not succeed
        (each under a new task id); returns how many. Raises WorkflowNotFound, or
        ValueError when the workflow is not failed or cancelled."""
        rec = self.app.broker.wf_get(self.id)
        if not rec:
            raise self._missing()
        steps = _retry_steps(self.app, self.id, rec)
        n = self.app.broker.wf_retry(self.id, _queues(rec), steps, _ms(self.app))
        return _retried(self.id, rec, n)

    # -- async

    async def info_async(self, *, results: bool = True) -> dict[str, Any]:
        rec = await self.app.broker.wf_get_async(self.id)
        found = describe(self.id, rec, results=results)
        if found is None:
            raise self._missing()
        return found

    async def status_async(self) -> str:
        rec = await self.app.broker.wf_get_async(self.id)
        return rec.get("status", b"unknown").decode() if rec else "unknown"

    async def result_async(self, timeout: float | None = None) -> Any:
        async def check() -> dict[str, Any] | None:
            return _finished(self.id, await self.app.broker.wf_get_async(self.id))

        done = await self.app.broker.wait_for_async(
            f"wf:{self.id}", self.id, _forever(timeout), check
        )
        return self._outcome(done, timeout)

    async def cancel_async(self) -> bool:
        rec = await self.app.broker.wf_get_async(self.id)
        if not rec:
            return False
        answer = await self.app.broker.wf_cancel_async(self.id, _queues(rec), _ms(self.app))
        return answer == "cancelled"

    async def retry_async(self) -> int:
        rec = await self.app.broker.wf_get_async(self.id)
        if not rec:
            raise self._missing()
        steps = _retry_steps(self.app, self.id, rec)
        n = await self.app.broker.wf_retry_async(self.id, _queues(rec), steps, _ms(self.app))
        return _retried(self.id, rec, n)

    def _outcome(self, done: dict[str, Any] | None, timeout: float | None) -> Any:
        if done is None:
            raise ResultTimeout(f"workflow {self.id} did not finish within {timeout} s")
        if done["status"] == "succeeded":
            return done.get("result")
        raise _failure(self.id, done)


def _finished(wid: str, rec: Record | None) -> dict[str, Any] | None:
    """What ``result()`` needs once the workflow has finished (None before): its status and
    result, or, when it failed, its full description (the failed step and its error)."""
    if rec is None:
        # expired or never made: nothing to wait for
        raise WorkflowNotFound(f"no workflow {wid} (or its record expired)")
    status = rec.get("status", b"").decode()
    if status not in FINAL or "finished" not in rec:
        return None
    if status == "succeeded":
        # a group of 10,000 has 10,000 steps: only their results are read, not described
        return {"status": status, "result": output(rec)}
    return describe(wid, rec, results=False)


def _queues(rec: Record) -> list[str]:
    found = _json(rec.get("queues"))
    return [q for q in found if type(q) is str] if type(found) is list else []


def _retry_steps(app: TaskQueue, wid: str, rec: Record) -> list[tuple[int, int, bytes]]:
    """The steps to run again (index, generation, new message): each message is the stored
    one under its next task id, its signature checked, then signed again."""
    status = rec.get("status", b"").decode()
    if status not in ("failed", "cancelled"):
        raise ValueError(
            f"workflow {wid} is {status or 'unknown'}: only a failed or "
            "cancelled workflow can be retried"
        )
    n = _int(rec.get("n")) or 0
    eb = _int(rec.get("errback"))
    out = []
    for i in range(n + (1 if eb is not None and eb >= 0 else 0)):
        state = rec.get(f"s:{i}", b"").decode()
        is_eb = i == eb
        if not (state in ("failed", "cancelled") or (is_eb and state != "pending")):
            continue
        gen = _int(rec.get(f"g:{i}")) or 0
        d = _json(rec.get(f"m:{i}"))
        if type(d) is not dict or type(d.get("wf")) is not dict:
            raise ValueError(f"workflow {wid}: step {i}'s message is not stored as taskq writes it")
        signer = app.signer
        if signer is not None:
            signer.verify(d)  # a message changed in Redis is not signed again
            d.pop("sig", None)
        d["id"] = task_id(wid, i, gen + 1)
        d["wf"]["gen"] = gen + 1
        d["attempt"] = 0
        if signer is not None:
            signer.sign(d)
        out.append((i, gen, orjson.dumps(d)))
    return out


def _retried(wid: str, rec: Record, n: int) -> int:
    if n == -2:
        raise WorkflowNotFound(f"no workflow {wid} (or its record expired)")
    if n == -1:
        raise ValueError(f"workflow {wid} changed while it was being retried (retried already?)")
    return n


def _forever(timeout: float | None) -> float:
    return 10 * 365 * 86_400.0 if timeout is None else max(0.0, timeout)


def _ms(app: TaskQueue) -> int:
    from ..clock import script_ms

    return script_ms(app.clock)


__all__ = ["FINAL", "STATUSES", "STEP_STATES", "WorkflowHandle", "describe", "output"]

"""``tq.workflow()``: a workflow built piece by piece (a DAG), and what enqueueing it sends.

    wf = tq.workflow(policy="stop", on_error=alert.call())
    fetched = wf.add(fetch.call(url))
    parsed = wf.add(parse.call(), after=[fetched])
    stored = wf.add(store.call(), after=[parsed])
    handle = wf.enqueue()

Each ``add`` takes a task's ``call(...)``, a chain, a group or a chord, and the steps it
waits for; a step after one step gets its result as its first argument, a step after
several gets the list of their results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import InvalidOption
from ..validation import check_name
from .canvas import Node, Step, node
from .handle import WorkflowHandle
from .plan import (
    POLICIES,
    Compiler,
    Spec,
    check_step_options,
    encode_def,
    flat,
    new_id,
    task_id,
    with_id,
)

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..task import Signature


@dataclass(frozen=True, slots=True)
class StepRef:
    """What ``Workflow.add`` returns: the piece's result, for ``after=``."""

    spec: Spec
    owner: int  # id() of the workflow it belongs to


@dataclass(slots=True)
class StartRequest:
    """What the broker stores to start a workflow: its record's fields (plan.py) and the
    steps to release at once."""

    id: str
    queues: list[str]
    fields: dict[str, bytes]
    roots: list[int]
    n: int


class Workflow:
    """A workflow being built; ``enqueue`` sends it."""

    def __init__(
        self,
        app: TaskQueue,
        *,
        policy: str = "stop",
        on_error: Signature | Step | None = None,
        ttl: float | timedelta | None = None,
        workflow_id: str | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise InvalidOption(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.app = app
        self.policy = policy
        self.on_error = node(on_error) if on_error is not None else None
        if self.on_error is not None and not isinstance(self.on_error, Step):
            raise InvalidOption("on_error must be one task's call(...)")
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds <= 365 * 86_400
        ):
            raise InvalidOption(f"ttl must be seconds in (0, 31536000], got {ttl!r}")
        self.ttl = float(seconds) if seconds is not None else app.settings.result_ttl
        if workflow_id is not None:
            check_name("workflow id", workflow_id, 60)
            if not workflow_id.startswith("wf_") or "." in workflow_id:
                raise InvalidOption(
                    f"workflow id {workflow_id!r} must start with 'wf_' and hold no '.'"
                )
        self.id = workflow_id or new_id()
        self._compiler = Compiler()
        self._outputs: list[Spec] = []
        self._sent = False

    def __repr__(self) -> str:
        return f"<Workflow {self.id} steps={len(self._compiler.steps)}>"

    def add(self, item: object, after: Sequence[StepRef] = ()) -> StepRef:
        """Add a piece that runs after the pieces ``after`` (none: at once)."""
        piece: Node = node(item)
        refs = list(after)
        for ref in refs:
            if not isinstance(ref, StepRef) or ref.owner != id(self):
                raise InvalidOption("after= takes what this workflow's add() returned")
        feed: Spec | None
        if not refs:
            feed = None
        elif len(refs) == 1:
            feed = refs[0].spec
        else:
            feed = [r.spec for r in refs]
        deps = flat(feed)
        spec = self._compiler.add(piece, deps, feed)
        used = set(deps)
        self._outputs = [o for o in self._outputs if not set(flat(o)) <= used]
        self._outputs.append(spec)
        return StepRef(spec, id(self))

    # -- sending

    def request(self) -> tuple[StartRequest, int]:
        """The record to store and the time (ms) it was made; every step is checked (its
        arguments, options and size) before anything is sent."""
        comp = self._compiler
        if not comp.steps:
            raise InvalidOption("a workflow needs at least one step")
        if self._sent:
            raise InvalidOption(f"workflow {self.id} was enqueued already")
        steps = list(comp.steps)
        errback = -1
        if self.on_error is not None:
            assert isinstance(self.on_error, Step)
            errback = len(steps)
            from .plan import StepDef

            steps.append(StepDef(errback, self.on_error.sig, [], None, kind="errback"))
        comp.finish()
        for s in steps:
            check_step_options(s)
        queues: list[str] = []
        for s in steps:
            q = s.sig.task.queue_for(s.sig.options)
            if q not in queues:
                queues.append(q)
        wf_fields = []
        sigs = []
        for s in steps:
            q = s.sig.task.queue_for(s.sig.options)
            wf: dict[str, Any] = {
                "id": self.id,
                "step": s.index,
                "gen": 0,
                "q": queues,
                "in": 1 if (s.feed is not None or s.kind == "errback") else 0,
            }
            if s.cond is not None:
                wf["when"] = s.cond
            if s.poll is not None:
                wf["poll"] = s.poll
            if s.kind != "task":
                wf["kind"] = s.kind
            wf_fields.append(wf)
            sigs.append(with_id(s.sig, task_id(self.id, s.index)))
            del q
        items, now_ms = self.app._items(sigs, wf_fields)
        fields: dict[str, bytes] = {
            "status": b"running",
            "policy": self.policy.encode(),
            "n": b"%d" % len(comp.steps),
            "left": b"%d" % len(comp.steps),
            "errback": b"%d" % errback,
            "ttl": b"%d" % int(self.ttl * 1000),
            "limit": b"%d" % self.app.settings.max_payload_bytes,
            "created": b"%d" % int(self.app.clock.time() * 1000),
            "queues": orjson.dumps(queues),
            "out": orjson.dumps(self._outputs[0] if len(self._outputs) == 1 else self._outputs),
        }
        for s, item in zip(steps, items, strict=True):
            i = s.index
            fields[f"d:{i}"] = encode_def(s, queues.index(item.queue))
            fields[f"m:{i}"] = item.body
            fields[f"s:{i}"] = b"pending"
            fields[f"w:{i}"] = b"%d" % len(s.deps)
            if item.gate:
                fields[f"gt:{i}"] = item.gate
        roots = [s.index for s in comp.steps if not s.deps]
        return StartRequest(self.id, queues, fields, roots, len(comp.steps)), now_ms

    def enqueue(self) -> WorkflowHandle:
        """Store the workflow and release its first steps, in one round trip."""
        req, now_ms = self.request()
        self.app.broker.wf_start(req, now_ms)
        self._sent = True
        return WorkflowHandle(self.app, self.id)

    async def enqueue_async(self) -> WorkflowHandle:
        req, now_ms = self.request()
        await self.app.broker.wf_start_async(req, now_ms)
        self._sent = True
        return WorkflowHandle(self.app, self.id)


__all__ = ["StartRequest", "StepRef", "Workflow"]

"""From workflow pieces to the steps stored in the broker.

A workflow is stored as one record of fields (a Redis hash; a dict in the in-memory broker),
written in one round trip when it is enqueued and advanced by the broker in the same
atomic step that settles each of its tasks (``lua/_workflow.lua``,
``brokers/memory_workflows.py``):

* ``status`` (running | succeeded | failed | cancelled), ``policy`` (stop | continue),
  ``n`` (steps, the error callback not counted), ``left`` (steps not final yet),
  ``errback`` (its step index, -1 for none), ``ttl`` (ms the record is kept once finished),
  ``limit`` (the payload limit for a step's input), ``created``, ``finished`` (ms),
  ``failed_step`` (the first step whose failure failed the workflow), ``queues`` (JSON
  list), ``out`` (JSON: which steps' results make the workflow's result).
* per step ``i``: ``d:i`` its definition (JSON: ``q`` queue index, ``deps``, ``next``,
  ``feed`` the results it takes as input, ``cond`` its predicate step, ``tol``, ``name``,
  ``kind``), ``m:i`` its message (without its input), ``gt:i`` its flow-control gate,
  ``s:i`` state (pending | queued | succeeded | failed | skipped | cancelled), ``w:i``
  steps it still waits for, ``g:i`` generation (a workflow retry runs a step again under a
  new task id), ``r:i`` result (JSON), ``e:i`` error (JSON), ``t0:i`` and ``t1:i``
  released and finished (ms).

A *spec* says which results make an input: a step index (its result), or a list of specs
(the list of those results, in order: a group's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from ..errors import InvalidOption
from .canvas import Chain, Chord, Group, Node, Step

if TYPE_CHECKING:
    from ..task import Signature

Spec: TypeAlias = "int | list[Spec]"

#: most steps in one workflow (a bound on the one record the broker advances)
MAX_STEPS = 100_000
POLICIES = ("stop", "continue")


def field_int(raw: bytes | None, default: int | None = None) -> int | None:
    """A record field as an integer (``default`` when missing or not a number: written by
    something else than taskq, it is ignored rather than failing the read)."""
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def field_json(raw: bytes | None) -> Any:
    """A record field's JSON value, or None when missing or not JSON."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def new_id() -> str:
    """A workflow id: ``wf_`` and 26 hex digits (its steps' task ids are ``<id>.<step>``)."""
    return "wf_" + os.urandom(13).hex()


def task_id(workflow: str, step: int, gen: int = 0) -> str:
    """The task id of step ``step`` of ``workflow`` in its ``gen``-th run."""
    return f"{workflow}.{step}" if gen == 0 else f"{workflow}.{step}.{gen}"


def parse_task_id(tid: str) -> tuple[str, int, int] | None:
    """(workflow, step, generation) of a step's task id, or None."""
    if not tid.startswith("wf_"):
        return None
    parts = tid.split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        return None
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0


@dataclass(slots=True)
class StepDef:
    index: int
    sig: Signature
    deps: list[int]
    feed: Spec | None  # None: takes no input
    kind: str = "task"  # task | predicate | errback
    cond: dict[str, Any] | None = None
    #: the results the condition reads, when not the input: the predicate step's, or the
    #: previous result of a step that does not take it as input
    cond_feed: Spec | None = None
    poll: dict[str, Any] | None = None
    tolerant: bool = False
    next: list[int] = field(default_factory=list)


def flat(spec: Spec | None) -> list[int]:
    """The step indexes a spec reads, in order, each once."""
    out: list[int] = []

    def walk(s: Spec) -> None:
        if isinstance(s, int):
            if s not in out:
                out.append(s)
        else:
            for x in s:
                walk(x)

    if spec is not None:
        walk(spec)
    return out


class Compiler:
    """Lays pieces out as steps; ``add`` returns the spec of a piece's result."""

    def __init__(self) -> None:
        self.steps: list[StepDef] = []

    def _new(self, sig: Signature, deps: list[int], feed: Spec | None, **kw: Any) -> int:
        if len(self.steps) >= MAX_STEPS:
            raise InvalidOption(f"a workflow has at most {MAX_STEPS} steps")
        index = len(self.steps)
        self.steps.append(StepDef(index, sig, list(dict.fromkeys(deps)), feed, **kw))
        return index

    def add(self, item: Node, deps: list[int], feed: Spec | None) -> Spec:
        if isinstance(item, Step):
            return self._step(item, deps, feed)
        if isinstance(item, Chain):
            spec: Spec | None = feed
            after = deps
            for member in item.items:
                spec = self.add(member, after, spec)
                after = flat(spec)
            assert spec is not None
            return spec
        if isinstance(item, Group):
            return [self.add(member, deps, feed) for member in item.items]
        if isinstance(item, Chord):
            header = self.add(item.header, deps, feed)
            return self.add(item.callback, flat(header), header)
        raise InvalidOption(f"not a workflow piece: {type(item).__name__}")

    def _step(self, step: Step, deps: list[int], feed: Spec | None) -> int:
        takes = feed if step.takes_input else None
        cond = None
        cond_feed: Spec | None = None
        if step.when_ is not None:
            cond = step.when_.spec()
            if step.when_.predicate is not None:
                cond_feed = self._new(step.when_.predicate, deps, feed, kind="predicate")
                deps = [*deps, cond_feed]
            elif not step.takes_input:
                # the condition reads the previous result, which this step does not take:
                # it is passed for the condition alone
                cond_feed = feed
        poll = None
        if step.poll is not None:
            p = step.poll
            poll = {"every": p.every, "max": p.max_every, "timeout": p.timeout}
        return self._new(
            step.sig,
            deps,
            takes,
            cond=cond,
            cond_feed=cond_feed,
            poll=poll,
            tolerant=step.tolerant,
        )

    def finish(self) -> None:
        """Each step's dependants (``next``), from the steps it waits for."""
        for s in self.steps:
            s.next = []
        for s in self.steps:
            for d in s.deps:
                if d >= s.index:
                    raise InvalidOption(
                        f"step {s.index} waits for step {d}, which is not before it"
                    )
                self.steps[d].next.append(s.index)


def check_step_options(s: StepDef) -> None:
    """Options that do not fit a step of a workflow, refused with the step named."""
    o = s.sig.options
    what = f"step {s.index} ({s.sig.task.name})"
    if o.delay is not None or o.eta is not None:
        raise InvalidOption(f"{what}: delay and eta are not supported on a workflow step")
    if o.idempotency_key is not None:
        raise InvalidOption(
            f"{what}: an idempotency key is not supported on a workflow step "
            "(a workflow's steps run once each; give the workflow an id instead)"
        )
    if o.task_id is not None:
        raise InvalidOption(f"{what}: a workflow step's task id is made from the workflow's")
    if s.sig.task.flow.unique:
        raise InvalidOption(f"{what}: unique tasks cannot be workflow steps")
    if o.expires is not None or s.sig.task.flow.expires is not None:
        raise InvalidOption(
            f"{what}: expires is not supported on a workflow step (it would count from the "
            "workflow's enqueue, not from the step's release)"
        )


def with_id(sig: Signature, tid: str) -> Signature:
    return replace(sig, options=replace(sig.options, task_id=tid))


def encode_def(s: StepDef, queue_index: int) -> bytes:
    d: dict[str, Any] = {
        "q": queue_index,
        "deps": s.deps,
        "next": s.next,
        "feed": s.feed,
        "name": s.sig.task.name,
        "kind": s.kind,
        "tol": 1 if s.tolerant else 0,
    }
    if s.cond_feed is not None:
        d["cond"] = s.cond_feed
    return orjson.dumps(d)


__all__ = [
    "MAX_STEPS",
    "POLICIES",
    "Compiler",
    "Spec",
    "StepDef",
    "check_step_options",
    "encode_def",
    "flat",
    "new_id",
    "parse_task_id",
    "task_id",
]

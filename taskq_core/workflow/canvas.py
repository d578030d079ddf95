"""The pieces a workflow is made of: steps, chains, groups and chords.

Each is a plain, immutable description; nothing is sent until the workflow is enqueued
(:mod:`taskq_core.workflow.plan` turns the pieces into the steps stored in the broker).

* :class:`Step`: one task call, with how it takes the previous result (passed as its
  first argument, or ignored when the step is immutable), an optional condition, and an
  optional polling rule (a check task re-run until it returns true).
* :func:`chain`: each piece after the one before it; each step gets the previous piece's
  result as its first argument.
* :func:`group`: the pieces side by side; the group's result is the list of their results,
  in order.
* :func:`chord`: a group, then a callback once every member has finished; with
  ``on_member_failure="pass"`` the callback runs even when members failed, and gets a
  :func:`failure` marker in their place.

Conditions are data, never code from a message: one of the tests in :data:`TESTS` on the
previous result, or a registered predicate task run on it (a step of its own).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ..errors import InvalidOption
from ..validation import check_json

if TYPE_CHECKING:
    from ..task import Signature
    from .builder import Workflow
    from .handle import WorkflowHandle

#: the tests a condition may apply to the previous result
TESTS = ("truthy", "falsy", "none", "not_none", "equals")


@dataclass(frozen=True, slots=True)
class Condition:
    """Run a step only when this holds; otherwise it is recorded as ``skipped``."""

    test: str = "truthy"  # one of TESTS, or "predicate"
    value: Any = None  # for "equals"
    predicate: Signature | None = None  # a registered task, run on the previous result

    def spec(self) -> dict[str, Any]:
        """How the worker reads it from the step's message (the predicate as its result)."""
        if self.predicate is not None:
            return {"test": "predicate"}
        if self.test == "equals":
            return {"test": "equals", "value": self.value}
        return {"test": self.test}


def holds(spec: dict[str, Any], value: Any, predicate_result: Any = None) -> bool:
    """Whether a condition's ``spec`` holds for the previous result ``value``."""
    test = spec.get("test")
    if test == "predicate":
        return bool(predicate_result)
    if test == "truthy":
        return bool(value)
    if test == "falsy":
        return not value
    if test == "none":
        return value is None
    if test == "not_none":
        return value is not None
    if test == "equals":
        return bool(value == spec.get("value"))
    raise ValueError(f"unknown condition test {test!r}")


@dataclass(frozen=True, slots=True)
class Poll:
    """Wait for external state: the step's task is a check, re-run with a growing delay
    (``every`` seconds, doubling up to ``max_every``) until it returns something true, or
    failed with ``CheckTimedOut`` once ``timeout`` seconds have passed since it first ran."""

    every: float
    timeout: float
    max_every: float


@dataclass(frozen=True, slots=True)
class Step:
    """One task call in a workflow."""

    sig: Signature
    #: False: the previous result is not passed (an immutable signature, Celery's ``si``)
    takes_input: bool = True
    when_: Condition | None = None
    poll: Poll | None = None
    #: run even when the steps before it failed, getting failure() markers in their place
    tolerant: bool = False

    def immutable(self) -> Step:
        """This step, ignoring the previous result (its arguments are exactly its own)."""
        return replace(self, takes_input=False)

    si = immutable

    def when(self, test: str | Signature = "truthy", *, equals: Any = None) -> Step:
        """Run only when the previous result passes ``test`` (one of :data:`TESTS`; with
        ``equals=`` it is compared to that value), or when the registered predicate task
        ``test`` (a ``task.call(...)``, given the previous result first) returns true.
        A step whose condition fails is ``skipped``: its dependants run, given ``None``."""
        from ..task import Signature

        if isinstance(test, Signature):
            return replace(self, when_=Condition("predicate", predicate=test))
        if equals is not None:
            check_json(equals, "condition value")
            return replace(self, when_=Condition("equals", value=equals))
        if test not in TESTS or test == "equals":
            raise InvalidOption(
                f"condition test {test!r} is not one of {', '.join(TESTS)} "
                "(or a registered predicate task's call())"
            )
        return replace(self, when_=Condition(test))

    def until(
        self,
        *,
        every: float | timedelta = 1.0,
        timeout: float | timedelta,
        max_every: float | timedelta | None = None,
    ) -> Step:
        """Re-run this step's (check) task until it returns something true (see
        :class:`Poll`); its result is the true value it returned."""
        e, t = _seconds(every, "every"), _seconds(timeout, "timeout")
        m = _seconds(max_every, "max_every") if max_every is not None else max(e, min(t, 60.0))
        if m < e:
            raise InvalidOption(f"max_every ({m:g} s) is less than every ({e:g} s)")
        return replace(self, poll=Poll(e, t, m))

    def enqueue(self, **options: Any) -> WorkflowHandle:
        """Run this step alone as a workflow."""
        return _Piece.enqueue(self, **options)  # type: ignore[arg-type]

    async def enqueue_async(self, **options: Any) -> WorkflowHandle:
        return await _Piece.enqueue_async(self, **options)  # type: ignore[arg-type]


def _seconds(value: float | timedelta, name: str) -> float:
    s = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0 < s <= 7 * 86_400):
        raise InvalidOption(f"{name} must be a number of seconds in (0, 604800], got {value!r}")
    return float(s)


class _Piece:
    """``enqueue`` for a chain, group or chord: a workflow of this one piece."""

    __slots__ = ()

    def enqueue(self, **options: Any) -> WorkflowHandle:
        """Enqueue as a workflow (options: see :meth:`TaskQueue.workflow`)."""
        return as_workflow(self, **options).enqueue()  # type: ignore[arg-type]

    async def enqueue_async(self, **options: Any) -> WorkflowHandle:
        return await as_workflow(self, **options).enqueue_async()  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Chain(_Piece):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Group(_Piece):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Chord(_Piece):
    header: Group
    callback: Step
    #: "fail": a failed member fails the workflow (its policy applies) and the callback does
    #: not run; "pass": the callback runs anyway, a failure() marker in the member's place
    on_member_failure: Literal["fail", "pass"] = "fail"


Node: TypeAlias = "Step | Chain | Group | Chord"


def node(item: object) -> Node:
    """``item`` as a workflow piece: a task's ``call(...)`` becomes a :class:`Step`."""
    from ..task import Signature

    if isinstance(item, (Step, Chain, Group, Chord)):
        return item
    if isinstance(item, Signature):
        return Step(item)
    raise InvalidOption(
        f"a workflow piece must be a task's call(...), a chain, a group or a chord, "
        f"not {type(item).__name__}"
    )


def chain(*items: object) -> Chain:
    """Run ``items`` one after another, each given the previous one's result."""
    if not items:
        raise InvalidOption("a chain needs at least one step")
    return Chain(tuple(node(i) for i in items))


def group(*items: object) -> Group:
    """Run ``items`` side by side; the group's result is the list of their results.
    ``group(iterable)`` works too."""
    if len(items) == 1 and not isinstance(items[0], (Step, Chain, Group, Chord)):
        from ..task import Signature

        if not isinstance(items[0], Signature) and isinstance(items[0], Iterable):
            items = tuple(items[0])
    return Group(tuple(node(i) for i in items))


def chord(
    header: Group | Iterable[object],
    callback: object,
    *,
    on_member_failure: Literal["fail", "pass"] = "fail",
) -> Chord:
    """Run the members of ``header`` side by side, then ``callback`` once, given the list
    of their results."""
    if on_member_failure not in ("fail", "pass"):
        raise InvalidOption(
            f"on_member_failure must be 'fail' or 'pass', not {on_member_failure!r}"
        )
    members = header if isinstance(header, Group) else group(*header)
    cb = node(callback)
    if not isinstance(cb, Step):
        raise InvalidOption("a chord's callback must be one task's call(...)")
    if on_member_failure == "pass":
        cb = replace(cb, tolerant=True)
    return Chord(members, cb, on_member_failure)


def failure(value: Any) -> dict[str, Any] | None:
    """The error of a failed member as a tolerant callback receives it
    (``{"type": ..., "message": ...}``), or None when ``value`` is a result."""
    if type(value) is dict and set(value) == {"taskq_failed"}:
        err = value["taskq_failed"]
        return err if type(err) is dict else {"type": "Unknown", "message": ""}
    return None


def as_workflow(item: Node, **options: Any) -> Workflow:
    """A one-piece workflow of ``item``, on the app of its first task."""
    app = first_signature(item).task.app
    wf = app.workflow(**options)
    wf.add(item)
    return wf


def first_signature(item: Node) -> Signature:
    if isinstance(item, Step):
        return item.sig
    if isinstance(item, Chord):
        return first_signature(item.header) if item.header.items else item.callback.sig
    for member in item.items:
        return first_signature(member)
    raise InvalidOption("an empty group has no task to find the TaskQueue from")


__all__ = [
    "TESTS",
    "Chain",
    "Chord",
    "Condition",
    "Group",
    "Node",
    "Poll",
    "Step",
    "chain",
    "chord",
    "failure",
    "group",
    "holds",
    "node",
]

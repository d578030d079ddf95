"""A workflow step in the worker: its input, its condition, its polling, and the outcome
that advances its workflow.

The broker completes a step's message when it releases it (``wf_in``: the time, and the
results it takes). The worker passes the input as the task's first argument, skips the
step when its condition does not hold, re-runs a polling check until it returns true,
and reports the step's final outcome with its task's (:class:`StepOutcome`), so that the
settle that records the task also advances the workflow.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..brokers.base import StepOutcome
from ..message import Message
from .canvas import holds

#: task outcome kind -> step status (a retry is not final: no step outcome)
_STATUS = {
    "ok": "succeeded",
    "failed": "failed",
    "dead": "failed",
    "expired": "failed",
    "aborted": "cancelled",
}


def take_input(msg: Message) -> bool:
    """Put the step's input in front of its arguments (once: a retry's message carries it
    in its arguments). False when its condition does not hold: the step is skipped."""
    wf, given = msg.wf, msg.wf_in
    assert wf is not None
    if given is None:
        return True
    value = given.get("input")
    if wf.get("in") and "input" in given:
        msg.args = [value, *msg.args]
        msg.wf_in = {k: v for k, v in given.items() if k != "input"}
    when = wf.get("when")
    if when is None:
        return True
    if not holds(when, given.get("cond", value), given.get("cond")):
        return False
    # decided: a retry's message (signed again) does not decide it again
    msg.wf = {k: v for k, v in wf.items() if k != "when"}
    return True


def poll_delay_ms(msg: Message, now_ms: int) -> int | None:
    """For a polling check that returned something false: how long until it runs again,
    or None once its time is up."""
    assert msg.wf is not None
    poll = msg.wf["poll"]
    started = msg.queued_at
    if now_ms >= started + int(poll["timeout"] * 1000):
        return None
    delay = min(poll["every"] * 2 ** min(msg.attempt, 30), poll["max"])
    return int(delay * 1000)


def step_outcome(
    msg: Message | None, kind: str, record: dict[str, Any], limit: int | None
) -> StepOutcome | None:
    """The step outcome to settle with a task's final outcome (None: not a step, or not
    final). A result over the payload limit fails the step, naming it: the steps after it
    could not be given it."""
    if msg is None or msg.wf is None:
        return None
    status = _STATUS.get(kind)
    if status is None:
        return None
    wf = msg.wf
    queues = tuple(wf["q"])
    if status == "succeeded":
        if record.get("status") == "skipped":
            return StepOutcome(wf["id"], wf["step"], "skipped", b"null", queues)
        payload = orjson.dumps(record.get("result"))
        if limit is None or len(payload) <= limit:
            return StepOutcome(wf["id"], wf["step"], "succeeded", payload, queues)
        error = {
            "type": "PayloadTooLarge",
            "message": f"the result of step {wf['step']} ({msg.task}) is {len(payload)} bytes, "
            f"over the payload limit of {limit} bytes: it cannot be passed on",
        }
        return StepOutcome(wf["id"], wf["step"], "failed", orjson.dumps(error), queues)
    err = record.get("error") or {}
    error = {
        "type": str(err.get("type", kind)),
        "message": str(err.get("message", ""))[:2000],
    }
    return StepOutcome(wf["id"], wf["step"], status, orjson.dumps(error), queues)


__all__ = ["poll_delay_ms", "step_outcome", "take_input"]

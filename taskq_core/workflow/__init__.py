"""Workflows: chains, groups, chords and DAGs of tasks, with their state in the broker.

    from taskq_core import chain, chord, group

    handle = chain(fetch.call(url), parse.call(), store.call()).enqueue()
    handle = chord([resize.call(p) for p in photos], publish.call()).enqueue()
    wf = tq.workflow(policy="continue", on_error=alert.call())

A workflow's state is one record in the broker, advanced in the same atomic step that
settles each of its tasks: a completed step is never repeated nor lost, and counts once
(docs/workflows.md).
"""

from __future__ import annotations

from .builder import StepRef, Workflow
from .canvas import TESTS, Chain, Chord, Group, Step, chain, chord, failure, group
from .handle import STATUSES, STEP_STATES, WorkflowHandle, describe

__all__ = [
    "STATUSES",
    "STEP_STATES",
    "TESTS",
    "Chain",
    "Chord",
    "Group",
    "Step",
    "StepRef",
    "Workflow",
    "WorkflowHandle",
    "chain",
    "chord",
    "describe",
    "failure",
    "group",
]

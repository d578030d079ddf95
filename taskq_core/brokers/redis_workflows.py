"""The Redis broker's workflow operations: start, read, cancel, retry. Each is one script
call (``lua/wf_*.lua``, over the workflow's record and its queues' keys) or one read; a
step's completion is advanced by ``settle.lua`` with its task's outcome (``redis_plans``,
``_steps``). Mixed into :class:`~taskq_core.brokers.redis.RedisBroker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..workflow.plan import parse_task_id
from . import scripts
from .redis_plans import Plan, ScriptCall, _s

if TYPE_CHECKING:
    from ..workflow.builder import StartRequest
    from .redis_plans import Plans

T = TypeVar("T")


def _keys(plans: Plans, workflow: str, queues: Sequence[str]) -> list[str]:
    keys = [plans.keys.workflow(workflow)]
    for queue in queues:
        keys += plans.qkeys(queue)
    return keys


def _record(replies: list[Any]) -> dict[str, bytes] | None:
    raw = replies[0]
    if not raw:
        return None
    return {_s(k): v if isinstance(v, bytes) else str(v).encode() for k, v in raw.items()}


class RedisWorkflows:
    """The workflow methods; ``plans``, ``run`` and ``run_async`` are RedisBroker's."""

    plans: Plans

    if TYPE_CHECKING:

        def run(self, plan: Plan[T]) -> T: ...
        async def run_async(self, plan: Plan[T]) -> T: ...
        def replicated(self, plan: Plan[T]) -> Plan[T]: ...

    def _start(self, req: StartRequest, now_ms: int) -> Plan[bool]:
        args: list[Any] = [now_ms, req.id, len(req.fields)]
        for name, value in req.fields.items():
            args += (name, value)
        args += req.roots
        call = ScriptCall(scripts.WF_START, _keys(self.plans, req.id, req.queues), args)
        return Plan(
            [call, ("SADD", self.plans.keys.queues(), *req.queues)],
            lambda replies: int(replies[0]) == 1,
        )

    def wf_start(self, req: StartRequest, now_ms: int) -> bool:
        """Store a workflow and release its first steps; False if the id exists already."""
        return self.run(self.replicated(self._start(req, now_ms)))

    async def wf_start_async(self, req: StartRequest, now_ms: int) -> bool:
        return await self.run_async(self.replicated(self._start(req, now_ms)))

    def _get(self, workflow: str) -> Plan[dict[str, bytes] | None]:
        return Plan([("HGETALL", self.plans.keys.workflow(workflow))], _record)

    def wf_get(self, workflow: str) -> dict[str, bytes] | None:
        """A workflow's record (its fields: workflow/plan.py), or None."""
        return self.run(self._get(workflow))

    async def wf_get_async(self, workflow: str) -> dict[str, bytes] | None:
        return await self.run_async(self._get(workflow))

    def _cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> Plan[str]:
        call = ScriptCall(
            scripts.WF_CANCEL, _keys(self.plans, workflow, queues), [now_ms, workflow]
        )
        return Plan([call], lambda replies: _s(replies[0]))

    def wf_cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        """Cancel a running workflow: 'cancelled', or 'was:' and the status that prevented
        it, or '' when unknown."""
        return self.run(self._cancel(workflow, queues, now_ms))

    async def wf_cancel_async(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        return await self.run_async(self._cancel(workflow, queues, now_ms))

    def _retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> Plan[int]:
        args: list[Any] = [now_ms, workflow, len(steps)]
        for index, gen, body in steps:
            args += (index, gen, body)
        call = ScriptCall(scripts.WF_RETRY, _keys(self.plans, workflow, queues), args)
        return Plan([call], lambda replies: int(replies[0]))

    def wf_retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        """Run ``steps`` (index, generation read, new message) of a failed or cancelled
        workflow again: how many, -1 if it changed since it was read, -2 if unknown."""
        return self.run(self._retry(workflow, queues, steps, now_ms))

    def _outboxes(self, queues: Sequence[str]) -> Plan[list[list[str]]]:
        commands: list[Any] = [("LRANGE", self.plans.qkeys(q).wfout, 0, 99) for q in queues]
        return Plan(commands, lambda replies: [[_s(i) for i in ids] for ids in replies])

    def _queues_of(self, workflow: str) -> Plan[list[str] | None]:
        def parse(replies: list[Any]) -> list[str] | None:
            try:
                found = orjson.loads(replies[0]) if replies[0] else None
            except orjson.JSONDecodeError:
                return None
            return found if type(found) is list and all(type(q) is str for q in found) else None

        return Plan([("HGET", self.plans.keys.workflow(workflow), "queues")], parse)

    def _end(self, queue: str, tid: str, queues: list[str] | None, now_ms: int) -> Plan[int]:
        """The step of ``tid`` (in ``queue``'s outbox) ended: wf_end.lua, or the entry
        dropped when its workflow is gone."""
        parsed = parse_task_id(tid)
        if parsed is None or queues is None or queue not in queues:
            return Plan([("LREM", self.plans.qkeys(queue).wfout, 0, tid)], lambda r: 0)
        workflow, step, _ = parsed
        args = [now_ms, workflow, queues.index(queue), tid, step]
        call = ScriptCall(scripts.WF_END, _keys(self.plans, workflow, queues), args)
        return Plan([call], lambda replies: int(replies[0]))

    def wf_drain(self, queues: Sequence[str], now_ms: int) -> int:
        """Advance the workflows of steps that ended outside a settle (the queues' ``wfout``
        lists: poison, unreadable, cancelled by id); how many."""
        n = 0
        outboxes = self.run(self._outboxes(queues))
        for queue, ids in zip(queues, outboxes, strict=True):
            for tid in ids:
                parsed = parse_task_id(tid)
                found = self.run(self._queues_of(parsed[0])) if parsed else None
                n += self.run(self._end(queue, tid, found, now_ms))
        return n

    async def wf_drain_async(self, queues: Sequence[str], now_ms: int) -> int:
        n = 0
        outboxes = await self.run_async(self._outboxes(queues))
        for queue, ids in zip(queues, outboxes, strict=True):
            for tid in ids:
                parsed = parse_task_id(tid)
                found = await self.run_async(self._queues_of(parsed[0])) if parsed else None
                n += await self.run_async(self._end(queue, tid, found, now_ms))
        return n

    async def wf_retry_async(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        return await self.run_async(self._retry(workflow, queues, steps, now_ms))


__all__ = ["RedisWorkflows"]

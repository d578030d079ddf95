"""Outcomes of a failed execution: retried later (the delay from the task's
``retry.RetryPolicy``), or failed for good; ``failure_outcome`` decides, shared with the
supervisor (a task killed at its hard time limit).

``failed`` is called by ``running.complete``; what it decides is recorded by
``outbox.finish`` and stored by ``settle.lua`` on the next round trip.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import NotJSONSerializable, Retry, TaskTimeout
from ..message import Message
from ..redact import redact_text
from .records import Running

if TYPE_CHECKING:
    from ..retry import RetryPolicy
    from ..signing import Signer
    from ..task import Task
    from .core import Worker

log = logging.getLogger("taskq.worker")


def error_record(exc: BaseException) -> dict[str, str]:
    """An exception as the ``error`` of a task's record (type, message, traceback), its
    secrets redacted."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {
        "type": name,
        "message": redact_text(str(exc)),
        "traceback": redact_text("".join(traceback.format_exception(exc))),
    }


@dataclass(slots=True)
class Failure:
    """How a failed execution is settled: retried later, or failed for good."""

    kind: Literal["retry", "failed"]
    record: dict[str, Any]  # the error record of a final failure (empty for a retry)
    error: dict[str, str]
    retry_delay_ms: int = 0  # due this long after the broker's now
    retry_body: bytes = b""  # the message to run again, its attempt counted
    delay: float | None = None


def failure_outcome(
    policy: RetryPolicy,
    task_name: str,
    msg: Message,
    exc: BaseException,
    *,
    now_ms: int,
    base: dict[str, Any],
    signer: Signer | None = None,
    compress_above: int | None = None,
    compact: bool = False,
) -> Failure:
    """Apply ``policy`` to an execution of ``msg`` that raised ``exc``.

    Shared by the worker and by the supervisor, which settles a task whose process it
    killed at its hard time limit. ``msg`` is updated for a retry (attempt, due time,
    last error), signed again by ``signer``, compressed past ``compress_above`` bytes and
    compact with ``compact`` as the producer's was; ``base`` starts the error record of a
    final failure.
    """
    if isinstance(exc, NotJSONSerializable):
        exc = NotJSONSerializable(f"task {task_name} returned a value JSON cannot carry: {exc}")
    err = error_record(exc)
    delay = policy.next_delay(exc, msg.attempt, msg.max_retries)
    if delay is not None:
        msg.attempt += 1
        # the broker makes the due time (its now + the delay: one clock for due times and
        # leases); the message's due_at is this process's reading, for wait-time metrics
        delay_ms = int(delay * 1000)
        msg.due_at = now_ms + delay_ms
        headers = dict(msg.headers or {})
        headers["last_error"] = {"type": err["type"], "message": err["message"][:1000]}
        msg.headers = headers
        return Failure(
            "retry",
            {},
            err,
            delay_ms,
            msg.encode(signer=signer, compress_above=compress_above, compact=compact),
            delay,
        )
    if isinstance(exc, Retry):
        limit = policy.max_for(exc, msg.max_retries)
        err["message"] = (
            f"retry requested but max_retries ({limit}) is exhausted: " + err["message"]
        )
    record = {
        **base,
        "status": "failed",
        "task": msg.task,
        "error": err,
        "attempts": msg.attempt + 1,
        "finished_at": now_ms,
    }
    return Failure("failed", record, err)


def failed(  # noqa: PLR0917 - a method of Worker: worker is its self
    worker: Worker,
    run: Running,
    task: Task[Any, Any],
    msg: Message,
    exc: BaseException,
    base: dict[str, Any],
) -> None:
    """Settle an execution that raised ``exc``: a retry with the policy's delay, or a final
    failure (``failure_outcome`` decides, ``outbox.finish`` records it)."""
    failure = failure_outcome(
        task.policy,
        task.name,
        msg,
        exc,
        now_ms=worker._now_ms(),
        base=base,
        signer=worker.app.signer,
        compress_above=worker.app.settings.compress_above,
        compact=worker.app.settings.message_format == "compact",
    )
    timed_out = isinstance(exc, TaskTimeout)
    if failure.kind == "retry":
        worker._finish(
            run,
            "retry",
            {},
            failure.retry_delay_ms,
            failure.retry_body,
            error=failure.error,
            timed_out=timed_out,
        )
        log.info(
            "task %s (%s) failed with %s, retry %d/%d in %.2fs",
            msg.id,
            msg.task,
            failure.error["type"],
            msg.attempt,
            task.policy.max_for(exc, msg.max_retries),
            failure.delay,
        )
        return
    worker._finish(run, "failed", failure.record, error=failure.error, timed_out=timed_out)
    log.info(
        "task %s (%s) failed after %d attempt(s): %s: %s",
        msg.id,
        msg.task,
        msg.attempt + 1,
        failure.error["type"],
        failure.error["message"][:200],
    )

"""Exceptions raised by taskq.

Every error raised for bad input derives from :class:`TaskqValueError` (itself a
``ValueError``) and is raised before anything is written to the broker.
"""

from __future__ import annotations

from typing import Any


class TaskqError(Exception):
    """Base class of every taskq exception."""


class TaskqValueError(TaskqError, ValueError):
    """Bad input: raised before anything is written."""


class InvalidName(TaskqValueError):
    """A task, queue or key prefix name is empty, too long or has forbidden characters."""


class UnknownTask(TaskqValueError):
    """A task name that is not in the registry."""


class DuplicateTask(TaskqValueError):
    """Two functions registered under one task name."""


class NotJSONSerializable(TaskqValueError):
    """An argument (or result) that JSON cannot carry; the message names its path."""


class PayloadTooLarge(TaskqValueError):
    """An encoded message over the configured payload limit."""


class InvalidOption(TaskqValueError):
    """A bad enqueue or task option (delay, ETA, retries, timeout, ...)."""


class ConfigurationError(TaskqValueError):
    """A bad configuration value; the message names the key and where it came from."""


class InvalidMetric(TaskqValueError):
    """A bad custom metric (observability/custom.py): a declaration (name, labels, buckets)
    that breaks a rule or clashes with an earlier one, or an update with bad labels or a bad
    value, or past the limit of label sets; the message names the metric and the problem."""


class TaskTimeout(TaskqError):
    """Raised inside a task that ran past its soft time limit."""


class TaskAborted(TaskqError):
    """Raised in a task asked to abort (``handle.abort()``), at its next
    ``current_task().progress(...)``; its outcome is recorded as aborted, not retried."""


class HardTimeout(TaskTimeout):
    """A task ran past its hard time limit (``hard_timeout``): the supervisor killed the
    process running it. It is the error recorded for the task, which is then retried or
    failed by its retry policy like any :class:`TaskTimeout`."""


class UnusedConfigWarning(UserWarning):
    """``TASKQ_*`` variables are set, but the TaskQueue was built without ``from_config()``
    and so does not read them."""


class BrokerRefused(TaskqError):
    """Redis refused the credentials of the broker URL (wrong password, disabled ACL user) or
    a command taskq needs (ACL): retrying cannot help, so a worker stops (exit code 4)."""


class BrokerUnavailable(TaskqError, ConnectionError):
    """The broker could not be reached, or did not answer in time (PostgreSQL: the
    connection failed, no pooled connection came free, or the statement timed out)."""


class Retry(TaskqError):
    """Raise from a task to have it retried, optionally after ``delay`` seconds.

    ``Retry()`` uses the task's backoff policy; ``Retry(delay=30)`` waits 30 s. Either way
    the retry counts against the task's ``max_retries``.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        # the bound of validation.MAX_DELAY (a year), which imports this module
        if delay is not None and not (0 <= delay <= 365 * 86_400):
            raise InvalidOption(
                f"Retry(delay=...) must be a finite number >= 0 and at most 365 days, got {delay!r}"
            )
        self.delay = delay
        self.reason = reason


class BrokerFull(TaskqError):
    """Redis refused a write at its ``maxmemory`` limit (redis-py's ``OutOfMemoryError``).

    A refused enqueue wrote nothing of its task: the caller may retry once memory is freed.
    taskq requires ``maxmemory-policy noeviction``, under which Redis refuses writes rather
    than dropping task keys; health warns well before the limit
    (``monitoring.memory_warn_ratio``)."""


class NotReplicated(TaskqError):
    """An enqueue reached the master, but fewer replicas than ``broker.min_replicas_acked``
    confirmed it within ``broker.replica_ack_timeout`` (``WAIT``; docs/scaling.md).

    The tasks were written and will run unless the master is lost before a replica copies
    them: the enqueue is not acknowledged as durable. Retrying with the same
    ``idempotency_key`` (or ``task_id``) is safe."""


class TaskFailed(TaskqError):
    """Raised by ``handle.result()`` when the task failed, was dead-lettered or cancelled."""

    def __init__(self, task_id: str, status: str, error: dict[str, Any] | None) -> None:
        self.task_id = task_id
        self.status = status
        self.error = error or {}
        kind = self.error.get("type", status)
        message = self.error.get("message", "")
        super().__init__(f"task {task_id} {status}: {kind}: {message}".rstrip(": "))


class WorkflowFailed(TaskqError):
    """Raised by ``WorkflowHandle.result()`` when the workflow failed or was cancelled:
    ``step`` is the step whose failure failed it (None when cancelled), ``error`` its error."""

    def __init__(
        self, workflow_id: str, status: str, step: dict[str, Any] | None, error: dict[str, Any]
    ) -> None:
        self.workflow_id = workflow_id
        self.status = status
        self.step = step
        self.error = error
        where = f" at step {step['index']} ({step['task']})" if step else ""
        kind = error.get("type", status)
        super().__init__(
            f"workflow {workflow_id} {status}{where}: {kind}: {error.get('message', '')}".rstrip(
                ": "
            )
        )


class WorkflowNotFound(TaskqError, LookupError):
    """No workflow with that id (never existed, or its record expired)."""


class ResultTimeout(TaskqError, TimeoutError):
    """``handle.result(timeout=...)`` waited and the task had not finished."""


class TaskNotFound(TaskqError, LookupError):
    """No task with that id (never existed, or its result expired)."""


class MissingExtra(ImportError):
    """An optional integration whose framework is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} needs an optional dependency: install it with pip install 'taskq[{extra}]'"
        )
        self.extra = extra

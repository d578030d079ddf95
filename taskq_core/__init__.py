"""taskq: a Redis-backed task queue that never loses a task.

    from taskq_core import TaskQueue

    tq = TaskQueue("redis://127.0.0.1:6379/0")

    @tq.task(queue="high", max_retries=5)
    def send_email(to: str) -> None: ...

    handle = send_email.enqueue("ada@example.com")
    handle.result(timeout=10)

Run workers with ``taskq worker --app myapp:tq``.
"""

from __future__ import annotations

from .app import TaskQueue
from .clock import ManualClock, SystemClock
from .current import CurrentTask, current_task
from .errors import (
    BrokerFull,
    BrokerRefused,
    ConfigurationError,
    DuplicateTask,
    HardTimeout,
    InvalidName,
    InvalidOption,
    MissingExtra,
    NotJSONSerializable,
    PayloadTooLarge,
    ResultTimeout,
    Retry,
    TaskAborted,
    TaskFailed,
    TaskNotFound,
    TaskqError,
    TaskqValueError,
    TaskTimeout,
    UnknownTask,
    WorkflowFailed,
    WorkflowNotFound,
)
from .handle import STATUSES, TaskHandle
from .redact import install_log_redaction
from .retry import RetryPolicy
from .settings import Settings
from .task import Signature, Task
from .worker import Worker
from .workflow import Workflow, WorkflowHandle, chain, chord, failure, group

__version__ = "0.1.0"

# every record of the taskq loggers is masked at creation, whatever handlers the app adds
install_log_redaction()

__all__ = [
    "STATUSES",
    "BrokerFull",
    "BrokerRefused",
    "ConfigurationError",
    "CurrentTask",
    "DuplicateTask",
    "HardTimeout",
    "InvalidName",
    "InvalidOption",
    "ManualClock",
    "MissingExtra",
    "NotJSONSerializable",
    "PayloadTooLarge",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "Settings",
    "Signature",
    "SystemClock",
    "Task",
    "TaskAborted",
    "TaskFailed",
    "TaskHandle",
    "TaskNotFound",
    "TaskQueue",
    "TaskTimeout",
    "TaskqError",
    "TaskqValueError",
    "UnknownTask",
    "Worker",
    "Workflow",
    "WorkflowFailed",
    "WorkflowHandle",
    "WorkflowNotFound",
    "__version__",
    "chain",
    "chord",
    "current_task",
    "failure",
    "group",
]

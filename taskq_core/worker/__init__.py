"""The worker, one module per step of a task's way through it (see ``core.py``).

Re-exports only: ``Worker`` (core.py), ``WorkerCounts`` (records.py), ``failure_outcome``
and ``Failure`` (outcomes.py, shared with the supervisor).
"""

from .core import Worker
from .outcomes import Failure, failure_outcome
from .records import WorkerCounts

__all__ = ["Failure", "Worker", "WorkerCounts", "failure_outcome"]

"""The rule that only :meth:`TaskQueue.from_config` reads ``TASKQ_*`` variables, made visible.

``TaskQueue("redis://...")`` and ``TaskQueue(settings=Settings(...))`` take only their
arguments, so that code under test is never changed by a stray variable. A variable that
is set and yet read by nothing looked like a setting that had no effect
(``TASKQ_WORKER__GRACE_PERIOD`` with a ``--app`` built in code): such a TaskQueue now warns,
naming the variables, and ``taskq`` commands print the same warning for an ``--app``.
"""

from __future__ import annotations

import os
import warnings

from ..errors import UnusedConfigWarning
from .keys import ENV_PREFIX, RESERVED_ENV_PREFIXES

#: variables taskq sets for its own processes: never the user's configuration
_INTERNAL = ("TASKQ_SUPERVISOR_ID",)


def unused_variables() -> list[str]:
    """The ``TASKQ_*`` variables set in the environment (``TASKQ_CONFIG`` included), which a
    TaskQueue built without :meth:`~taskq_core.TaskQueue.from_config` does not read."""
    return sorted(
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
        and name.upper() not in _INTERNAL
        and not name.upper().startswith(RESERVED_ENV_PREFIXES)
    )


def unused_message(names: list[str], what: str = "this TaskQueue") -> str:
    """The warning about ``names``."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"{shown} {'is' if len(names) == 1 else 'are'} set but ignored: {what} was built "
        "without TaskQueue.from_config(), the one way to build a TaskQueue that reads TASKQ_* "
        "variables and configuration files (its arguments still win over them)"
    )


def warn_unused(stacklevel: int = 3) -> None:
    """Warn (:class:`UnusedConfigWarning`) if ``TASKQ_*`` variables are set."""
    names = unused_variables()
    if names:
        warnings.warn(unused_message(names), UnusedConfigWarning, stacklevel=stacklevel)

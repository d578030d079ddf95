"""taskq for Quart: the monitoring routes, a request middleware and embedded workers.

::

    from quart import Quart
    from taskq_quart import TaskQ

    from .tasks import tq

    app = Quart(__name__)
    TaskQ(app, tq, auth=is_admin, defer=True)    # or: ext = TaskQ(tq=tq); ext.init_app(app)

- Every method and path under ``prefix`` (default: the ``http.prefix`` setting, ``/tasks``)
  goes to the core's route table, so status codes and bodies are those of every other
  framework.
- Every request gets a correlation id (``X-Request-ID``, else the trace id of
  ``traceparent``, else a new one), carried with the trace context into the tasks it
  enqueues and echoed in the ``X-Request-ID`` response header; enqueues are counted per
  route. With ``defer=True`` they are held and sent in one round trip just before a
  response below 400 starts, and dropped for 4xx, 5xx and errors. This is an ASGI wrapper
  of ``app.asgi_app``.
- ``embedded_workers`` workers (default 0: production runs ``taskq worker --app
  module:tq``) run in the server's loop from ``before_serving`` to ``after_serving``, which
  then closes the TaskQueue's asyncio Redis client.

Installing twice on one app is harmless: the second call does nothing.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import quart  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_quart", "quart") from exc

from .extension import TaskQ, TaskqState

__all__ = ["TaskQ", "TaskqState"]

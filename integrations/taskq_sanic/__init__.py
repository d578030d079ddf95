"""taskq for Sanic: the monitoring routes, request middleware and embedded workers.

::

    from sanic import Sanic
    from taskq_sanic import TaskQ

    from .tasks import tq

    app = Sanic("shop")
    TaskQ(app, tq, auth=is_admin, defer=True)    # or: ext = TaskQ(tq=tq); ext.init_app(app)

- Every method and path under ``prefix`` (default: the ``http.prefix`` setting, ``/tasks``)
  goes to the core's route table, so status codes and bodies are those of every other
  framework: a catch-all route takes the methods Sanic's router knows, and a request
  middleware takes the requests its router refuses under the prefix (``PROPFIND``, ...).
- Request and response middleware give each request a correlation id (``X-Request-ID``,
  else the trace id of ``traceparent``, else a new one), carried with the trace context into
  the tasks its handler enqueues and echoed in the ``X-Request-ID`` response header;
  enqueues are counted per route. With ``defer=True`` they are held and sent in one round
  trip before a response below 400 goes out, and dropped for 4xx, 5xx and errors.
- ``embedded_workers`` workers (default 0: production runs ``taskq worker --app
  module:tq``) run in each serving process's loop, from ``before_server_start`` to
  ``after_server_stop`` (never in Sanic's main process, which only manages the others);
  then the TaskQueue's asyncio Redis client of that loop is closed.

Installing twice on one app is harmless: the second call does nothing.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import sanic  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_sanic", "sanic") from exc

from .extension import TaskQ

__all__ = ["TaskQ"]

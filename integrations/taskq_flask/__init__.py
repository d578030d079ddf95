"""taskq for Flask: the monitoring routes, request hooks, embedded workers and a CLI.

::

    from flask import Flask
    from taskq_flask import TaskQ

    from .tasks import tq

    app = Flask(__name__)
    app.config["TASKQ_DEFER_ENQUEUE"] = True
    TaskQ(app, tq=tq, auth=is_admin)            # or: ext = TaskQ(tq=tq); ext.init_app(app)

Without ``tq=``, the TaskQueue is built from ``app.config["TASKQ_*"]`` (``TASKQ_BROKER_URL``,
``TASKQ_KEY_PREFIX``, ``TASKQ_WORKER = {"concurrency": 8}``, ... : every key of taskq's
settings, upper-cased, with the ``TASKQ_`` prefix) over ``taskq.toml`` and ``TASKQ_*``
environment variables; it is then ``app.extensions["taskq"].tq``. The extension's own keys:

- ``TASKQ_ROUTE_PREFIX`` (default ``/tasks``): where the Blueprint serving taskq's monitoring
  and admin routes is mounted. Every method and path under it goes to the core's route
  table, so answers are the same as in every other framework.
- ``TASKQ_DEFER_ENQUEUE`` (default False): hold the tasks a request enqueues and send them in
  one round trip once its response succeeded (status below 400), just before it goes out;
  drop them when the view raised or answered 4xx/5xx.
- ``TASKQ_EMBEDDED_WORKERS`` (default 0): run that many workers in a background thread of the
  web process, started when each serving process starts, before its first request (gunicorn
  and uWSGI workers, ``flask run``'s reloader child; never ``flask`` commands nor gunicorn's
  master: ``taskq_core.prefork``), and stopped at exit or by
  ``app.extensions["taskq"].ext.stop_workers()``.

Every request gets a correlation id (``X-Request-ID``, else the trace id of ``traceparent``,
else a new one), carried with the trace context into the tasks it enqueues and echoed in the
``X-Request-ID`` response header. Tasks run inside ``app.app_context()``. Production workers:
``flask --app myapp taskq worker``. Calling ``init_app`` twice is harmless.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import flask  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_flask", "flask") from exc

from .cli import taskq_cli
from .extension import AppContextMiddleware, TaskQ, TaskqState

__all__ = ["AppContextMiddleware", "TaskQ", "TaskqState", "taskq_cli"]

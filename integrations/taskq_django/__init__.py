"""taskq for Django: an app for ``INSTALLED_APPS`` with the monitoring routes, a request
middleware, system checks, ``manage.py taskq_worker`` and a ``django.tasks`` backend.

::

    # settings.py
    INSTALLED_APPS = [..., "taskq_django"]
    MIDDLEWARE = [..., "taskq_django.middleware.TaskqMiddleware"]
    TASKQ = {
        "APP": "shop.tasks:tq",          # your TaskQueue (or omit it: one is built from
        "AUTH": "shop.auth:is_admin",    # the taskq settings in this dict, see below)
        "DEFER_ENQUEUE": True,
    }

    # urls.py
    urlpatterns = [..., path("tasks/", include("taskq_django.urls"))]

``TASKQ`` is read at call time, so ``override_settings(TASKQ=...)`` works. Its keys:

- ``APP``: the TaskQueue, as ``"module:attribute"`` (or the object). Without it a TaskQueue
  is built from the dict's other keys, which are taskq's settings upper-cased
  (``"BROKER_URL"``, ``"KEY_PREFIX"``, ``"WORKER": {"concurrency": 8}``, ...) over
  ``taskq.toml`` and ``TASKQ_*`` environment variables; one per distinct configuration,
  see :func:`get_taskqueue`.
- ``AUTH``: ``auth(request) -> bool`` (or its dotted path) for the routes that change state
  (retry, purge, cancel); without it they answer 401. ``taskq_django.auth.is_staff`` admits
  logged-in staff users.
- ``DEFER_ENQUEUE`` (default False): tasks enqueued inside a transaction are sent when it
  commits (``transaction.on_commit``) and dropped if it rolls back; the others are sent
  once the response succeeded (status below 400) and dropped otherwise.
- ``EMBEDDED_WORKERS`` (default 0): workers in a background thread of the web process,
  started when each serving process starts, before its first request (gunicorn and uWSGI
  workers, runserver's reloader child; never management commands nor gunicorn's master:
  ``taskq_core.prefork``) and stopped at exit
  (or by :func:`stop_workers`).

Tasks close stale database connections before and after they run, as Django does around a
request. ``python manage.py check`` reports bad ``TASKQ`` values, naming the key.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import django  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_django", "django") from exc

from .conf import get_auth, get_taskqueue, on_taskqueue, read_conf
from .workers import start_workers, stop_workers

__all__ = [
    "get_auth",
    "get_taskqueue",
    "on_taskqueue",
    "read_conf",
    "start_workers",
    "stop_workers",
]

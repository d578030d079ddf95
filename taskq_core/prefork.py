"""Starting a WSGI process's embedded workers when it starts serving, fork-safely.

The sync adapters (Flask, Django) run embedded workers in a thread of the web process. A
thread does not survive ``fork()``, and pre-forking servers load the app either in each
worker process (after the fork) or once in the master (before it), so "when the app is
loaded" is only sometimes the right moment. :func:`start_when_serving` picks it:

- **gunicorn**, app loaded in a worker process (the default, ``preload_app`` off): now;
- **gunicorn** ``--preload`` (the app is loaded in the master): never in the master, but in
  each worker right after it is forked (``os.register_at_fork``). :func:`post_fork` does the
  same from a gunicorn ``post_fork`` hook for those who prefer to say it in their config;
- **uWSGI**: in each worker, through ``uwsgidecorators.postfork`` when the app is loaded in
  the master, now when it is loaded in a worker (``lazy-apps``);
- **development servers** (``flask run``, ``manage.py runserver``): the adapter says whether
  this process serves: the autoreloader's child does, its parent (which only watches files and
  restarts the child) does not;
- anything else (a shell, a management command, a test, an unknown server): nothing here;
  the adapter's first-request start, or an explicit ``start_workers()``, remains.

The server is recognised from the call stack (gunicorn: its ``Worker`` or ``Arbiter`` is
loading the app) or its own module (``uwsgi`` exists only inside uWSGI), never from the
command line of another program, so importing gunicorn in a test starts nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Literal

log = logging.getLogger("taskq.embedded")

#: ``start(wait)``: start the workers; ``wait=False`` returns without waiting for them (what a
#: fork hook must do: it runs before the server's own set-up of the child)
Starter = Callable[[bool], None]

Moment = Literal["now", "after-fork", "uwsgi-postfork", "never", "first-request"]

#: starters registered for the children of a pre-forking master (for :func:`post_fork`)
_after_fork: list[Starter] = []


def gunicorn_role() -> Literal["worker", "master"] | None:
    """``"worker"`` when a gunicorn worker process is loading the app (the call stack holds
    its ``Worker``), ``"master"`` when the arbiter is (``--preload``), else None."""
    base = sys.modules.get("gunicorn.workers.base")
    arbiter = sys.modules.get("gunicorn.arbiter")
    if base is None or arbiter is None:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, base.Worker):
            return "worker"
        if isinstance(owner, arbiter.Arbiter):
            return "master"
        frame = frame.f_back
    return None


def start_when_serving(start: Starter, *, dev_server: bool | None = None) -> Moment:
    """Start the workers when this process serves requests; see the module docstring.

    ``dev_server`` is the adapter's verdict for its development server: True in the process
    that serves (the autoreloader's child, or no autoreloader), False in the autoreloader's
    parent, None when this is not the development server. Returns the moment chosen.
    """
    if dev_server is not None:
        if dev_server:
            start(True)
            return "now"
        return "never"
    if "uwsgi" in sys.modules:
        return _uwsgi(start)
    role = gunicorn_role()
    if role == "worker":
        start(True)
        return "now"
    if role == "master":
        _start_in_children(start)
        log.info("gunicorn --preload: embedded workers start in each worker process")
        return "after-fork"
    return "first-request"


def post_fork(server: object = None, worker: object = None) -> None:
    """A gunicorn ``post_fork(server, worker)`` hook: start, in the new worker process, the
    embedded workers of every app the master loaded (``--preload``). Starting is idempotent,
    so it does no harm next to the automatic start::

        # gunicorn.conf.py
        from taskq_flask.gunicorn import post_fork  # or taskq_django.gunicorn
    """
    for start in list(_after_fork):
        start(False)


def _start_in_children(start: Starter) -> None:
    master = os.getpid()
    _after_fork.append(start)

    def child() -> None:
        # only the master's own children (its workers): not a process a worker forks later
        if os.getppid() == master:
            try:
                start(False)
            except Exception:
                log.exception("could not start the embedded workers after the fork")

    os.register_at_fork(after_in_child=child)


def _uwsgi(start: Starter) -> Moment:
    uwsgi = sys.modules["uwsgi"]
    worker_id = getattr(uwsgi, "worker_id", None)
    if callable(worker_id) and worker_id() > 0:
        start(True)  # lazy-apps: the app is loaded in the worker itself
        return "now"
    try:
        postfork = importlib.import_module("uwsgidecorators").postfork
    except ImportError:
        log.warning(
            "uWSGI without uwsgidecorators: embedded workers start at the first request; "
            "run uWSGI with lazy-apps = true to start them with each worker"
        )
        return "first-request"
    postfork(lambda: start(False))
    return "uwsgi-postfork"


__all__ = ["Moment", "Starter", "gunicorn_role", "post_fork", "start_when_serving"]

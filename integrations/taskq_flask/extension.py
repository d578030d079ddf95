"""The Flask extension: ``TaskQ(app)`` or ``TaskQ().init_app(app)``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import click
from flask import Blueprint, Flask, Response, current_app, g, has_app_context, request
from flask.cli import run_command
from flask.helpers import get_debug_flag
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter, Rule

from taskq_core import TaskQueue
from taskq_core.config import InvalidConfiguration
from taskq_core.errors import ConfigurationError
from taskq_core.http import AuthCallable
from taskq_core.http import Request as CoreRequest
from taskq_core.http.access import read_body
from taskq_core.http.routes import ANY_PATH, RouteTable
from taskq_core.message import Message
from taskq_core.middleware import Middleware
from taskq_core.prefork import start_when_serving
from taskq_core.web import RequestScope, active_scope
from taskq_core.wsgi import HostOptions, WorkerThread, config_error, host_options, send_held

from .cli import taskq_cli

log = logging.getLogger("taskq.flask")

#: app.config keys that belong to the extension, not to taskq's settings
_OWN = ("ROUTE_PREFIX", "DEFER_ENQUEUE", "EMBEDDED_WORKERS")
_SCOPE = "_taskq_scope"


def _config_name(key: str) -> str:
    return f"TASKQ_{key.upper()}"


@dataclass(slots=True)
class TaskqState:
    """What ``app.extensions["taskq"]`` holds."""

    ext: TaskQ
    tq: TaskQueue
    table: RouteTable
    prefix: str
    options: HostOptions
    workers: WorkerThread


class AppContextMiddleware(Middleware):
    """Task middleware: every task of the TaskQueue runs inside ``app.app_context()``, so
    ``current_app``, extensions and ``g`` work in tasks as in views."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @contextlib.contextmanager
    def wrap(self, message: Message) -> Iterator[None]:
        with self.app.app_context():
            yield


class TaskQ:
    """The Flask extension; see the package docstring.

    ``tq`` is your TaskQueue (else one is built from ``app.config``); ``auth(request) ->
    bool`` decides who may use the routes that change state (retry, purge, cancel) and the
    read routes that can carry private data (results, errors, hosts, configuration), which
    answer 401 without it; ``request.native`` is the Flask request. ``TASKQ_HTTP =
    {"public_read": ..., "expose_private": [...]}`` opens read routes (docs/security.md).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        tq: TaskQueue | None = None,
        auth: AuthCallable | None = None,
    ) -> None:
        self._tq = tq
        self.auth = auth
        self._apps: list[Flask] = []
        if app is not None:
            self.init_app(app)

    # -- installing

    def init_app(self, app: Flask) -> None:
        """Install on ``app``: Blueprint, request hooks, task middleware, ``flask taskq``.

        A second call for the same app (from this extension or another) does nothing.
        """
        if "taskq" in app.extensions:
            log.debug("taskq is already installed on %s", app.name)
            return
        options, tq = self._configure(app)
        prefix = options.route_prefix or "/" + tq.settings.http.prefix.strip("/")
        table = RouteTable(tq, prefix=prefix, auth=self.auth)
        app.register_blueprint(_blueprint(prefix))
        app.before_request(_open_scope)
        app.after_request(_finish_response)
        app.teardown_request(_close_scope)
        app.cli.add_command(taskq_cli)
        _add_app_context(tq, app)
        workers = WorkerThread(tq, options.embedded_workers)
        app.extensions["taskq"] = TaskqState(self, tq, table, prefix, options, workers)
        self._apps.append(app)
        if options.embedded_workers:
            # before the first request, in each process that serves (never a gunicorn
            # master, nor the parent of `flask run`'s reloader): see taskq_core.prefork
            moment = start_when_serving(
                lambda wait: workers.start(wait=wait), dev_server=_flask_run_serves()
            )
            log.debug("embedded workers of %s: start %s", app.name, moment)

    def _configure(self, app: Flask) -> tuple[HostOptions, TaskQueue]:
        own = {k.lower(): app.config[f"TASKQ_{k}"] for k in _OWN if f"TASKQ_{k}" in app.config}
        options = host_options(own, _config_name)
        core = {
            k.removeprefix("TASKQ_").lower(): v
            for k, v in app.config.items()
            if k.startswith("TASKQ_") and k.removeprefix("TASKQ_") not in _OWN
        }
        if self._tq is not None:
            if core:
                keys = ", ".join(sorted(_config_name(k) for k in core))
                raise ConfigurationError(
                    f"app.config sets {keys}, but TaskQ was given a TaskQueue (tq=...): "
                    "configure that TaskQueue instead"
                )
            return options, self._tq
        try:
            return options, TaskQueue.from_config(**core)
        except InvalidConfiguration as exc:
            raise config_error(exc, _config_name) from None

    # -- using

    def state(self, app: Flask | None = None) -> TaskqState:
        """The extension's state on ``app`` (default: the current app, else the one given
        to the constructor)."""
        if app is None:
            app = current_app._get_current_object() if has_app_context() else self._only_app()  # type: ignore[attr-defined]
        state: TaskqState | None = app.extensions.get("taskq")
        if state is None:
            raise RuntimeError(f"taskq is not installed on the Flask app {app.name!r}")
        return state

    def _only_app(self) -> Flask:
        if len(self._apps) != 1:
            raise RuntimeError("no Flask app context: pass the app")
        return self._apps[0]

    @property
    def tq(self) -> TaskQueue:
        """The TaskQueue of the current app (or of the one app this extension serves)."""
        return self.state().tq

    def start_workers(self, app: Flask | None = None) -> None:
        """Start the embedded workers now (for a server taskq does not recognise, which
        would otherwise start them at the first request)."""
        self.state(app).workers.start()

    def stop_workers(self, app: Flask | None = None) -> None:
        """Stop the embedded workers: running tasks get the grace period, the rest go back
        to their queues, and the thread is joined. Also done at interpreter exit."""
        self.state(app).workers.stop()


def _flask_run_serves() -> bool | None:
    """Under ``flask run``: True in the process that serves, False in the reloader's parent
    (it only restarts the child). None under any other command or server."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command:
        return None
    if os.environ.get("WERKZEUG_RUN_MAIN") == "true":
        return True  # the reloader's child
    reload = ctx.params.get("reload")
    if reload is None:  # flask run's own default: the reloader follows --debug
        reload = get_debug_flag()
    return not reload


def _add_app_context(tq: TaskQueue, app: Flask) -> None:
    # one app context per TaskQueue: a second app sharing it cannot also push its own
    for m in tq.middleware:
        if isinstance(m, AppContextMiddleware):
            if m.app is not app:
                log.warning(
                    "this TaskQueue's tasks already run in the app context of %s, not %s",
                    m.app.name,
                    app.name,
                )
            return
    tq.middleware.append(AppContextMiddleware(app))


class _AnyPath(PathConverter):
    """Everything after the prefix, newlines included (``routes.ANY_PATH``)."""

    regex = r"[^/]" + ANY_PATH


def _blueprint(prefix: str) -> Blueprint:
    bp = Blueprint("taskq", __name__)
    root = prefix.rstrip("/")

    def install(state: BlueprintSetupState) -> None:
        # werkzeug rules of their own, because only a rule without a method list serves
        # every method (Flask's add_url_rule always sets one): an odd method then reaches
        # the core, which answers it as in every framework, instead of Flask's HTML 405
        # (a path converter of our own: werkzeug's stops at a newline, %0A in a path, and
        # answers such a path with its HTML 404)
        state.app.url_map.converters["taskq_path"] = _AnyPath
        rules = [(root or "/", "taskq.root"), (root + "/<taskq_path:path>", "taskq.path")]
        for path, endpoint in rules:
            state.app.url_map.add(Rule(path, endpoint=endpoint, strict_slashes=False))
            state.app.view_functions[endpoint] = _dispatch

    bp.record_once(install)
    return bp


def _dispatch(path: str = "") -> Response:
    state: TaskqState = current_app.extensions["taskq"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    # routed first: only a route that takes a body has it read, and no more than its cap
    limit = state.table.read_limit(request.method, "/" + path, headers)
    core = CoreRequest(
        method=request.method,
        path="/" + path,
        query={k: request.args.getlist(k) for k in request.args},
        headers=headers,
        body=read_body(request.stream.read, limit) if limit else b"",
        native=request._get_current_object(),  # type: ignore[attr-defined]
    )
    out = state.table.dispatch(core)
    response: Response = current_app.response_class(out.body, status=out.status)
    # exactly the core's headers: no default text/html content type where it set none
    del response.headers["Content-Type"]
    for name, value in out.headers.items():
        response.headers[name] = value
    return response


# -- request hooks


def _open_scope() -> None:
    state: TaskqState = current_app.extensions["taskq"]
    if state.options.embedded_workers and not state.workers.running:
        # a fallback for servers taskq does not recognise (taskq_core.prefork): idempotent
        state.workers.start()
    outer = active_scope()
    if outer is not None and outer.app is state.tq:
        return  # an enclosing scope of the same TaskQueue (a nested app) already counts
    scope = RequestScope(state.tq, dict(request.headers.items()), defer=state.options.defer_enqueue)
    scope.__enter__()
    setattr(g, _SCOPE, scope)


def _finish_response(response: Response) -> Response:
    scope: RequestScope | None = g.get(_SCOPE)
    if scope is None:
        return response
    if response.status_code >= 400:
        # 4xx too: a request refused for bad input must not leave work behind
        scope.succeeded = False
    elif scope.pending:
        send_held(scope)
    response.headers.setdefault("X-Request-ID", scope.correlation_id)
    return response


def _close_scope(exc: BaseException | None) -> None:
    scope: RequestScope | None = g.pop(_SCOPE, None)
    if scope is None:
        return
    rule = request.url_rule
    if rule is not None:
        scope.route = rule.rule
    tb: TracebackType | None = exc.__traceback__ if exc is not None else None
    scope.__exit__(type(exc) if exc is not None else None, exc, tb)


__all__ = ["AppContextMiddleware", "TaskQ", "TaskqState"]

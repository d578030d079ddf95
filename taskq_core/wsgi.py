"""What the sync (WSGI) framework adapters share: Flask and Django.

No framework is imported here (the ASGI counterpart is :mod:`taskq_core.asgi`):

- :class:`WorkerThread` runs embedded workers in a background thread of a web process, on an
  asyncio loop of its own, and stops them cleanly (explicitly, or at interpreter exit);
- :func:`send_held` sends the enqueues a deferring request scope holds, in one round trip;
- :func:`host_options` validates the options the adapters add to taskq's own settings
  (route prefix, deferred enqueues, embedded workers), naming the framework's key when one
  is wrong;
- :func:`config_error` rewrites a settings error so that it names the framework's keys;
- :func:`run_worker` is the body of ``flask taskq worker`` and ``manage.py taskq_worker``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import script_ms
from .config import InvalidConfiguration
from .embedded import EmbeddedWorkers
from .errors import ConfigurationError
from .startup import check_broker_or_exit
from .web import RequestScope

if TYPE_CHECKING:
    from .app import TaskQueue
    from .worker import Worker

log = logging.getLogger("taskq.embedded")

_PREFIX = re.compile(r"^/[A-Za-z0-9_.~/\-]*$")
_HINT = re.compile(r"did you mean '(\w+)'\?")

#: seconds, beyond the workers' grace period, that stop() waits for the thread
_JOIN_MARGIN = 30.0


def send_held(scope: RequestScope) -> None:
    """Send the tasks a deferring scope holds now, in one round trip (before the response
    goes out, so a client that reads a task id from it can rely on the task being queued)."""
    items = scope.take_pending()
    if items:
        scope.app.broker.enqueue(items, script_ms(scope.app.clock))


@dataclass(frozen=True, slots=True)
class HostOptions:
    """The adapter's own options, validated."""

    route_prefix: str | None = None
    defer_enqueue: bool = False
    embedded_workers: int = 0


def host_options(values: Mapping[str, Any], name_of: Callable[[str], str] = str) -> HostOptions:
    """Validate ``route_prefix``, ``defer_enqueue`` and ``embedded_workers`` from ``values``.

    ``name_of(key)`` is how the framework spells the key (``TASKQ_DEFER_ENQUEUE``,
    ``TASKQ['DEFER_ENQUEUE']``), so that :class:`ConfigurationError` names what to fix.
    """
    problems = host_problems(values, name_of)
    if problems:
        raise ConfigurationError("invalid taskq configuration: " + "; ".join(problems))
    prefix = values.get("route_prefix")
    return HostOptions(
        route_prefix="/" + prefix.strip("/") if isinstance(prefix, str) else None,
        defer_enqueue=bool(values.get("defer_enqueue", False)),
        embedded_workers=int(values.get("embedded_workers", 0)),
    )


def host_problems(values: Mapping[str, Any], name_of: Callable[[str], str] = str) -> list[str]:
    """What is wrong with the adapter options in ``values`` (empty when nothing is)."""
    problems: list[str] = []
    prefix = values.get("route_prefix")
    if prefix is not None and not (isinstance(prefix, str) and _PREFIX.fullmatch(prefix)):
        problems.append(
            f"{name_of('route_prefix')} = {prefix!r}: must be a path starting with '/' "
            "made of letters, digits and _ . ~ / -"
        )
    defer = values.get("defer_enqueue", False)
    if not isinstance(defer, bool):
        problems.append(f"{name_of('defer_enqueue')} = {defer!r}: must be True or False")
    count = values.get("embedded_workers", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 64:
        problems.append(
            f"{name_of('embedded_workers')} = {count!r}: must be an integer from 0 to 64"
        )
    return problems


def config_error(exc: InvalidConfiguration, name_of: Callable[[str], str]) -> ConfigurationError:
    """``exc`` with each key given as an argument renamed the framework's way."""
    return ConfigurationError(
        "invalid taskq configuration: " + "; ".join(config_problems(exc, name_of))
    )


def config_problems(exc: InvalidConfiguration, name_of: Callable[[str], str]) -> list[str]:
    """One line per problem of ``exc``; keys that came from the framework's settings (the
    arguments of the settings load) are spelled ``name_of(key)``."""
    lines = []
    for p in exc.problems:
        if p.origin.kind != "argument":
            lines.append(str(p))  # a file or an environment variable: it names itself
            continue
        top, dot, rest = p.key.partition(".")
        key = name_of(top) + (f"[{rest!r}]" if dot else "")
        shown = f"{key} = {p.value}" if p.value is not None else key
        message = p.message
        if not dot:  # "did you mean 'key_prefix'?" in the framework's spelling
            message = _HINT.sub(lambda m: f"did you mean {name_of(m.group(1))}?", message)
        lines.append(f"{shown}: {message}" + (f"; allowed: {p.allowed}" if p.allowed else ""))
    return lines


class WorkerThread:
    """``count`` embedded workers of ``tq`` on an asyncio loop in a background thread.

    :meth:`start` returns once the workers run; :meth:`stop` (also registered with
    :mod:`atexit` while they run) stops fetching, lets running tasks finish within the grace
    period, hands the rest back and joins the thread, so nothing is left behind. Both are
    idempotent and thread-safe, so an adapter may call them from every request.
    """

    def __init__(
        self,
        tq: TaskQueue,
        count: int = 1,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        grace_period: float | None = None,
    ) -> None:
        # built now so that a bad count fails when the app is configured, not later
        self._spec = EmbeddedWorkers(
            tq, count, queues=queues, concurrency=concurrency, grace_period=grace_period
        )
        self.tq = tq
        self.count = count
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._pid = 0
        self.workers: list[Worker] = []

    @property
    def running(self) -> bool:
        """True while the thread runs (in this process: a forked child has no thread)."""
        t = self._thread
        return t is not None and t.is_alive() and self._pid == os.getpid()

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start the workers (nothing when ``count`` is 0 or they already run).

        ``wait=False`` returns once the thread is started, without waiting for the workers
        (a fork hook must not hold up the server's own set-up of its new process); a failure
        to start is then only logged.
        """
        if self.count == 0:
            return
        with self._lock:
            if self.running:
                return
            self._ready.clear()
            self._error = None
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._main, name="taskq-embedded", daemon=True)
            # a daemon thread, stopped by atexit: the interpreter joins non-daemon threads
            # *before* atexit handlers run, so a plain thread would hang the exit
            self._thread.start()
        atexit.register(self.stop)
        if not wait:
            return
        if not self._ready.wait(timeout):
            raise RuntimeError(f"embedded workers did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError("embedded workers failed to start") from self._error
        log.info("embedded workers running in thread %s", self._thread.name)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers and join the thread; ``timeout`` defaults to the grace period
        plus a margin."""
        with self._lock:
            thread, loop, event = self._thread, self._loop, self._stop
            self._thread = None
        atexit.unregister(self.stop)
        if thread is None or self._pid != os.getpid():
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(event.set)
        grace = max((w.grace_period for w in self.workers), default=0.0)
        thread.join(timeout if timeout is not None else grace + _JOIN_MARGIN)
        if thread.is_alive():
            log.warning("embedded worker thread did not stop in time")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            log.exception("embedded workers crashed")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        s = self._spec
        pool = EmbeddedWorkers(
            s.app, s.count, queues=s.queues, concurrency=s.concurrency, grace_period=s.grace_period
        )
        try:
            await pool.start()
            self.workers = pool.workers
            self._ready.set()
            await self._stop.wait()
        finally:
            await pool.stop()
            self.workers = []
            # redis-py's asyncio connections belong to this loop: close them with it
            await self.tq.aclose()
            self._loop = None


def run_worker(
    tq: TaskQueue,
    *,
    queues: str | None = None,
    concurrency: int | None = None,
    burst: bool = False,
    log_level: str = "INFO",
) -> None:
    """Run one worker process of ``tq`` in the foreground until SIGTERM/SIGINT (or, with
    ``burst``, until nothing is left to run): what the framework commands do. Redis
    refusing the credentials or the user's commands exits at once with code 4 and one line
    on stderr, as ``taskq worker`` does (``startup.check_broker_or_exit``)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # a refused password or ACL user stops here, as in `taskq worker`, not a retry loop
    check_broker_or_exit(tq)
    w = tq.worker(
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        concurrency=concurrency,
        burst=burst,
    )
    w.run()
    if w.stragglers:
        # sync tasks still stuck in threads were handed back; do not wait for them
        logging.shutdown()
        os._exit(0)


__all__ = [
    "HostOptions",
    "WorkerThread",
    "config_error",
    "config_problems",
    "host_options",
    "host_problems",
    "run_worker",
    "send_held",
]

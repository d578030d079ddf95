"""One worker process started by the supervisor.

The child builds the application from the same ``--app`` / configuration as the supervisor
and runs the core :class:`~taskq_core.worker.Worker`, unchanged, with one extra task
middleware, :class:`LeaseReporter`, that tells the supervisor through a pipe which leases
it holds (queue, id, fence) and when each task ends. That is what lets the supervisor
hand a dead process's tasks back at once, and settle the task of a process it killed at
its hard time limit.

Messages are JSON objects, one per ``send_bytes``. Child to supervisor::

    {"t": "ready", "worker": id, "pid": pid}
    {"t": "leased", "l": [[queue, task id, fence], ...]}  (fetched, not started yet)
    {"t": "start", "q": queue, "id": task id, "f": fence, "task": name, "hard": s | null}
    {"t": "end", "q": queue, "id": task id, "done": tasks ended so far}
    {"t": "abort", "q": queue, "id": task id, "grace": s}  (asked to abort: killed if still
                                                           running ``grace`` seconds later)
    {"t": "stopping"}

Supervisor to child: ``{"cmd": "retire"}`` — stop fetching, finish the running tasks
(``supervisor.retire_timeout``, none by default), exit. The child runs in a session of its
own, so a Ctrl-C in the terminal reaches only the supervisor, which forwards SIGTERM; if
the supervisor dies, the pipe closes and the child stops as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import orjson

from ..middleware import Middleware, TaskEvent

if TYPE_CHECKING:
    from ..brokers.base import Lease
    from ..message import Message
    from ..worker import Worker

log = logging.getLogger("taskq.supervisor")

#: how long a retiring process waits for its running tasks when no retire_timeout is set:
#: in effect for ever (a task with a hard time limit is still bounded by it)
FOREVER = 1e9
#: exit code of a child whose broker refused its credentials (the CLI's BROKER code)
BROKER_REFUSED = 4


class LeaseReporter(Middleware):
    """Reports the child's leases and task ends to the supervisor, and carries out its
    commands (retire) in the worker's loop."""

    def __init__(self, conn: Connection, retire_timeout: float | None) -> None:
        self.conn = conn
        self.retire_timeout = retire_timeout
        self.done = 0
        self._lock = threading.Lock()  # one sender at a time
        self._state = threading.Lock()  # the loop and a pending command
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Worker | None = None
        self._pending: str | None = None  # a command that came before the loop ran

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; a closed pipe means the supervisor is gone: stop."""
        try:
            with self._lock:
                self.conn.send_bytes(orjson.dumps(message))
        except (OSError, ValueError):
            self.command("orphaned")

    # -- commands, from the listening thread

    def command(self, name: str) -> None:
        """Carry out ``retire`` or ``orphaned`` (the pipe closed) in the worker's loop."""
        with self._state:
            loop = self._loop
            if loop is None:
                self._pending = name
                return
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(self._apply, name)

    def _apply(self, name: str) -> None:
        w = self._worker
        if w is None:
            return
        if name == "retire":
            w.grace_period = self.retire_timeout if self.retire_timeout is not None else FOREVER
            log.info("worker %s: retiring (finishing its running tasks)", w.id)
        else:
            log.warning("worker %s: the supervisor is gone; stopping", w.id)
        w.stop()

    # -- hooks

    def worker_started(self, worker: Worker) -> None:
        self._worker = worker
        with self._state:
            self._loop = asyncio.get_running_loop()
            pending = self._pending
        self.send({"t": "ready", "worker": worker.id, "pid": os.getpid()})
        if pending is not None:
            self._apply(pending)

    def leased(self, worker: Worker, leases: Sequence[Lease]) -> None:
        self.send({"t": "leased", "l": [[x.queue, x.id, x.fence] for x in leases]})

    def before_task(self, worker: Worker, message: Message) -> None:
        lease = worker.lease(message.queue, message.id)
        if lease is None:  # pragma: no cover - the worker holds every task it runs
            return
        task = worker.app.registry.get(message.task)
        self.send(
            {
                "t": "start",
                "q": lease.queue,
                "id": lease.id,
                "f": lease.fence,
                "task": message.task,
                "hard": task.hard_timeout if task is not None else None,
            }
        )

    def abort_requested(self, worker: Worker, lease: Lease) -> None:
        grace = worker.app.settings.worker.abort_grace
        self.send({"t": "abort", "q": lease.queue, "id": lease.id, "grace": grace})

    def after_task(self, worker: Worker, event: TaskEvent) -> None:
        self.done += 1
        m = event.message
        self.send({"t": "end", "q": m.queue, "id": m.id, "done": self.done})

    def worker_stopping(self, worker: Worker) -> None:
        self.send({"t": "stopping"})


def _listen(conn: Connection, reporter: LeaseReporter) -> None:
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            reporter.command("orphaned")
            return
        try:
            cmd = orjson.loads(data).get("cmd")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if cmd == "retire":
            reporter.command("retire")


def child_main(conn: Connection, spec_json: str) -> None:
    """Entry point of a worker process (run by ``multiprocessing`` with ``spawn``).

    ``spec_json`` carries the app spec, queues, concurrency, log settings and the
    supervisor's id, as JSON.
    """
    # imported here: the supervisor's own process does not need the CLI helpers
    from ..cli.common import load_app
    from ..cli.logs import LogFormat, configure_logging, use_log_format
    from ..errors import BrokerRefused
    from ..observability.heartbeat import SUPERVISOR_ENV
    from ..startup import check_broker

    spec: dict[str, Any] = orjson.loads(spec_json)
    with contextlib.suppress(OSError):
        os.setsid()  # out of the terminal's process group: Ctrl-C goes to the supervisor
    os.environ[SUPERVISOR_ENV] = spec["supervisor"]
    fmt: LogFormat = "json" if spec.get("log_format") == "json" else "console"
    configure_logging(spec.get("log_level") or "INFO", fmt)
    code = 0
    try:
        app = load_app(spec.get("app_spec"))
        if spec.get("log_format"):
            use_log_format(app, fmt)
        check_broker(app)
        reporter = LeaseReporter(conn, spec.get("retire_timeout"))
        worker = app.worker(
            queues=spec.get("queues"),
            concurrency=spec.get("concurrency"),
            capabilities=spec.get("capabilities"),
            middleware=[reporter],
        )
        threading.Thread(
            target=_listen, args=(conn, reporter), name="taskq-supervisor-pipe", daemon=True
        ).start()
        worker.run()
    except BrokerRefused as exc:
        # the supervisor stops on this code instead of restarting the process
        log.error("worker process %d: %s", os.getpid(), exc)
        code = BROKER_REFUSED
    except Exception:
        log.exception("worker process %d failed", os.getpid())
        code = 1
    finally:
        with contextlib.suppress(OSError):
            conn.close()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # sync tasks stuck in threads cannot be joined; the tasks were handed back already
    os._exit(code)

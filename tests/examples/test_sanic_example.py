"""The Sanic example shop under Sanic's own server (``sanic module:app``: a main process
managing one serving process), with a taskq worker process or an embedded worker."""

from __future__ import annotations

import sys
import time

import pytest

pytest.importorskip("sanic")
pytest.importorskip("httpx")

from taskq_core import TaskQueue
from taskq_core.observability import facade
from tests.examples.shop_smoke import Child, free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_sanic_example_under_its_own_server(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    server = [sys.executable, "-m", "sanic", "sanic_shop.app:app"]
    server += ["--host", "127.0.0.1", "--port", str(port)]

    def before_stop(server: Child) -> None:
        if embedded:
            # the embedded worker ran the order (nothing else could): its heartbeat names its
            # process, which must be the serving one, not Sanic's main process (the one
            # started here), which only manages it
            tq = TaskQueue(redis_url, key_prefix=prefix)
            try:
                workers = facade.workers(tq)["workers"]
            finally:
                tq.close()
            pids = {int(str(w["id"]).split(":")[1]) for w in workers}
            assert len(pids) == 1, workers
            assert server.proc.pid not in pids
        # Sanic's manager loops forever on a SIGTERM that arrives while it still waits for
        # its workers' start-up acknowledgement, which it polls every 0.1 s (up to 25.12 at
        # least: sanic-org/sanic#2997); nothing it shows tells that it is done, so give it
        # ten of its polls
        time.sleep(1.0)

    smoke(
        "sanic",
        server,
        "sanic_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        before_stop=before_stop,
    )

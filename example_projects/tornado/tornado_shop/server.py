"""``python -m tornado_shop.server [--host H] [--port P]``: Tornado's own server.

SIGTERM or SIGINT stops it cleanly: no new connections, the embedded workers (if any) stop
(running tasks get the grace period), then it prints ``shop: shutdown complete``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

import taskq_tornado

from .app import make_app
from .tasks import tq


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SHOP_EMBEDDED_WORKERS=1 runs a worker on the server's IOLoop (handy in development)
    workers = int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0"))
    async with taskq_tornado.serving(tq, embedded_workers=workers):
        server = make_app().listen(port, address=host)
        logging.getLogger("shop").info("serving on http://%s:%d", host, port)
        await stop.wait()
        server.stop()
        await server.close_all_connections()
    print("shop: shutdown complete", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="tornado_shop.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    # taskq logs its workers' and tasks' events under "taskq"; show them with the server's
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()

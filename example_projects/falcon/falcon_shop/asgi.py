"""The shop as an ASGI app: ``uvicorn falcon_shop.asgi:app``."""

from __future__ import annotations

import uuid

import falcon
import falcon.asgi

import taskq_falcon
from taskq_core import TaskNotFound

from .common import EMBEDDED_WORKERS, bad_order, is_admin
from .tasks import charge_order, tq


class Orders:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            data = await req.get_media()
        except falcon.HTTPBadRequest:  # no body, or not JSON
            data = None
        if (problem := bad_order(data)) is not None:
            resp.status, resp.media = 400, {"error": problem}
            return
        order_id = uuid.uuid4().hex[:12]
        handle = await charge_order.enqueue_async(order_id, data["email"], data["items"])
        resp.status = 202
        resp.media = {
            "order_id": order_id,
            "task_id": handle.id,
            "status_url": f"/orders/{handle.id}",
        }


class Order:
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str
    ) -> None:
        try:
            info = await tq.handle(task_id, "high").info_async()
        except TaskNotFound:
            resp.status, resp.media = 404, {"error": "no such order"}
            return
        resp.media = {"status": info["status"], "result": info.get("result")}


app = falcon.asgi.App()
app.add_route("/orders", Orders())
app.add_route("/orders/{task_id}", Order())
# taskq's routes at /tasks, the request middleware, and the embedded workers, run by the
# lifespan from startup to shutdown in the server's loop
taskq_falcon.install(app, tq, auth=is_admin, defer=True, embedded_workers=EMBEDDED_WORKERS)

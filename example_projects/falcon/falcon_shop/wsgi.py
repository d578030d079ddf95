"""The shop as a WSGI app: ``gunicorn -c python:falcon_shop.gunicorn_conf falcon_shop.wsgi:app``."""

from __future__ import annotations

import uuid

import falcon

import taskq_falcon
from taskq_core import TaskNotFound

from .common import EMBEDDED_WORKERS, bad_order, is_admin
from .tasks import charge_order, tq


class Orders:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            data = req.get_media()
        except falcon.HTTPBadRequest:  # no body, or not JSON
            data = None
        if (problem := bad_order(data)) is not None:
            resp.status, resp.media = 400, {"error": problem}
            return
        order_id = uuid.uuid4().hex[:12]
        handle = charge_order.enqueue(order_id, data["email"], data["items"])
        resp.status = 202
        resp.media = {
            "order_id": order_id,
            "task_id": handle.id,
            "status_url": f"/orders/{handle.id}",
        }


class Order:
    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        try:
            info = tq.handle(task_id, "high").info()
        except TaskNotFound:
            resp.status, resp.media = 404, {"error": "no such order"}
            return
        resp.media = {"status": info["status"], "result": info.get("result")}


app = falcon.App()
app.add_route("/orders", Orders())
app.add_route("/orders/{task_id}", Order())
# taskq's routes at /tasks, the request middleware (enqueues sent once the response
# succeeded); the embedded worker thread starts in each gunicorn worker (gunicorn_conf.py)
taskq = taskq_falcon.install(app, tq, auth=is_admin, defer=True, embedded_workers=EMBEDDED_WORKERS)

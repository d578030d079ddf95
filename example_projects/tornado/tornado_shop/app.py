"""The shop's Tornado application; ``python -m tornado_shop.server`` serves it."""

from __future__ import annotations

import hmac
import json
import os
import uuid
from typing import Any

import tornado.web

import taskq_tornado
from taskq_core import TaskNotFound
from taskq_core.http import Request as TaskqRequest

from .tasks import charge_order, tq


def is_admin(request: TaskqRequest) -> bool:
    """Retry, purge, cancel and the private read routes (results, errors, hosts) need
    ``Authorization: Bearer $SHOP_ADMIN_TOKEN``."""
    token = os.environ.get("SHOP_ADMIN_TOKEN", "")
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}")


def _bad_order(data: Any) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return "send a JSON object with an email and items"
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return "items must be a non-empty list"
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), int) and item[k] > 0 for k in ("qty", "price_cents")
        ):
            return "each item needs a positive integer qty and price_cents"
    return None


class Orders(taskq_tornado.TaskqRequestHandler):
    taskq_route = "/orders"

    async def post(self) -> None:
        try:
            data = json.loads(self.request.body)
        except ValueError:
            data = None
        if (problem := _bad_order(data)) is not None:
            self.set_status(400)
            self.write({"error": problem})
            return
        order_id = uuid.uuid4().hex[:12]
        handle = await charge_order.enqueue_async(order_id, data["email"], data["items"])
        self.set_status(202)
        self.write(
            {"order_id": order_id, "task_id": handle.id, "status_url": f"/orders/{handle.id}"}
        )


class Order(taskq_tornado.TaskqRequestHandler):
    taskq_route = "/orders/{task_id}"

    async def get(self, task_id: str) -> None:
        try:
            info = await tq.handle(task_id, "high").info_async()
        except TaskNotFound:
            self.set_status(404)
            self.write({"error": "no such order"})
            return
        self.write({"status": info["status"], "result": info.get("result")})


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/orders", Orders),
            (r"/orders/([^/]+)", Order),
            *taskq_tornado.routes(tq, prefix="/tasks", auth=is_admin),
        ],
        # what TaskqRequestHandler reads: the TaskQueue, and enqueues sent only once the
        # response succeeded
        taskq=tq,
        taskq_defer=True,
    )

"""The shop's web app: ``hypercorn quart_shop.app:app``."""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from typing import Any

from quart import Quart, jsonify, request
from quart.typing import ResponseReturnValue

from taskq_core import TaskNotFound
from taskq_core.http import Request as TaskqRequest
from taskq_quart import TaskQ

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


# taskq logs its workers' and tasks' events under "taskq"; show them with the server's
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = Quart(__name__)


@app.post("/orders")
async def place_order() -> ResponseReturnValue:
    data = await request.get_json(silent=True)
    if (problem := _bad_order(data)) is not None:
        return jsonify(error=problem), 400
    order_id = uuid.uuid4().hex[:12]
    handle = await charge_order.enqueue_async(order_id, data["email"], data["items"])
    return jsonify(order_id=order_id, task_id=handle.id, status_url=f"/orders/{handle.id}"), 202


@app.get("/orders/<task_id>")
async def order_status(task_id: str) -> ResponseReturnValue:
    try:
        info = await tq.handle(task_id, "high").info_async()
    except TaskNotFound:
        return jsonify(error="no such order"), 404
    return jsonify(status=info["status"], result=info.get("result"))


# taskq's routes at /tasks, the request middleware (tasks enqueued by a request are sent
# only once its response succeeded) and, with SHOP_EMBEDDED_WORKERS=1, a worker inside the
# web process (handy in development) from before_serving to after_serving
TaskQ(
    app,
    tq,
    prefix="/tasks",
    auth=is_admin,
    defer=True,
    embedded_workers=int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0")),
)

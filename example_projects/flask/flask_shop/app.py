"""The shop's web app: ``gunicorn flask_shop.app:app``; workers: ``flask --app flask_shop.app
taskq worker``."""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from taskq_core import TaskNotFound
from taskq_core.http import Request as TaskqRequest
from taskq_flask import TaskQ

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


def create_app() -> Flask:
    # taskq logs its workers' and tasks' events under "taskq"; show them with the server's
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = Flask(__name__)
    app.config.update(
        SHOP_CURRENCY="EUR",
        # tasks enqueued by a request are sent only once its response succeeded
        TASKQ_DEFER_ENQUEUE=True,
        # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
        TASKQ_EMBEDDED_WORKERS=int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0")),
    )

    @app.post("/orders")
    def place_order() -> ResponseReturnValue:
        data = request.get_json(silent=True)
        if (problem := _bad_order(data)) is not None:
            return jsonify(error=problem), 400
        order_id = uuid.uuid4().hex[:12]
        handle = charge_order.enqueue(order_id, data["email"], data["items"])
        return jsonify(order_id=order_id, task_id=handle.id, status_url=f"/orders/{handle.id}"), 202

    @app.get("/orders/<task_id>")
    def order_status(task_id: str) -> ResponseReturnValue:
        try:
            info = tq.handle(task_id, "high").info()
        except TaskNotFound:
            return jsonify(error="no such order"), 404
        return jsonify(status=info["status"], result=info.get("result"))

    TaskQ(app, tq=tq, auth=is_admin)  # taskq's routes at /tasks, request hooks, `flask taskq`
    return app


app = create_app()

"""Placing an order and following it."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from taskq_core import TaskNotFound

from .models import Order
from .tasks import charge_order, tq


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


@csrf_exempt  # a JSON API for other programs, not a form of this site
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
    except ValueError:
        data = None
    if (problem := _bad_order(data)) is not None:
        return JsonResponse({"error": problem}, status=400)
    with transaction.atomic():
        order = Order.objects.create(email=data["email"], items=data["items"])
        # held until the transaction commits (TASKQ["DEFER_ENQUEUE"]): the worker never
        # looks for an order that is not in the database yet
        handle = charge_order.enqueue(order.pk)
    return JsonResponse(
        {"order_id": order.pk, "task_id": handle.id, "status_url": f"/orders/{handle.id}"},
        status=202,
    )


@require_GET
def order_status(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        info = tq.handle(task_id, "high").info()
    except TaskNotFound:
        return JsonResponse({"error": "no such order"}, status=404)
    return JsonResponse({"status": info["status"], "result": info.get("result")})

"""Views of the test app: each enqueues a task of the TaskQueue that settings.TASKQ names."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

import taskq_django

from .models import Order


def enqueue(request: HttpRequest) -> HttpResponse:
    """Enqueue ``t.trace`` outside any transaction; answer with ``?status=`` (default 200)."""
    handle = taskq_django.get_taskqueue().enqueue("t.trace")
    return JsonResponse({"task_id": handle.id}, status=int(request.GET.get("status", "200")))


def boom(request: HttpRequest) -> HttpResponse:
    """Enqueue, then fail with an exception (Django answers 500)."""
    taskq_django.get_taskqueue().enqueue("t.trace")
    raise RuntimeError("the view failed after enqueueing")


def place_order(request: HttpRequest) -> HttpResponse:
    """Create an order and enqueue its payment in one transaction; ``?rollback=1`` fails the
    transaction after the enqueue, ``?status=`` sets the status of the response."""
    tq = taskq_django.get_taskqueue()
    try:
        with transaction.atomic():
            order = Order.objects.create(email="ada@example.com")
            handle = tq.enqueue("t.pay", [order.id])
            if request.GET.get("rollback"):
                raise ValueError("payment refused")
    except ValueError:
        return JsonResponse({"task_id": handle.id, "rolled_back": True}, status=409)
    status = int(request.GET.get("status", "202"))
    return JsonResponse({"task_id": handle.id, "order_id": order.id}, status=status)

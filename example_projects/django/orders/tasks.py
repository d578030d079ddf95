"""The shop's tasks. Configuration comes from ``TASKQ_*`` environment variables
(``TASKQ_BROKER_URL``, default ``redis://127.0.0.1:6379/0``; ``TASKQ_KEY_PREFIX``)."""

from __future__ import annotations

from typing import Any

from taskq_core import TaskQueue
from taskq_core.context import current_trace

tq = TaskQueue.from_config()


@tq.task(queue="high", max_retries=5)
def charge_order(order_id: int) -> dict[str, Any]:
    """Charge the order (a stand-in for a payment API) and queue its confirmation e-mail.

    The order is read from the database: the view enqueued this task in the transaction that
    created the order, so taskq sent it only once that transaction committed.
    """
    from .models import Order

    order = Order.objects.get(pk=order_id)
    order.total_cents = sum(int(i["qty"]) * int(i["price_cents"]) for i in order.items)
    order.paid = True
    order.save(update_fields=["total_cents", "paid"])
    send_confirmation.enqueue(order.pk)
    trace = current_trace() or {}
    return {
        "order_id": order.pk,
        "total_cents": order.total_cents,
        "charged": True,
        # the id of the web request that placed the order, carried into this task
        "request_id": trace.get("correlation_id"),
    }


@tq.task
def send_confirmation(order_id: int) -> str:
    """Send the confirmation e-mail (a stand-in for an e-mail API)."""
    from .models import Order

    order = Order.objects.get(pk=order_id)
    return f"sent to {order.email}: order {order.pk}, {order.total_cents / 100:.2f} EUR"

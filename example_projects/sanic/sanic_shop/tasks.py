"""The shop's tasks. Configuration comes from ``TASKQ_*`` environment variables
(``TASKQ_BROKER_URL``, default ``redis://127.0.0.1:6379/0``; ``TASKQ_KEY_PREFIX``)."""

from __future__ import annotations

from typing import Any

from taskq_core import TaskQueue
from taskq_core.context import current_trace

tq = TaskQueue.from_config()


@tq.task(queue="high", max_retries=5)
def charge_order(order_id: str, email: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Charge the order (a stand-in for a payment API) and queue its confirmation e-mail."""
    total = sum(int(i["qty"]) * int(i["price_cents"]) for i in items)
    send_confirmation.enqueue(order_id, email, total)
    trace = current_trace() or {}
    return {
        "order_id": order_id,
        "total_cents": total,
        "charged": True,
        # the id of the web request that placed the order, carried into this task
        "request_id": trace.get("correlation_id"),
    }


@tq.task
async def send_confirmation(order_id: str, email: str, total_cents: int) -> str:
    """Send the confirmation e-mail (a stand-in for an e-mail API)."""
    return f"sent to {email}: order {order_id}, {total_cents / 100:.2f} EUR"

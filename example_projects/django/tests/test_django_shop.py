"""The shop's tests, written with pytest-django and taskq's test kit.

The view enqueues ``charge_order`` inside the transaction that creates the order, and
``DEFER_ENQUEUE`` holds the task until that transaction commits. A test inside a transaction
that never commits (``django_db``, ``TestCase``) captures that commit with
``taskq_on_commit`` (or ``captureOnCommitCallbacks``); a ``django_db(transaction=True)`` test
commits for real, and the worker then finds the order in the database.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, TestCase
from orders.models import Order
from orders.tasks import charge_order, send_confirmation, tq

from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued, isolated
from taskq_core.testing.django import deferred, run_deferred

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]


def place_order(client: Client, **headers: str) -> dict[str, Any]:
    response = client.post(
        "/orders",
        {"email": "ada@example.com", "items": ITEMS},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 202, response.content
    return dict(response.json())


@pytest.mark.django_db
def test_the_charge_waits_for_the_commit(
    client: Client, taskq_app: Any, taskq_on_commit: Any
) -> None:
    with taskq_on_commit() as held:
        order = place_order(client)
    # the test's transaction never commits: the task is held, not enqueued
    assert [(e.name, e.args) for e in held.enqueued()] == [
        (charge_order.name, (order["order_id"],))
    ]
    assert_not_enqueued(charge_order)
    held.commit()
    assert_enqueued(charge_order, args=(order["order_id"],), queue="high", count=1)


@pytest.mark.django_db
def test_a_refused_order_enqueues_nothing(
    client: Client, taskq_app: Any, taskq_on_commit: Any
) -> None:
    with taskq_on_commit(execute=True):
        response = client.post(
            "/orders", {"email": "ada@example.com"}, content_type="application/json"
        )
    assert response.status_code == 400
    assert_not_enqueued(charge_order)


@pytest.mark.django_db(transaction=True)
def test_the_worker_charges_then_confirms(
    client: Client, taskq_app: Any, taskq_worker: Drainer
) -> None:
    order = place_order(client, X_REQUEST_ID="order-1")
    ran = taskq_worker.drain()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["total_cents"] == 900
    assert ran[0].result["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    assert Order.objects.get(pk=order["order_id"]).paid
    status = client.get(order["status_url"]).json()
    assert status["status"] == "succeeded"


class PlaceOrderTests(TestCase):
    """The same check in a Django TestCase: no fixtures, the kit's plain helpers."""

    def setUp(self) -> None:
        self.enterContext(isolated(tq))

    def test_the_charge_waits_for_the_commit(self) -> None:
        with self.captureOnCommitCallbacks() as callbacks:
            order = place_order(self.client)
        assert [e.name for e in deferred(callbacks)] == [charge_order.name]
        assert_not_enqueued(charge_order)
        run_deferred(callbacks)
        assert_enqueued(charge_order, args=(order["order_id"],))

"""The shop's tests, written with taskq's test kit: what a request enqueues, then what the
worker makes of it, without Redis or a worker process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from flask_shop.app import app
from flask_shop.tasks import charge_order, send_confirmation

from taskq_core import TaskQueue
from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]


@pytest.fixture
def client(taskq_app: TaskQueue) -> Iterator[FlaskClient]:
    # taskq_app first: the shop's TaskQueue is on its test broker before any request
    with app.test_client() as client:
        yield client


def place_order(client: FlaskClient, **headers: str) -> dict[str, str]:
    response = client.post(
        "/orders", json={"email": "ada@example.com", "items": ITEMS}, headers=headers
    )
    assert response.status_code == 202, response.get_json()
    return dict(response.get_json())


def test_an_order_enqueues_its_charge(client: FlaskClient) -> None:
    order = place_order(client)
    (charge,) = assert_enqueued(
        charge_order, args=(order["order_id"], "ada@example.com", ITEMS), queue="high", count=1
    )
    assert charge.id == order["task_id"]
    assert_not_enqueued(send_confirmation)  # the charge sends it, once it has run


def test_a_refused_order_enqueues_nothing(client: FlaskClient) -> None:
    response = client.post("/orders", json={"email": "ada@example.com", "items": []})
    assert response.status_code == 400
    assert_not_enqueued(charge_order)


def test_the_worker_charges_then_confirms(client: FlaskClient, taskq_worker: Drainer) -> None:
    order = place_order(client, **{"X-Request-ID": "order-1"})
    ran = taskq_worker.drain()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert all(r.ok for r in ran)
    charged = ran[0].result
    # the task ran in the Flask app context (it read SHOP_CURRENCY) and kept the request's id
    assert charged["total_cents"] == 900
    assert charged["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    status = client.get(order["status_url"]).get_json()
    assert status == {"status": "succeeded", "result": charged}


def test_eager_mode_runs_the_tasks_in_the_request(
    client: FlaskClient, taskq_eager: TaskQueue
) -> None:
    order = place_order(client)
    status = client.get(order["status_url"]).get_json()
    assert status["status"] == "succeeded"
    assert status["result"]["total_cents"] == 900
    assert_enqueued(send_confirmation, count=1)

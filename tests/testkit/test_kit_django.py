"""pytest-django: enqueues that DEFER_ENQUEUE holds for the commit are captured and run, with
``transaction.atomic()`` under ``django_db`` and in a ``TestCase``."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import dedent, ini

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("django") is None or importlib.util.find_spec("pytest_django") is None,
    reason="Django or pytest-django is not installed",
)

SETTINGS = """
SECRET_KEY = "not-a-secret"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "taskq_django"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
MIDDLEWARE = ["taskq_django.middleware.TaskqMiddleware"]
ROOT_URLCONF = "kiturls"
USE_TZ = True
TASKQ = {"APP": "shop:tq", "DEFER_ENQUEUE": True}
"""

URLS = """
from django.db import transaction
from django.http import HttpResponse
from django.urls import path

from shop import send_email


def order(request):
    with transaction.atomic():
        send_email.enqueue("ada@example.com")
    return HttpResponse("ok")


def refused(request):
    with transaction.atomic():
        send_email.enqueue("bob@example.com")
        transaction.set_rollback(True)
    return HttpResponse("rolled back")


urlpatterns = [path("order", order), path("refused", refused)]
"""

TESTS = """
import pytest
from django.test import TestCase

import shop
from shop import send_email
from taskq_core.testing import assert_enqueued, assert_not_enqueued, isolated
from taskq_core.testing.django import deferred, run_deferred


@pytest.mark.django_db
def test_held_until_commit(client, taskq_app, taskq_on_commit, taskq_worker):
    with taskq_on_commit() as held:
        assert client.post("/order").status_code == 200
    # the test's transaction never commits: the task waits in the captured callback
    assert [(e.name, e.args) for e in held.enqueued()] == [
        ("shop.send_email", ("ada@example.com",))
    ]
    assert_not_enqueued(send_email)
    assert taskq_worker.drain() == []
    held.commit()
    assert_enqueued(send_email, args=("ada@example.com",), count=1)
    assert [r.result for r in taskq_worker.drain()] == ["sent ada@example.com"]
    held.commit()  # the callbacks ran once; a second commit sends nothing again
    assert_enqueued(send_email, count=1)


@pytest.mark.django_db
def test_execute_at_the_end_of_the_block(client, taskq_app, taskq_on_commit):
    with taskq_on_commit(execute=True):
        client.post("/order")
        assert_not_enqueued(send_email)
    assert_enqueued(send_email, count=1)


@pytest.mark.django_db
def test_rolled_back_enqueues_are_dropped(client, taskq_app, taskq_on_commit):
    with taskq_on_commit(execute=True) as held:
        client.post("/refused")
    assert held.enqueued() == []
    assert_not_enqueued(send_email)


@pytest.mark.django_db(transaction=True)
def test_a_real_commit_sends_at_once(client, taskq_app):
    client.post("/order")
    assert_enqueued(send_email, count=1)


class OrderTests(TestCase):
    def setUp(self):
        self.app = self.enterContext(isolated(shop.tq))

    def test_on_commit_in_a_test_case(self):
        with self.captureOnCommitCallbacks() as callbacks:
            self.client.post("/order")
        assert [e.name for e in deferred(callbacks)] == ["shop.send_email"]
        assert_not_enqueued(send_email)
        run_deferred(callbacks)
        assert_enqueued(send_email, args=("ada@example.com",))
"""


def test_django_on_commit(shop: pytest.Pytester) -> None:
    settings = {"DJANGO_SETTINGS_MODULE": "kitsettings"}
    shop.makeini(ini(taskq_plugin="true", taskq_app="shop:tq", **settings))
    shop.makepyfile(kitsettings=dedent(SETTINGS), kiturls=dedent(URLS), test_django=dedent(TESTS))
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=5)

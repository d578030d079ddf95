"""Contract clients for Flask and Django, each through its framework's own test client, each
app mounting taskq's routes at ``/tasks`` the framework's way."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from tests.contract.client import ContractClient


class _FlaskClient:
    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        from flask import Flask

        from taskq_flask import TaskQ

        app = Flask("contract")
        TaskQ(app, tq=tq, auth=auth)
        # no cookie jar: a test's own Cookie header goes out as given
        self._client = app.test_client(use_cookies=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        r = self._client.open(
            path, method=method, query_string=params, headers=headers, data=body or None
        )
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.get_data()


def flask_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _FlaskClient(tq, auth)


class _DjangoClient:
    """Django's test Client over a URLconf with ``path("tasks", include("taskq_django.urls"))``
    and ``TASKQ = {"APP": tq, "AUTH": auth}``, set with ``override_settings`` until close()."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        from tests.integrations.django.djsettings import configure

        configure()
        from django.test import Client, override_settings
        from django.urls import include, path

        urlconf = ModuleType("taskq_contract_urls")  # a URLconf made here, not a file
        # "tasks" without the slash: the bare /tasks is served too, as in the other frameworks
        urlconf.urlpatterns = [path("tasks", include("taskq_django.urls"))]  # type: ignore[attr-defined]
        self._override: Any = override_settings(
            ROOT_URLCONF=urlconf,
            TASKQ={"APP": tq, "AUTH": auth},
            MIDDLEWARE=["taskq_django.middleware.TaskqMiddleware"],
        )
        self._override.enable()
        # CSRF enforced, as for a real browser (the test client skips it by default)
        self._client = Client(raise_request_exception=False, enforce_csrf_checks=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        # Django's client sets CONTENT_TYPE itself: pass the header's value (or none at all)
        content_type = next((v for k, v in sent.items() if k.lower() == "content-type"), None)
        sent = {k: v for k, v in sent.items() if k.lower() != "content-type"}
        extra: dict[str, Any] = {"CONTENT_TYPE": content_type} if content_type else {}
        r = self._client.generic(
            method,
            path,
            data=body,
            content_type=content_type or "",
            headers=sent,
            QUERY_STRING=_qs(params),
            **extra,
        )
        return r.status_code, {k.lower(): v for k, v in r.items()}, r.content

    def close(self) -> None:
        self._override.disable()


def _qs(params: dict[str, str] | None) -> str:
    from urllib.parse import urlencode

    return urlencode(params or {})


def django_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _DjangoClient(tq, auth)


class _FalconClient:
    """Falcon's own test client over a ``falcon.App`` with ``taskq_falcon.install``."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        import falcon
        import falcon.testing

        import taskq_falcon

        app = falcon.App()
        taskq_falcon.install(app, tq, prefix="/tasks", auth=auth)
        self._client = falcon.testing.TestClient(app)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        import warnings
        from wsgiref.validate import WSGIWarning

        with warnings.catch_warnings():
            # Falcon's client runs every call through wsgiref.validate, which warns about
            # methods outside its short list (PROPFIND, FOO): those the suite sends on purpose
            warnings.filterwarnings("ignore", "Unknown REQUEST_METHOD", WSGIWarning)
            r = self._client.simulate_request(
                method, path, query_string=_qs(params), headers=headers, body=body or None
            )
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def falcon_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _FalconClient(tq, auth)

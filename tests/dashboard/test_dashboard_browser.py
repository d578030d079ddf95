"""The dashboard in a real browser (Playwright driving Debian's headless Chromium), on each
of the five integrations' example shops under their real servers (gunicorn, uvicorn,
aiohttp's runner), with a real Redis and a real ``taskq worker`` process.

For each: without credentials the page shows the open figures, they change while tasks run,
no action is offered and a forged action request is refused; with the example's admin token
(sent by the browser with every request, as a proxy or a session would) a dead-lettered task
is looked up by id, retried from the page, and seen to succeed. Screenshots for
docs/dashboard.md are written when ``DASHBOARD_SHOTS`` names a directory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.message import stored_dict
from tests.examples.shop_smoke import (
    ADMIN_TOKEN,
    EXAMPLES,
    free_port,
    process,
    shop_env,
    wait_until_serving,
)
from tests.frameworks import BY_NAME

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("TASKQ_CHROMIUM", "/usr/bin/chromium")


@dataclass(frozen=True)
class Shop:
    server: Callable[[int], list[str]]
    package: str  # the module of its tasks: charge_order is <package>.charge_order
    worker: list[str] | None = None  # the framework's own worker command, if it has one
    env: dict[str, str] = field(default_factory=dict)


def _gunicorn(app: str) -> Callable[[int], list[str]]:
    return lambda port: [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                         "--workers", "1", app]  # fmt: skip


def _uvicorn(app: str) -> Callable[[int], list[str]]:
    return lambda port: [sys.executable, "-m", "uvicorn", app, "--port", str(port)]


SHOPS = {
    "flask": Shop(
        _gunicorn("flask_shop.app:app"),
        "flask_shop.tasks",
        [sys.executable, "-m", "flask", "--app", "flask_shop.app", "taskq", "worker"],
    ),
    "django": Shop(
        _gunicorn("djshop.wsgi"), "orders.tasks", [sys.executable, "manage.py", "taskq_worker"]
    ),
    "starlette": Shop(_uvicorn("starlette_shop.app:app"), "starlette_shop.tasks"),
    "aiohttp": Shop(
        lambda port: [sys.executable, "-m", "aiohttp_shop", "--port", str(port)],
        "aiohttp_shop.tasks",
    ),
    "litestar": Shop(_uvicorn("litestar_shop.app:app"), "litestar_shop.tasks"),
}

ORDER = {"email": "ada@example.com", "items": [{"sku": "tea", "qty": 2, "price_cents": 450}]}


def place(client: httpx.Client) -> str:
    """An order placed through the shop's own API; its charge task's id."""
    placed = client.post("/orders", json=ORDER)
    assert placed.status_code == 202, placed.text
    return str(placed.json()["task_id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; scripts/test does)"
        # the full environment (scripts/test, CI) must have it; a partial one skips
        if os.environ.get("TASKQ_TEST_ALL_FRAMEWORKS"):
            pytest.fail(missing)
        pytest.skip(missing)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def run_high_queue(tq: TaskQueue) -> None:
    """Run what is in the ``high`` queue with a worker of this process (in a thread:
    Playwright's sync API keeps an event loop running in this one)."""
    burst = threading.Thread(
        target=tq.worker(queues=["high"], burst=True, handle_signals=False).run
    )
    burst.start()
    burst.join(30)


def card(page: Any, label: str) -> str:
    """The value of an overview card."""
    return str(page.locator("#overview div", has_text=label).locator("dd").first.inner_text())


def as_int(text: str) -> int:
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if digits else -1


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return found


@pytest.mark.timeout(240)
@pytest.mark.parametrize("framework", sorted(SHOPS))
def test_the_dashboard_in_a_browser(
    browser: Any, framework: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    shop = SHOPS[framework]
    cwd = EXAMPLES / BY_NAME[framework].example
    # the alert check (and the chart's history point) at once, not after a minute
    env = {**shop_env(redis_url, prefix, TASKQ_MONITORING__ALERT_INTERVAL="1"), **shop.env}
    if framework == "django":
        env["SHOP_DB"] = str(tmp_path / "shop.sqlite3")
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"],
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                                  check=False)  # fmt: skip
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}/tasks/dashboard"
    tq = TaskQueue(redis_url, key_prefix=prefix, retry={"max_retries": 0})
    name = f"{shop.package}.charge_order"
    shots = os.environ.get("DASHBOARD_SHOTS")
    with ExitStack() as stack:
        stack.callback(tq.close)
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))
        server = stack.enter_context(process(shop.server(port), cwd, env))
        wait_until_serving(client, server, timeout=60)

        # a dead-lettered order with good arguments: placed over HTTP, then failed by this
        # process's own worker (a payment API that was down) before the shop's worker starts
        def payment_down(*args: Any, **kwargs: Any) -> None:
            raise ConnectionError("payment API <b>down</b>")

        tq.task(name=name, queue="high")(payment_down)
        dead_id = place(client)
        dead = tq.handle(dead_id, "high")
        run_high_queue(tq)
        assert dead.status() == "failed"

        worker_argv = shop.worker or [sys.executable, "-m", "taskq_core.cli", "worker",
                                      "--app", f"{shop.package}:tq"]  # fmt: skip
        worker = stack.enter_context(process(worker_argv, cwd, env))

        # the hour's history as the workers' alert check leaves it, a point a minute
        now_ms = int(time.time() * 1000)
        for n, minutes_ago in enumerate((4, 3, 2, 1)):
            totals = {"enqueued": 30 * n, "succeeded": 25 * n, "failed": 2 * n, "retried": 0,
                      "dead": 0}  # fmt: skip
            at = now_ms - minutes_ago * 60_000
            point = orjson.dumps({"at": at, "t": totals})
            tq.broker.snapshot_add(at, point, 0, series="history")

        # -- without credentials: open figures, live; no action; a forged one is refused
        anonymous = browser.new_context()
        stack.callback(anonymous.close)
        page = anonymous.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.select_option("#every", "2000")
        wait_for(lambda: page.get_attribute("#taskq-dashboard", "data-refreshed"), 20,
                 f"the first refresh ({errors})")  # fmt: skip
        assert page.get_attribute("#taskq-dashboard", "data-admin") == "false"
        # the chart: three minutes of the seeded history (25 succeeded, 2 failed in each)
        assert page.locator("#chart rect.ok").count() >= 3
        assert "failure rate 7.4 %" in page.inner_text("figcaption")
        before = as_int(card(page, "Succeeded"))
        for _ in range(20):
            place(client)
        try:
            wait_for(lambda: as_int(card(page, "Succeeded")) >= before + 20, 60,
                     "the Succeeded figure to grow by 20 on the page")  # fmt: skip
        except AssertionError as exc:
            shown = card(page, "Succeeded"), page.inner_text("#status"), errors[:5]
            raise AssertionError(f"{exc}: {shown}\nworker:\n{worker.text()[-3000:]}") from None
        assert page.locator("#queues tbody tr", has_text="high").count() == 1
        assert page.locator("button", has_text="Retry").count() == 0
        assert page.locator("button", has_text="Purge").count() == 0
        assert "Sign in" in page.inner_text("#failures-note")
        # a phone: nothing wider than the screen (tables scroll inside their own box), and
        # the keyboard reaches the skip link first
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "skip"
        forged = page.evaluate(
            """async () => (await fetch('/tasks/failed/high/retry', {method: 'POST',
                 headers: {'content-type': 'application/json'},
                 body: JSON.stringify({all: true})})).status"""
        )
        assert forged == 401
        assert dead.status() == "failed"

        # -- with the admin token: look the task up, retry it, see it succeed
        admin = browser.new_context(extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        stack.callback(admin.close)
        page = admin.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url)
        wait_for(lambda: page.get_attribute("#taskq-dashboard", "data-admin") == "true", 20,
                 "the page to learn it may act")  # fmt: skip
        row = page.locator("#failures tbody tr", has_text=dead_id)
        row.wait_for(timeout=20_000)
        # the error is shown as text, its markup escaped
        assert "payment API <b>down</b>" in row.inner_text()
        page.fill("#lookup-id", dead_id)
        page.click("#lookup button[type=submit]")
        page.locator("#lookup-result h3", has_text=dead_id).wait_for(timeout=10_000)
        assert "failed" in page.inner_text("#lookup-result")
        if shots:
            page.screenshot(path=str(Path(shots) / f"dashboard-{framework}.png"), full_page=True)
        row.locator("button", has_text="Retry").click()
        wait_for(lambda: dead.status() == "succeeded", 30, "the retried order to succeed")
        page.fill("#lookup-id", dead_id)
        page.click("#lookup button[type=submit]")
        wait_for(lambda: "succeeded" in page.inner_text("#lookup-result"), 10,
                 "the page to show it succeeded")  # fmt: skip
        wait_for(lambda: page.locator("#failures tbody tr", has_text=dead_id).count() == 0, 15,
                 "the retried task to leave the failures list")  # fmt: skip
        # no script error on either page (refused reads are answers, not errors)
        assert not [e for e in errors if e.startswith("page error")], errors
        assert worker.proc.poll() is None, worker.text()
        assert server.proc.poll() is None, server.text()


HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@pytest.mark.timeout(120)
def test_hostile_text_is_shown_as_text(browser: Any, redis_url: str, prefix: str) -> None:
    """Markup in an error message, a task's arguments, a task name, a worker's host, id and
    queues (all of which an attacker who can enqueue, or write to Redis, controls) is shown
    escaped: it appears as text and nothing of it runs."""
    shop = SHOPS["starlette"]
    cwd = EXAMPLES / BY_NAME["starlette"].example
    # the application lets the look-up show arguments (http.show_arguments; off by default)
    env = shop_env(redis_url, prefix, TASKQ_HTTP__SHOW_ARGUMENTS="true")
    port = free_port()
    tq = TaskQueue(redis_url, key_prefix=prefix, retry={"max_retries": 0})
    with ExitStack() as stack:
        stack.callback(tq.close)
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))
        server = stack.enter_context(process(shop.server(port), cwd, env))
        wait_until_serving(client, server, timeout=60)

        def hostile(*args: Any, **kwargs: Any) -> None:
            raise ValueError(HOSTILE)

        task = tq.task(name="shop.hostile", queue="high")(hostile)
        handle = task.options(task_id="hostile-1").enqueue(HOSTILE, note=HOSTILE)
        run_high_queue(tq)
        assert handle.status() == "failed"
        # a task name and a queue name the core would refuse, in a message an attacker with
        # write access to Redis rewrote
        key = f"{prefix}:{{high}}:msg"
        stored = tq.broker.client.hget(key, "hostile-1")  # type: ignore[attr-defined]
        message = stored_dict(stored, "hostile-1", "high")
        message.update(task=HOSTILE)
        tq.broker.client.hset(key, "hostile-1", orjson.dumps(message))  # type: ignore[attr-defined]
        # a worker's heartbeat as an attacker with write access to Redis could forge it
        record = {"id": HOSTILE, "host": HOSTILE, "pid": 1, "queues": [HOSTILE], "busy": 0,
                  "concurrency": 1, "rss_bytes": 1, "started_at": 0, "seen_at": 0}  # fmt: skip
        tq.broker.put_heartbeat("hostile-worker", orjson.dumps(record), 60_000, 0)
        # and a custom metric's label value, which any code that counts something sets
        tq.metrics.counter("hostile_events", "Hostile", labels=("who",)).inc(who=HOSTILE)
        tq.metrics.flush()

        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        stack.callback(context.close)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/tasks/dashboard")
        row = page.locator("#failures tbody tr", has_text="hostile-1")
        row.wait_for(timeout=20_000)
        assert row.inner_text().count(HOSTILE) == 2  # the task's name and its error
        page.locator("#workers tbody tr", has_text="window.__pwned").first.wait_for(timeout=20_000)
        assert HOSTILE in page.inner_text("#workers")
        page.locator("#custom tbody tr", has_text="hostile_events").wait_for(timeout=20_000)
        assert HOSTILE in page.inner_text("#custom")
        page.fill("#lookup-id", "hostile-1")
        page.click("#lookup button[type=submit]")
        page.locator("#lookup-result h3", has_text="hostile-1").wait_for(timeout=10_000)
        shown = page.inner_text("#lookup-result")
        # the arguments (positional and keyword) and the error, each as text
        result = page.locator("#lookup-result")
        assert result.get_by_role("heading", name="args", exact=True).count() == 1
        assert result.get_by_role("heading", name="kwargs", exact=True).count() == 1
        assert shown.count("window.__pwned=2") >= 3
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("main script").count() == 0

"""Task log lines (escaped, arguments only when asked) and OpenTelemetry spans linked from
enqueue to execution."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskq_core import TaskQueue
from taskq_core.middleware import Middleware
from taskq_core.observability.logs import JsonFormatter, TaskLogMiddleware, escape, render
from taskq_core.observability.tracing import TracingMiddleware, instrument, uninstrument
from taskq_core.web import RequestScope

EVIL = "line1\r\nFAKE event=task.succeeded \x1b[31mred\x1b[0m \x9b2J"


def run_worker(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def test_escape_keeps_one_line_without_terminal_escapes() -> None:
    out = escape(EVIL)
    assert "\n" not in out
    assert "\r" not in out
    assert "\x1b" not in out
    assert "\x9b" not in out
    assert out.startswith("line1\\r\\nFAKE")
    assert "\\x1b[31m" in out
    assert "\\x9b" in out
    line = render({"error": EVIL, "task": "t"}, "console")
    assert line.count("\n") == 0
    assert line.endswith("task=t")
    as_json = render({"error": EVIL}, "json")
    assert "\x1b" not in as_json
    assert "\x9b" not in as_json
    assert "\n" not in as_json
    assert orjson.loads(as_json) == {"error": EVIL}


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_one_line_per_outcome_without_arguments(
    make_app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture, fmt: str
) -> None:
    tq = make_app("memory", worker={"log_format": fmt}, retry={"max_retries": 0})

    @tq.task(name="l.secret")
    def secret(password: str) -> str:
        raise ValueError(EVIL)

    tq.task(name="l.fine")(lambda password: "hunter2-result")
    with caplog.at_level(logging.INFO, logger="taskq.tasks"):
        tq.enqueue("l.secret", ["hunter2"])
        tq.enqueue("l.fine", ["hunter2"])
        run_worker(tq)
    lines = [r for r in caplog.records if r.name == "taskq.tasks"]
    assert len(lines) == 2
    text = "\n".join(r.getMessage() for r in lines)
    assert "hunter2" not in text  # neither arguments nor results
    assert "\x1b" not in text
    assert text.count("\n") == 1
    fields = {r.taskq["event"]: r.taskq for r in lines}  # type: ignore[attr-defined]
    failed = fields["task.failed"]
    assert failed["task"] == "l.secret"
    assert failed["queue"] == "default"
    assert failed["attempt"] == 1
    assert failed["error_type"] == "ValueError"
    assert failed["duration_ms"] >= 0
    assert failed["worker"]
    levels = {r.taskq["event"]: r.levelname for r in lines}  # type: ignore[attr-defined]
    assert levels == {"task.failed": "WARNING", "task.succeeded": "INFO"}
    if fmt == "json":
        assert {orjson.loads(r.getMessage())["event"] for r in lines} == set(fields)


def test_arguments_are_logged_when_asked(
    make_app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture
) -> None:
    tq = make_app("memory", monitoring={"log_args": True})
    tq.task(name="l.args")(lambda x, y=0: None)
    with caplog.at_level(logging.INFO, logger="taskq.tasks"):
        tq.enqueue("l.args", [1], {"y": 2})
        run_worker(tq)
    [line] = [r for r in caplog.records if r.name == "taskq.tasks"]
    # a value holding quotes, spaces or = is quoted, its quotes escaped
    assert line.getMessage().endswith('args=[1] kwargs="{\\"y\\":2}"')
    assert line.taskq["kwargs"] == '{"y":2}'  # type: ignore[attr-defined]


def test_results_are_logged_only_when_asked(
    make_app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture
) -> None:
    for asked in (False, True):
        caplog.clear()
        tq = make_app("memory", monitoring={"log_results": asked})
        tq.task(name="l.result")(lambda: {"total": 42})
        with caplog.at_level(logging.INFO, logger="taskq.tasks"):
            tq.enqueue("l.result")
            run_worker(tq)
        [line] = [r for r in caplog.records if r.name == "taskq.tasks"]
        if asked:
            assert line.taskq["result"] == '{"total":42}'  # type: ignore[attr-defined]
        else:
            assert "result" not in line.taskq  # type: ignore[attr-defined]
            assert "total" not in line.getMessage()


def test_task_logs_can_be_turned_off(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory", monitoring={"task_logs": False})
    assert not any(isinstance(m, TaskLogMiddleware) for m in tq.middleware)


def test_json_formatter_merges_task_fields() -> None:
    record = logging.LogRecord("taskq.tasks", logging.INFO, __file__, 1, "x", None, None)
    record.taskq = {"event": "task.succeeded", "task_id": "abc"}
    out = orjson.loads(JsonFormatter().format(record))
    assert out["event"] == "task.succeeded"
    assert out["level"] == "INFO"
    plain = logging.LogRecord("other", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert orjson.loads(JsonFormatter().format(plain))["message"] == "a\nb"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_enqueue_and_execution_spans_are_linked(
    make_app: Callable[..., TaskQueue], spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tq = make_app("memory", retry={"max_retries": 0})
    instrument(tq, tracer_provider=provider)
    instrument(tq, tracer_provider=provider)  # idempotent
    assert sum(isinstance(m, TracingMiddleware) for m in tq.middleware) == 1
    tracer = provider.get_tracer("test")

    @tq.task(name="t.work")
    def work() -> None:
        with tracer.start_as_current_span("inside"):
            pass

    @tq.task(name="t.boom")
    def boom() -> None:
        raise RuntimeError("boom")

    tq.enqueue("t.work")
    tq.enqueue("t.boom")
    run_worker(tq)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    send, process, inside = by_name["send t.work"], by_name["process t.work"], by_name["inside"]
    assert send.kind == SpanKind.PRODUCER
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert inside.parent is not None
    assert inside.parent.span_id == process.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.destination.name"] == "default"
    failed = by_name["process t.boom"]
    assert failed.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in failed.events)
    uninstrument(tq)
    assert tq.trace_hook is None


def test_a_web_requests_traceparent_is_continued(
    make_app: Callable[..., TaskQueue], spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tq = make_app("memory")
    instrument(tq, tracer_provider=provider)
    tq.task(name="t.work")(lambda: None)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    with RequestScope(tq, headers):
        tq.enqueue("t.work")
    run_worker(tq)
    for span in exporter.get_finished_spans():
        assert format(span.context.trace_id, "032x") == trace_id
    assert {s.name for s in exporter.get_finished_spans()} == {"send t.work", "process t.work"}


def test_an_async_tasks_span_is_current_while_it_runs_and_only_then(
    make_app: Callable[..., TaskQueue], spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tq = make_app("memory", retry={"max_retries": 0})
    instrument(tq, tracer_provider=provider)
    tracer = provider.get_tracer("test")
    outside: list[bool] = []

    @tq.task(name="t.async")
    async def work() -> None:
        await asyncio.sleep(0)  # the span stays current across a suspension
        with tracer.start_as_current_span("inside"):
            pass

    @tq.task(name="t.async_boom")
    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad value")

    class After(Middleware):
        def after_task(self, worker: Any, event: Any) -> None:
            outside.append(trace.get_current_span().get_span_context().is_valid)

    tq.middleware.append(After())
    with tracer.start_as_current_span("request"):  # the enqueue span is a child of this one
        tq.enqueue("t.async")
    tq.enqueue("t.async_boom")
    run_worker(tq)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    request, send = by_name["request"], by_name["send t.async"]
    process, inside = by_name["process t.async"], by_name["inside"]
    for child, parent in ((send, request), (process, send), (inside, process)):
        assert child.parent is not None, child.name
        assert child.parent.span_id == parent.context.span_id, child.name
    assert process.attributes is not None
    assert process.attributes["taskq.attempt"] == 1
    assert process.status.status_code != StatusCode.ERROR
    failed = by_name["process t.async_boom"]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "ValueError: bad value"
    assert [e.name for e in failed.events] == ["exception"]
    assert outside == [False, False]  # no span is left current once a task is done

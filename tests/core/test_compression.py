"""Large payloads stored compressed (``compress_above``): a zstd frame in place of the
message's JSON, read by any worker; the limit holds on the JSON, a frame that would inflate
past it is refused without being expanded, and every reader of stored messages (handles,
the routes, the CLI) reads both forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import zstandard

from taskq_core import TaskQueue
from taskq_core.errors import PayloadTooLarge
from taskq_core.message import ZSTD_MAGIC, BadMessage, Message, decode, stored_dict

BIG = "lorem ipsum dolor sit amet " * 2000  # 54 KB of text that compresses well


def stored_body(tq: TaskQueue, queue: str, task_id: str) -> bytes:
    state = tq.broker.get(queue, task_id)
    assert state is not None
    assert state.message is not None
    return bytes(state.message)


def test_a_large_message_is_stored_compressed_and_runs_with_its_arguments(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, compress_above=1024)
    seen: list[Any] = []

    def record(text: str, n: int = 0) -> int:
        seen.append((text, n))
        return len(text)

    echo = tq.task(name="z.echo")(record)
    big = echo.enqueue(BIG, n=7)
    small = echo.enqueue("short")
    body = stored_body(tq, "default", big.id)
    assert body.startswith(ZSTD_MAGIC)
    assert len(body) < len(BIG) // 20
    assert stored_body(tq, "default", small.id).startswith(b"[")  # JSON (compact)
    tq.worker(burst=True, handle_signals=False).run()
    assert sorted(seen, key=lambda s: len(s[0])) == [("short", 0), (BIG, 7)]
    assert big.result(timeout=5) == len(BIG)
    # the handle, the route and the CLI's readers see the same message
    assert big.info()["task"] == "z.echo"
    assert stored_dict(body)["kwargs"] == {"n": 7}


def test_a_retry_is_stored_compressed_again(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    from taskq_core.errors import Retry

    tq = make_app(broker_kind, compress_above=1024, retry={"backoff": 0.0, "jitter": 0.0})
    tries: list[int] = []

    @tq.task(name="z.flaky")
    def flaky(text: str) -> int:
        tries.append(len(text))
        if len(tries) == 1:
            raise Retry(delay=0)
        return len(text)

    h = flaky.enqueue(BIG)
    w = tq.worker(burst=True, handle_signals=False)
    w.run()
    if len(tries) == 1:  # the retry was due a moment later than the burst ended
        tq.worker(burst=True, handle_signals=False).run()
    assert tries == [len(BIG), len(BIG)]
    assert h.result(timeout=5) == len(BIG)


def test_every_worker_reads_both_forms_during_an_upgrade(
    make_app: Callable[..., TaskQueue],
) -> None:
    # two processes on one Redis: one compresses, the other does not (yet)
    producer = make_app("redis", compress_above=1024)
    plain = make_app("redis")
    ran: list[int] = []
    for app in (producer, plain):
        app.task(name="z.len")(lambda text: ran.append(len(text)))
    compressed = producer.get_task("z.len").enqueue(BIG)
    old_style = plain.get_task("z.len").enqueue(BIG)
    assert stored_body(producer, "default", compressed.id).startswith(ZSTD_MAGIC)
    assert stored_body(producer, "default", old_style.id).startswith(b"[")
    # a worker of an app that does not compress reads the compressed message too
    plain.worker(burst=True, handle_signals=False).run()
    assert ran == [len(BIG), len(BIG)]


def test_the_limit_is_on_the_json_and_a_bomb_is_refused_unexpanded() -> None:
    m = Message("t1", "z.echo", "default", [BIG], {}, 0, 1)
    with pytest.raises(PayloadTooLarge, match="over the limit of 4096"):
        m.encode(limit=4096, compress_above=1024)
    packed = m.encode(compress_above=1024)
    assert decode(packed, limit=len(BIG) + 1000).args == [BIG]
    with pytest.raises(BadMessage, match="over the limit of 10000 bytes once decompressed"):
        decode(packed, limit=10_000)
    # 1 GiB of zeros in a few KB: read no further than the limit
    bomb = zstandard.ZstdCompressor().compress(b"0" * (1 << 30))
    assert len(bomb) < 100_000
    with pytest.raises(BadMessage, match="once decompressed"):
        decode(bomb, limit=1 << 20)
    # a frame that does not say its size is read no further than the limit too
    unsized = zstandard.ZstdCompressor(write_content_size=False)
    assert decode(unsized.compress(orjson.dumps(m.to_dict())), limit=1 << 20).args == [BIG]
    with pytest.raises(BadMessage, match="once decompressed"):
        decode(unsized.compress(b"0" * (1 << 24)), limit=1 << 20)
    with pytest.raises(BadMessage, match="does not decompress"):
        decode(ZSTD_MAGIC + b"not a frame at all", limit=1 << 20)
    # the bare magic (found by tests/security/test_hostile_messages.py): every refusal's
    # text starts with "message", as the dead-letter record's reader expects
    with pytest.raises(BadMessage, match=r"^message is compressed but does not decompress"):
        decode(ZSTD_MAGIC, limit=1 << 20)


def test_a_message_that_does_not_shrink_or_a_workflow_step_stays_json() -> None:
    noise = orjson.dumps(list(range(3000))).decode()
    plain = Message("t2", "z.echo", "default", [noise], {}, 0, 1)
    assert plain.encode(compress_above=256).startswith(ZSTD_MAGIC)  # digits compress
    random_bytes = bytes(range(256)) * 8
    hexed = Message("t3", "z.echo", "default", [random_bytes.hex()], {}, 0, 1)
    assert len(hexed.encode(compress_above=256)) <= len(hexed.encode())
    step = Message("t4", "z.echo", "default", [BIG], {}, 0, 1, wf={"id": "w", "step": 0})
    assert step.encode(compress_above=256, compact=True).startswith(b"{")


def test_the_setting_is_checked(make_app: Callable[..., TaskQueue]) -> None:
    with pytest.raises(ValueError, match="compress_above"):
        make_app("memory", compress_above=10)

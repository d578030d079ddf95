"""The HTTP routes and the core agree on names: a queue name or task id the core accepts on
enqueue is served by the routes, and one it refuses is a 400, never a lookup. Both come from
one rule (``taskq_core.validation.NAME_CHARS`` and its lengths)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskq_core import TaskQueue
from taskq_core.errors import InvalidName
from taskq_core.http import Request
from taskq_core.http.routes import ASSET_PARAM, ID_PARAM, PATH_PARAMS, QUEUE_PARAM, RouteTable
from taskq_core.validation import MAX_QUEUE_NAME, MAX_TASK_ID, check_queue_name, check_task_id

# the allowed characters, and near misses: a space, other punctuation, non-ASCII letters and
# digits (full-width A, Arabic-Indic three), a newline (``$`` matches before a final newline)
_ODD = [" ", "%", "+", "*", "\n", "\u00e9", "\uff21", "\u0663"]
_ALPHABET = st.sampled_from([*"aZ09_.:-@", *_ODD])
_NAMES = st.text(_ALPHABET, min_size=0, max_size=MAX_TASK_ID + 8) | st.sampled_from(
    ["x" * MAX_QUEUE_NAME, "x" * (MAX_QUEUE_NAME + 1), "y" * MAX_TASK_ID, "y" * (MAX_TASK_ID + 1)]
)


def _core_accepts(check: Callable[[object], str], name: str) -> bool:
    try:
        check(name)
    except InvalidName:
        return False
    return True


@pytest.fixture(scope="module")
def table() -> Iterator[RouteTable]:
    tq = TaskQueue(broker="memory://")
    yield RouteTable(tq, prefix="/tasks")
    tq.close()


def test_the_routes_take_their_patterns_from_the_core() -> None:
    assert PATH_PARAMS == {"id": ID_PARAM, "queue": QUEUE_PARAM, "asset": ASSET_PARAM}
    # a dashboard asset is a plain file name of the package's own: no path, no dot-dot
    assert ASSET_PARAM["pattern"] == r"^[a-z]{1,40}\.(js|css)$"
    # what the OpenAPI document and the checks publish: anchored, ASCII classes only
    # a queue name may carry requirements (default@eu.gpu); its length is maxLength
    assert (
        QUEUE_PARAM["pattern"] == r"^[A-Za-z0-9_.:\-]+(@[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,7})?$"
    )
    assert (QUEUE_PARAM["minLength"], QUEUE_PARAM["maxLength"]) == (1, 64)
    assert ID_PARAM["pattern"] == r"^[A-Za-z0-9_.:\-]{1,100}$"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_NAMES)
@example(name="default")
@example(name="a\n")
@example(name="")
@example(name="default@eu.gpu")
@example(name="default@gpu.eu")
def test_the_http_patterns_and_the_core_accept_the_same_names(name: str) -> None:
    queue_ok = _core_accepts(check_queue_name, name)
    id_ok = _core_accepts(check_task_id, name)
    fits = 1 <= len(name) <= QUEUE_PARAM["maxLength"]
    published = fits and re.fullmatch(QUEUE_PARAM["pattern"], name) is not None
    assert published == queue_ok
    assert (re.fullmatch(ID_PARAM["pattern"], name) is not None) == id_ok


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(name=_NAMES.filter(bool))
@example(name="orders:high-1.0_x")
@example(name="café")
@example(name="default@gpu.eu")
@example(name="default@eu.gpu")
@example(name="x" * (MAX_QUEUE_NAME + 1))
def test_a_route_refuses_exactly_the_names_the_core_refuses(table: RouteTable, name: str) -> None:
    # path parameters are checked before auth: a refused name is 400, an accepted one
    # goes on (401 without credentials, 404 for an unknown task)
    job = table.dispatch(Request("GET", f"/jobs/{name}"))
    assert (job.status != 400) == _core_accepts(check_task_id, name), job.body
    retry = table.dispatch(Request("POST", f"/failed/{name}/retry"))
    assert (retry.status != 400) == _core_accepts(check_queue_name, name), retry.body


def test_a_routed_queue_is_read_in_its_one_spelling() -> None:
    """``default@gpu.eu`` and ``default@eu.gpu`` are one queue: the route hands the core the
    sorted spelling (not a 400, not another queue's empty answer)."""
    tq = TaskQueue(broker="memory://")
    table = RouteTable(tq, auth=lambda request: True)
    task = tq.task(name="names.routed", requires={"gpu", "eu"})(lambda: None)
    handle = task.enqueue()
    assert handle.queue == "default@eu.gpu"
    for spelled in ("default@eu.gpu", "default@gpu.eu", "default@gpu.eu.gpu"):
        response = table.dispatch(Request("GET", f"/jobs/{handle.id}", query={"queue": [spelled]}))
        assert response.status == 200, response.body
    tq.close()

"""The Lua scripts take their queue keys by name: each script's ``-- KEYS:`` header says which
keys it takes, and this checks the header against the prelude ``brokers/scripts.py`` generates
and against the keys the Python side actually passes (``redis_plans.Plans``); and that no
script numbers a queue's keys by hand any more (``KEYS[k + 6]``). The ``-- ARGV:`` headers
are checked too: the fixed arguments they list are the ones the script reads by number and
the callers pass.

Header notation: ``queue(*)`` every key of ``keys.QueueKeys`` in order, or
``queue(ready, msg, ...)`` those only; ``x nqueues`` the same for each of several queues;
``+ result`` one result key after them, ``+ result...`` one per task (possibly none), and so
on for ``idempotency``; ``workflow + queue(*) x nqueues`` a workflow's record first, then its
queues' keys (``lua/_workflow.lua``); ``+ workflow...`` after the others, each workflow's
record and its queues' keys (settle.lua, for the steps among its outcomes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest

from taskq_core.brokers import scripts
from taskq_core.brokers.base import EnqueueItem, Lease, Outcome, Settings, StepOutcome
from taskq_core.brokers.redis_plans import Plan, Plans, ScriptCall
from taskq_core.brokers.redis_workflows import RedisWorkflows
from taskq_core.keys import QUEUE_KEY_NAMES, Keys, stored_suffix
from taskq_core.workflow.builder import StartRequest

_HEADER = re.compile(
    r"^-- KEYS: (?P<lead>workflow \+ )?queue\((?P<names>[^)]*)\)(?P<many> x nqueues)?"
    r"(?P<extra>( \+ \w+(\.\.\.)?)*)\s*$",
    re.MULTILINE,
)
#: what each kind of extra key looks like (keys.py): a result key, an idempotency key
_EXTRA_KINDS = {"result": ":result:", "idempotency": ":idem:", "workflow": ":workflow"}


@dataclass(frozen=True)
class Header:
    queue_keys: tuple[str, ...]
    per_queue: bool
    #: (kind, one per task) for each kind of key after the queue's, in order
    extra: tuple[tuple[str, bool], ...]
    #: a workflow's record comes first (the workflow scripts)
    workflow: bool = False


def _source(script: scripts.Script) -> str:
    return resources.files("taskq_core").joinpath("lua", f"{script.file}.lua").read_text()


def header(script: scripts.Script) -> Header:
    found = _HEADER.findall(_source(script))
    assert len(found) == 1, f"{script.name}.lua: one '-- KEYS: queue(...)' header line"
    match = _HEADER.search(_source(script))
    assert match is not None
    names = match["names"].strip()
    queue_keys = QUEUE_KEY_NAMES if names == "*" else tuple(n.strip() for n in names.split(","))
    extra = tuple(
        (part.rstrip("."), part.endswith("..."))
        for part in match["extra"].replace("+", " ").split()
    )
    return Header(queue_keys, bool(match["many"]), extra, bool(match["lead"]))


def calls() -> list[ScriptCall]:
    """A call of every script, as the broker builds them (two queues for fetch)."""
    plans = Plans(Keys("hdr"), Settings())
    items = [
        EnqueueItem("a", "t1", "task", b"{}"),
        EnqueueItem("a", "t2", "task", b"{}", idempotency_key="k2"),
        EnqueueItem("a", "t3", "task", b"{}", delay_ms=5),
    ]
    outcomes = [
        Outcome("a", "t1", 1, "ok", "task", b"{}"),
        Outcome("a", "t2", 2, "retry", "task", b"{}", 10, b"{}"),
    ]
    leases = [Lease("a", "t1", 1)]
    broker = _Workflows(plans)
    start = StartRequest("wf_1", ["a", "b"], {"n": b"1"}, [0], 1)
    plan_list: list[Plan[Any]] = [
        plans.enqueue(items, 0),
        plans.enqueue(items[:1], 0),  # one task due now: enqueue_one.lua
        plans.fetch(["a", "b"], 4, 0, outcomes, {"a": {"x": 1}}),
        plans.renew(leases, 0),
        plans.release(leases, "graceful", "", 0),
        plans.cancel("a", "t1", b"{}"),
        plans.dead_retry("a", ["t1", "t2"]),
        plans.dead_purge("a", ["t1"]),
        broker._start(start, 0),
        broker._cancel("wf_1", ["a", "b"], 0),
        broker._retry("wf_1", ["a", "b"], [(0, 0, b"{}")], 0),
        broker._end("b", "wf_1.0", ["a", "b"], 0),
        # a settle with a workflow's step: settle_wf (settle.lua with the workflow helpers)
        plans.settle([Outcome("a", "wf_1.0", 1, "ok", "task", b"{}", step=_STEP)], 0, None),
    ]
    return [c for plan in plan_list for c in plan.commands if isinstance(c, ScriptCall)]


_STEP = StepOutcome("wf_1", 0, "succeeded", b"1", ("a", "b"))


class _Workflows(RedisWorkflows):
    def __init__(self, plans: Plans) -> None:
        self.plans = plans


def test_every_script_is_called_here() -> None:
    assert {c.script.name for c in calls()} == {s.name for s in scripts.ALL}


@pytest.mark.parametrize("script", scripts.ALL, ids=lambda s: s.name)
def test_the_header_names_the_keys_the_prelude_numbers(script: scripts.Script) -> None:
    declared = header(script)
    assert declared.queue_keys == script.queue_keys
    offsets = ", ".join(f"{name} = {i}" for i, name in enumerate(script.queue_keys, 1))
    assert f"local QK = {len(script.queue_keys)}\nlocal K = {{{offsets}}}\n" in (
        script.source.decode()
    )


def test_the_python_side_passes_what_each_header_says() -> None:
    for call in calls():
        declared = header(call.script)
        # keys given as the first arguments (enqueue_one's result key) are keys too
        keys = [*call.keys, *call.args[: call.arg_keys]]
        width = len(declared.queue_keys)
        if declared.workflow:
            assert keys[0] == "hdr:{wf:wf_1}:workflow", call.script.name
            keys = keys[1:]
            assert len(keys) == 2 * width, call.script.name  # its queues a and b
        nqueues = (
            (len(keys) // width if declared.workflow else call.args[4])  # fetch.lua's ARGV[5]
            if declared.per_queue
            else 1
        )
        for q in range(nqueues):
            given = keys[q * width : (q + 1) * width]
            suffixes = [key.rsplit(":", 1)[1] for key in given]
            assert suffixes == [stored_suffix(n) for n in declared.queue_keys], call.script.name
            assert len({key.rsplit(":", 1)[0] for key in given}) == 1, "one queue's keys"
        kinds = ""
        rest = keys[nqueues * width :]
        while rest:
            key, rest = rest[0], rest[1:]
            kind = [k for k, marker in _EXTRA_KINDS.items() if marker in key]
            assert len(kind) == 1, f"{call.script.name}: unexpected key {key}"
            kinds += kind[0][0]
            if kind[0] == "workflow":  # its queues' keys follow it (here a and b)
                assert [k.rsplit(":", 1)[0] for k in rest[: 2 * width : width]] == [
                    "hdr:{a}",
                    "hdr:{b}",
                ], call.script.name
                rest = rest[2 * width :]
        pattern = "".join(f"{k[0]}*" if many else k[0] for k, many in declared.extra)
        assert re.fullmatch(pattern, kinds), (call.script.name, kinds, declared.extra)


def test_each_calls_extra_keys_are_exercised() -> None:
    # the check above would pass vacuously if no call carried its extra keys
    seen = {c.script.name: len(c.keys) + c.arg_keys - len(c.script.queue_keys) for c in calls()}
    assert seen["enqueue"] == 4  # three result keys and one idempotency key
    assert seen["enqueue_one"] == 1
    assert seen["settle"] == 2
    assert seen["dead_retry"] == 2
    assert seen["cancel"] == 1


#: how a script may index KEYS: a queue key by name (after the queue's offset), a key after
#: the queue's (``QK + ...``), or an idempotency key at the index the caller passed
#: (a workflow's: its record first, its queues' keys from ``c.qb``, the record's index as
#: settle.lua's caller passes it)
_ALLOWED_INDEX = re.compile(
    r"((k|q \* QK|c\.qb|c\.qb \+ d\.q \* QK) \+ )?K\.\w+|QK \+ .+|idem_at|1"
    r"|wk_at"
)


@pytest.mark.parametrize("name", [*dict.fromkeys(s.file for s in scripts.ALL), "_lib", "_workflow"])
def test_no_script_numbers_a_queues_keys_by_hand(name: str) -> None:
    source = resources.files("taskq_core").joinpath("lua", f"{name}.lua").read_text()
    indexes = re.findall(r"KEYS\[([^\]]*)\]", source)
    assert indexes, name
    odd = [index for index in indexes if not _ALLOWED_INDEX.fullmatch(index.strip())]
    assert odd == [], f"{name}.lua: use KEYS[k + K.<name>] (brokers/scripts.py)"


def test_the_flags_line_stays_first() -> None:
    for script in scripts.ALL:
        flagged = _source(script).startswith("#!")
        assert script.source.startswith(b"#!lua flags=") == flagged, script.name
        if flagged:
            second = script.source.split(b"\n", 2)[1]
            assert second.startswith(b"-- generated by brokers/scripts.py"), script.name


def argv_header(script: scripts.Script) -> tuple[int, bool]:
    """How many fixed arguments the ``-- ARGV:`` header lists (before any ``then ...``), and
    whether more follow (per task, pairs, or a plain list of ids)."""
    lines = _source(script).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-- ARGV:"))
    text = lines[start].removeprefix("-- ARGV:")
    for line in lines[start + 1 :]:
        if not line.startswith("--") or line.startswith("-- Returns"):
            break
        text += " " + line.removeprefix("--")
    text = re.sub(r"\([^)]*\)", "", text)  # explanations in parentheses
    text = re.split(r"\.(?:\s|$)", text)[0]  # the first sentence
    if text.strip() == "ids":
        return 0, True
    fixed, then, _ = text.partition(", then")
    return len([name for name in fixed.split(",") if name.strip()]), bool(then)


def test_the_argv_headers_match_what_the_scripts_read_and_the_callers_pass() -> None:
    for call in calls():
        fixed, more = argv_header(call.script)
        # every fixed argument the header lists is read by number, and no other is
        read = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", _source(call.script))}
        assert read == set(range(1, fixed + 1)), (call.script.name, fixed, read)
        given = len(call.args) - call.arg_keys
        if more:
            assert given >= fixed, call.script.name
        else:
            assert given == fixed, (call.script.name, fixed, given)

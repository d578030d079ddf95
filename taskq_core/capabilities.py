"""Routing by worker capabilities (docs/scaling.md, "Capability routing").

A task that requires capabilities (``@tq.task(requires={"gpu"})``) goes to a queue of its
own beside its base queue, named by the base and the sorted requirements
(``default@gpu``, ``default@eu.gpu``). A worker started with capabilities
(``taskq worker --capabilities gpu,eu``) serves, for each of its queues, every such queue
whose requirements it has all of, before the base queue at the same place in its priority
order: a capable worker is the scarce one, so the work only it can do goes first. Nothing
is scanned or skipped at fetch: a worker never even sees a task it could not run.

Which routed queues exist is what producers record (the broker's queue set, written once
per process per queue) and what the app's own tasks declare; a worker reads the set when it
starts and again on each tick, so a new requirement set is served within one tick
(``worker.renew_interval``) of its first enqueue, and at once when the worker's own app
declares it. A routed queue with ready tasks that no live worker serves is reported by the
health check and ``taskq status`` as unroutable, naming the capabilities it lacks.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidName, InvalidOption
from .validation import MAX_QUEUE_NAME, MAX_REQUIREMENTS, check_capability, check_queue_name


def check_capabilities(value: object, what: str = "capabilities") -> frozenset[str]:
    """A set of capability names from a comma-separated string or an iterable of names."""
    if value is None:
        return frozenset()
    items: Iterable[object]
    if isinstance(value, str):
        items = [c.strip() for c in value.split(",") if c.strip()]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        items = value
    else:
        raise InvalidOption(
            f"{what} must be a set of names or a comma-separated string, got {type(value).__name__}"
        )
    return frozenset(check_capability(c) for c in items)


def routed_queue(queue: str, requires: frozenset[str]) -> str:
    """The queue a task of ``queue`` requiring ``requires`` goes to (``queue`` itself when
    it requires nothing); its requirements join those ``queue`` already names."""
    if not requires:
        return queue
    base, named = split_queue(queue)
    caps = named | requires
    if len(caps) > MAX_REQUIREMENTS:
        raise InvalidOption(
            f"a task may require at most {MAX_REQUIREMENTS} capabilities, got {len(caps)}: "
            + ", ".join(sorted(caps))
        )
    name = f"{base}@{'.'.join(sorted(caps))}"
    if len(name) > MAX_QUEUE_NAME:
        raise InvalidName(
            f"queue {base!r} with the requirements {', '.join(sorted(caps))} makes the queue "
            f"name {name!r}, over {MAX_QUEUE_NAME} characters: use shorter names"
        )
    return check_queue_name(name)


def split_queue(name: str) -> tuple[str, frozenset[str]]:
    """A queue name's base and the capabilities it requires (none for a base queue)."""
    base, sep, caps = name.partition("@")
    return base, frozenset(caps.split(".")) if sep else frozenset()


def served_queues(
    queues: Iterable[str], capabilities: frozenset[str], known: Iterable[str]
) -> list[str]:
    """The queues a worker with ``capabilities`` serving ``queues`` (highest priority
    first) fetches from, in order: for each of its queues, the routed queues among
    ``known`` whose requirements it has (most requirements first, then by name), then the
    queue itself."""
    by_base: dict[str, list[str]] = {}
    for name in known:
        base, caps = split_queue(name)
        if caps and caps <= capabilities:
            by_base.setdefault(base, []).append(name)
    out: list[str] = []
    for queue in queues:
        routed = sorted(set(by_base.get(queue, ())), key=lambda n: (-n.count("."), n))
        out.extend(q for q in routed if q not in out)
        if queue not in out:
            out.append(queue)
    return out


def missing(queue: str, workers: Iterable[dict[str, object]]) -> list[str]:
    """What the capable workers lack for routed ``queue``: the requirements that no live
    worker serving its base queue has (all of them when none serves the base)."""
    base, needs = split_queue(queue)
    best: frozenset[str] | None = None
    for w in workers:
        served = w.get("queues")
        if not isinstance(served, list) or base not in served:
            continue
        caps = w.get("capabilities")
        have = frozenset(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else None
        have = have or frozenset()
        lack = needs - have
        if best is None or len(lack) < len(best):
            best = lack
    return sorted(needs if best is None else best)

"""The fault harness's classifier on hand-made journals (no processes, no Redis): the
verdicts the fault suite and the long run rest on."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Fault, classify, crash_faults, pair_runs, read_journal

LEASE = 3.0

KILLED, LIVE, OTHER = 100, 200, 300


def ev(kind: str, label: str, pid: int, t: float) -> tuple[str, str, int, float]:
    return (kind, label, pid, t)


def test_ok_lost_unexpected() -> None:
    runs = pair_runs(
        [
            ev("start", "a", LIVE, 1.0),
            ev("finish", "a", LIVE, 1.1),
            ev("start", "b", LIVE, 1.0),  # never finished, no fault: lost
            ev("start", "z", LIVE, 2.0),
            ev("finish", "z", LIVE, 2.1),
        ]
    )
    rep = classify(["a", "b", "c"], runs, [], LEASE)
    assert rep.ok == ["a"]
    assert rep.lost == ["b", "c"]
    assert rep.unexpected == ["z"]
    assert rep.duplicated == {}


def test_a_run_cut_by_a_kill_explains_its_duplicate() -> None:
    runs = pair_runs(
        [
            ev("start", "a", KILLED, 1.0),
            ev("start", "a", LIVE, 5.0),
            ev("finish", "a", LIVE, 5.1),
        ]
    )
    rep = classify(["a"], runs, [Fault("kill_worker", 2.0, KILLED)], LEASE)
    assert rep.duplicated == {"a": ["killed"]}
    assert rep.explained_by_kill == ["a"]
    assert rep.unexplained == []
    (rec,) = rep.recoveries
    assert rec.tasks_in_flight == 1
    assert rec.in_flight == pytest.approx(3.1)
    assert not rec.chained


def test_a_redelivery_cut_by_a_later_kill_makes_a_chained_recovery() -> None:
    runs = pair_runs(
        [
            ev("start", "a", KILLED, 1.0),
            ev("start", "a", OTHER, 4.0),  # the re-delivery, cut by the second kill
            ev("start", "a", LIVE, 7.0),
            ev("finish", "a", LIVE, 7.1),
        ]
    )
    faults = [Fault("kill_worker", 2.0, KILLED), Fault("kill_worker", 5.0, OTHER)]
    rep = classify(["a"], runs, faults, LEASE)
    assert rep.duplicated == {"a": ["killed", "killed"]}
    first, second = rep.recoveries
    assert first.chained
    assert first.in_flight == pytest.approx(5.1)
    assert not second.chained
    assert second.in_flight == pytest.approx(2.1)
    assert rep.summary()["recovery_in_flight_s"]["max"] == pytest.approx(2.1)


def test_a_duplicate_no_fault_explains_is_unexplained() -> None:
    runs = pair_runs(
        [
            ev("start", "a", LIVE, 1.0),
            ev("finish", "a", LIVE, 1.1),
            ev("start", "a", OTHER, 5.0),
            ev("finish", "a", OTHER, 5.1),
        ]
    )
    # a kill of an unrelated process, and one of the same process after its run finished
    # long before, explain nothing
    faults = [Fault("kill_worker", 3.0, OTHER), Fault("kill_worker", 9.0, LIVE)]
    rep = classify(["a"], runs, faults, LEASE)
    assert rep.unexplained == ["a"]
    assert rep.explained_by_kill == []


def test_a_run_finished_before_its_kill_and_rerun_after_it_was_unsettled() -> None:
    runs = pair_runs(
        [
            ev("start", "a", KILLED, 1.0),
            ev("finish", "a", KILLED, 1.9),
            ev("start", "a", LIVE, 5.0),
            ev("finish", "a", LIVE, 5.1),
        ]
    )
    rep = classify(["a"], runs, [Fault("kill_worker", 2.0, KILLED)], LEASE)
    assert rep.duplicated == {"a": ["killed_unsettled"]}
    assert rep.explained_by_kill == ["a"]
    # killed a lease or more after the run began: its lease, never renewed once it finished,
    # had lapsed on a live process, so the kill explains nothing
    rep = classify(["a"], runs, [Fault("kill_worker", 4.5, KILLED)], LEASE)
    assert rep.unexplained == ["a"]


def test_frozen_runs_and_a_late_start_after_waking_is_unexplained() -> None:
    """A task in flight when its process was frozen is explained by the freeze; one its
    process started on waking, after another worker ran it, is not: a worker drops a
    delivery leased ahead whose lease lapsed (tests/core/test_leases.py)."""
    runs = pair_runs(
        [
            ev("start", "a", KILLED, 1.0),  # in flight when frozen at 2, finishes at 7
            ev("start", "a", LIVE, 5.0),
            ev("finish", "a", LIVE, 5.1),
            ev("finish", "a", KILLED, 7.0),
            ev("start", "b", LIVE, 5.0),
            ev("finish", "b", LIVE, 5.1),
            ev("start", "b", KILLED, 6.8),  # leased before the freeze, started on waking at 6.5
            ev("finish", "b", KILLED, 6.9),
        ]
    )
    rep = classify(["a", "b"], runs, [Fault("stop_worker", 2.0, KILLED, end=6.5)], LEASE)
    assert rep.duplicated["a"] == ["frozen"]
    assert rep.unexplained == ["b"]


def test_the_journal_skips_a_cut_line_and_pairs_runs_per_process(tmp_path: Path) -> None:
    (tmp_path / "1.log").write_text("start a 1 1.0\nfinish a 1 2.0\nstart b 1 3.0\nfini")
    (tmp_path / "2.log").write_text("start b 2 4.0\nfinish b 2 4.5\n")
    runs = pair_runs(read_journal(tmp_path))
    assert [(r.pid, r.finish) for r in runs["a"]] == [(1, 2.0)]
    assert [(r.pid, r.finish) for r in runs["b"]] == [(1, None), (2, 4.5)]


def test_a_crash_line_is_a_fault_on_its_process_not_a_run() -> None:
    events = [
        ev("start", "a", KILLED, 1.0),
        ev("crash", "crash0", KILLED, 2.0),  # the crasher journals, then kills its process
        ev("start", "a", LIVE, 2.5),
        ev("finish", "a", LIVE, 2.6),
        ev("start", "b", KILLED, 1.5),  # finished, its outcome unsent at the crash
        ev("finish", "b", KILLED, 1.6),
        ev("start", "b", LIVE, 2.7),
        ev("finish", "b", LIVE, 2.8),
    ]
    runs = pair_runs(events)
    assert "crash0" not in runs  # neither a run nor unexpected
    faults = crash_faults(events)
    assert [(f.kind, f.pid, f.t) for f in faults] == [("crash", KILLED, 2.0)]
    rep = classify(["a", "b"], runs, faults, LEASE)
    assert rep.duplicated == {"a": ["crashed"], "b": ["crashed_unsettled"]}
    assert rep.explained_by_death == ["a", "b"]
    assert rep.explained_by_kill == []
    assert rep.unexpected == []
    (rec,) = rep.recoveries
    assert rec.tasks_in_flight == 1


def test_a_link_fault_explains_only_its_own_workers_runs() -> None:
    runs = pair_runs(
        [
            ev("start", "a", KILLED, 1.0),  # on the cut-off worker, in flight at the cut
            ev("finish", "a", KILLED, 3.0),
            ev("start", "a", LIVE, 5.0),
            ev("finish", "a", LIVE, 5.1),
            ev("start", "b", KILLED, 6.5),  # leased before the cut, started once it is back
            ev("finish", "b", KILLED, 6.6),
            ev("start", "b", LIVE, 5.5),
            ev("finish", "b", LIVE, 5.6),
            ev("start", "c", OTHER, 2.0),  # on another worker: the link does not explain it
            ev("finish", "c", OTHER, 2.1),
            ev("start", "c", LIVE, 2.2),
            ev("finish", "c", LIVE, 2.3),
        ]
    )
    fault = Fault("link_blackhole", 2.0, KILLED, 6.0)
    assert fault.on_link
    assert not fault.on_worker
    rep = classify(["a", "b", "c"], runs, [fault], LEASE)
    assert rep.duplicated == {"a": ["link_blackhole"], "b": ["link_blackhole"], "c": [None]}
    assert rep.unexplained == ["c"]

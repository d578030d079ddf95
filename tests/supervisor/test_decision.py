"""The autoscaler's decision rule, driven by scripted signal sequences on a clock the test
moves by hand. Every reading is a (time, Inputs) pair; nothing sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from taskq_core.supervisor.decision import (
    Autoscaler,
    Decision,
    Inputs,
    QueueLoad,
    ScalerConfig,
    bounds,
)

CONC = 4  # slots per process in these scripts


def cfg(**over: object) -> ScalerConfig:
    base: dict[str, object] = {
        "min_processes": 1,
        "max_processes": 6,
        "readings_up": 2,
        "readings_down": 3,
        "cooldown_up": 10.0,
        "cooldown_down": 30.0,
        "backlog_seconds_up": 5.0,
        "max_wait_up": 10.0,
        "memory_reserve_mb": 100.0,
    }
    base.update(over)
    return ScalerConfig(**base)  # type: ignore[arg-type]


def burst(p: int, ready: int = 200, queue: str = "default", weight: float = 1.0) -> Inputs:
    """Every slot busy and a deep backlog of 1-second tasks waiting 3 s."""
    return Inputs(
        processes=p,
        concurrency=CONC,
        queues=(QueueLoad(queue, ready, weight, 1.0),),
        oldest_wait=3.0,
        busy=p * CONC,
        slots=p * CONC,
        executions=100,
        errors=1,
        rss_mb=80,
        available_mb=8000,
    )


def idle(p: int) -> Inputs:
    return Inputs(
        processes=p,
        concurrency=CONC,
        queues=(QueueLoad("default", 0, 1.0, 1.0),),
        busy=0,
        slots=p * CONC,
        rss_mb=80,
        available_mb=8000,
    )


class Run:
    """Feeds readings to an Autoscaler every ``step`` seconds and applies its decisions
    to the process count, as the supervisor does."""

    def __init__(self, config: ScalerConfig, processes: int, step: float = 2.0) -> None:
        self.scaler = Autoscaler(config)
        self.p = processes
        self.t = 1000.0
        self.step = step
        self.log: list[Decision] = []

    def read(self, make: Inputs | Callable[[int], Inputs]) -> Decision:
        self.t += self.step
        inputs = make(self.p) if callable(make) else make
        d = self.scaler.decide(inputs, self.t)
        self.log.append(d)
        if d.action != "hold":
            self.p = d.target
        return d

    def actions(self) -> list[str]:
        return [d.action for d in self.log if d.action != "hold"]


def test_scale_up_on_a_burst_after_the_required_readings() -> None:
    run = Run(cfg(), processes=1)
    assert run.read(idle).action == "hold"
    first = run.read(burst)
    assert first.action == "hold"
    assert "1/2 readings" in first.reason
    second = run.read(burst)
    assert (second.action, second.target) == ("up", 2)
    assert second.votes == {"backlog": "up", "wait": "-", "utilisation": "up"}
    assert "backlog, utilisation call for more processes" in second.reason


def test_hold_during_the_up_cooldown_then_scale_again() -> None:
    run = Run(cfg(cooldown_up=10.0, readings_up=1), processes=1, step=2.0)
    assert run.read(burst).action == "up"  # t=+2
    held = [run.read(burst) for _ in range(4)]  # t=+4..+10: inside 10 s
    assert [d.action for d in held] == ["hold"] * 4
    assert all("cooling down" in d.reason for d in held)
    assert run.read(burst).action == "up"  # t=+12: 10 s after the first scale-up
    assert run.p == 3


def test_no_flapping_on_a_noisy_signal() -> None:
    rng = random.Random(7)
    run = Run(cfg(readings_up=2, readings_down=3), processes=3)
    for i in range(300):
        # utilisation jitters around both thresholds, the backlog comes and goes every
        # other reading: never a consistent call in one direction
        p = run.p
        busy = round(p * CONC * rng.uniform(0.2, 1.0))
        ready = 50 if i % 2 else 0
        run.read(
            Inputs(
                processes=p,
                concurrency=CONC,
                queues=(QueueLoad("default", ready, 1.0, 1.0),),
                oldest_wait=1.0 if ready else 0.0,
                busy=busy,
                slots=p * CONC,
            )
        )
    acts = run.actions()
    # alternating readings never make the required streak: no scaling at all
    assert acts == []
    assert run.p == 3


def test_no_up_down_oscillation_around_thresholds() -> None:
    """A load that sits where one process more or less would cross a threshold: after
    settling, the count never goes back and forth."""
    run = Run(cfg(readings_up=1, readings_down=1, cooldown_up=0, cooldown_down=0), processes=1)
    demand = 9  # busy slots wanted; 3 processes of 4 slots carry it
    for _ in range(100):
        p = run.p
        busy = min(demand, p * CONC)
        waiting = max(0, demand - p * CONC) * 50  # unmet demand queues up
        run.read(
            Inputs(
                processes=p,
                concurrency=CONC,
                queues=(QueueLoad("default", waiting, 1.0, 1.0),),
                oldest_wait=0.0,
                busy=busy,
                slots=p * CONC,
            )
        )
    acts = run.actions()
    assert acts == ["up", "up"]  # 1 -> 2 -> 3, then steady: 9/12 busy is inside the band
    assert run.p == 3


def test_scale_down_when_idle_one_step_per_cooldown_to_the_minimum() -> None:
    run = Run(cfg(readings_down=3, cooldown_down=30.0, min_processes=2), processes=5, step=2.0)
    decisions = [run.read(idle) for _ in range(60)]  # 120 s of idleness
    downs = [(i, d.target) for i, d in enumerate(decisions) if d.action == "down"]
    assert [t for _, t in downs] == [4, 3, 2]
    # the first after 3 readings, the next ones a cooldown (15 readings) apart
    assert [i for i, _ in downs] == [2, 17, 32]
    assert run.p == 2
    assert decisions[-1].action == "hold"
    assert "at the minimum" in decisions[-1].reason


def test_no_scale_down_while_the_rest_would_be_saturated() -> None:
    """The backlog is empty but 7 of 8 slots are busy: retiring one process would leave
    4 slots for 7 busy ones, so the rule holds."""
    run = Run(cfg(readings_down=1, cooldown_down=0), processes=2)
    inputs = replace(idle(2), busy=5, slots=8)  # 62 %: neither threshold
    d = run.read(inputs)
    assert d.action == "hold"
    assert "would leave the rest above" in d.reason


def test_respect_min_and_max() -> None:
    run = Run(cfg(min_processes=2, max_processes=3, readings_up=1, cooldown_up=0), processes=0)
    d = run.read(idle)
    assert (d.action, d.target) == ("up", 2)
    assert "below the minimum of 2" in d.reason
    run.read(burst)
    assert run.p == 3
    d = run.read(burst)
    assert (d.action, run.p) == ("hold", 3)
    assert "at the maximum" in d.reason
    # a step larger than the room left still stops at the maximum
    big = Run(cfg(max_processes=5, readings_up=1, step_up=4), processes=3)
    assert big.read(burst).target == 5
    # above the maximum: down at once, no readings needed
    over = Run(cfg(max_processes=3), processes=5)
    d = over.read(burst)
    assert (d.action, d.target) == ("down", 3)


def test_refuse_to_scale_up_on_a_high_error_rate() -> None:
    failing = Run(cfg(readings_up=1, max_error_rate=0.5), processes=1)
    d = failing.read(lambda p: replace(burst(p), executions=100, errors=70))
    assert d.action == "hold"
    assert "error rate 70% is above 50%" in d.reason
    assert "failing dependency" in d.reason
    # the same burst with a healthy error rate scales
    healthy = Run(cfg(readings_up=1, max_error_rate=0.5), processes=1)
    assert healthy.read(lambda p: replace(burst(p), executions=100, errors=5)).action == "up"
    # too few executions to judge: not a reason to refuse
    few = Run(cfg(readings_up=1, error_min_executions=10), processes=1)
    assert few.read(lambda p: replace(burst(p), executions=4, errors=4)).action == "up"


def test_refuse_to_scale_up_without_memory_for_one_more_process() -> None:
    run = Run(cfg(readings_up=1, memory_reserve_mb=500), processes=1)
    d = run.read(lambda p: replace(burst(p), rss_mb=400, available_mb=800))
    assert d.action == "hold"
    assert "would leave less than 500 MB" in d.reason


def test_priority_weighting_changes_the_decision() -> None:
    """40 one-second tasks waiting on 8 busy slots: 5 s of work per slot. In ``high``
    (weight 4) that is 20 weighted seconds per slot, over the 10 s threshold; in ``low``
    (weight 0.25) 1.25, under it. Utilisation alone is one vote: not enough."""
    config = cfg(readings_up=1, backlog_seconds_up=10.0)

    def load(queue: str, weight: float) -> Inputs:
        return replace(burst(2, ready=40, queue=queue, weight=weight), oldest_wait=1.0)

    high = Autoscaler(config).decide(load("high", 4.0), 0.0)
    low = Autoscaler(config).decide(load("low", 0.25), 0.0)
    assert (high.action, high.votes["backlog"]) == ("up", "up")
    assert (low.action, low.votes["backlog"]) == ("hold", "-")
    assert high.signals["pressure"] == 20.0
    assert low.signals["pressure"] == 1.25


def test_mean_run_time_is_work_in_the_backlog() -> None:
    """The same 40 tasks: 10 ms each is no backlog worth a process, 2 s each is."""
    config = cfg(readings_up=1, backlog_seconds_up=5.0)
    quick = replace(burst(2, ready=40), queues=(QueueLoad("default", 40, 1.0, 0.01),))
    slow = replace(burst(2, ready=40), queues=(QueueLoad("default", 40, 1.0, 2.0),))
    assert Autoscaler(config).decide(quick, 0.0).action == "hold"
    assert Autoscaler(config).decide(slow, 0.0).action == "up"
    # unknown run time: the assumed one
    unknown = replace(burst(2, ready=40), queues=(QueueLoad("default", 40, 1.0, None),))
    d = Autoscaler(replace(config, assumed_runtime=0.5)).decide(unknown, 0.0)
    assert d.signals["work_seconds"] == 20.0


def test_oldest_wait_votes() -> None:
    config = cfg(readings_up=1, max_wait_up=10.0)
    waited = replace(burst(2, ready=4), oldest_wait=30.0)
    d = Autoscaler(config).decide(waited, 0.0)
    assert d.votes["wait"] == "up"
    assert d.action == "up"


def test_cluster_share_keeps_the_total_within_the_cluster_maximum() -> None:
    config = cfg(max_processes=8, cluster_max_processes=10)
    shares = [bounds(config, 3, rank)[1] for rank in range(3)]
    assert shares == [4, 3, 3]
    assert sum(shares) == 10
    assert [bounds(config, 1, 0)[1]] == [8]  # alone: its own maximum is lower
    # each supervisor, deciding alone from the same figures, stays inside its share
    total = 0
    for rank in range(3):
        run = Run(replace(config, readings_up=1, cooldown_up=0), processes=1)
        for _ in range(20):
            # read() calls it at once: the loop variable needs no default-argument capture
            run.read(lambda p: replace(burst(p), supervisors=3, rank=rank))
        total += run.p
    assert total == 10
    # a supervisor above its share after a new one joined goes down to it
    run = Run(config, processes=5)
    d = run.read(lambda p: replace(burst(p), supervisors=3, rank=2))
    assert (d.action, d.target) == ("down", 3)
    assert "share of cluster_max_processes=10" in d.reason


def test_adaptive_thresholds_move_and_stay_bounded() -> None:
    config = cfg(
        adaptive=True,
        readings_up=1,
        cooldown_up=2.0,
        max_processes=100,
        utilisation_up=0.8,
        adaptive_step=0.05,
        adaptive_bound=0.15,
    )
    run = Run(config, processes=1, step=2.0)
    # every scale-up overshoots: the next reading finds the slots idle
    for _ in range(40):
        run.read(burst)
        run.read(lambda p: replace(idle(p), queues=(QueueLoad("default", 30, 1.0, 1.0),)))
    state = run.scaler.state
    assert state.utilisation_up == pytest.approx(0.95)  # 0.8 + bound, never more
    # a steady error rate of 40 % teaches a higher limit, bounded by max_error_rate + bound
    learn = Run(replace(config, max_error_rate=0.5), processes=1)
    for _ in range(200):
        learn.read(lambda p: replace(idle(p), executions=100, errors=40))
    assert learn.scaler.state.error_limit == pytest.approx(0.65)
    # a clean history lowers it, bounded below
    clean = Run(replace(config, max_error_rate=0.5), processes=1)
    for _ in range(200):
        clean.read(lambda p: replace(idle(p), executions=100, errors=0))
    assert clean.scaler.state.error_limit == pytest.approx(0.35)
    # a failure spike does not teach the limit: it stays where clean readings left it
    for _ in range(50):
        clean.read(lambda p: replace(idle(p), executions=100, errors=90))
    assert clean.scaler.state.error_limit == pytest.approx(0.35)


def test_the_same_script_gives_the_same_decisions() -> None:
    rng = random.Random(3)
    script = [(rng.choice([0, 10, 200]), rng.uniform(0, 1), rng.uniform(0, 40)) for _ in range(200)]

    def play() -> list[tuple[str, int, str]]:
        run = Run(cfg(readings_up=2, readings_down=2, cooldown_up=4, cooldown_down=8), 2)
        for ready, util, wait in script:
            run.read(  # read() calls it at once: no default-argument capture needed
                lambda p: Inputs(
                    processes=p,
                    concurrency=CONC,
                    queues=(QueueLoad("default", ready, 1.0, 1.0),),
                    oldest_wait=wait if ready else 0.0,
                    busy=round(util * p * CONC),
                    slots=p * CONC,
                )
            )
        return [(d.action, d.target, d.reason) for d in run.log]

    first = play()
    assert first == play()
    assert any(a == "up" for a, _, _ in first)
    assert any(a == "down" for a, _, _ in first)


@pytest.mark.parametrize(
    ("over", "text"),
    [
        ({"min_processes": 3, "max_processes": 2}, r"min_processes \(3\)"),
        ({"utilisation_down": 0.9, "utilisation_up": 0.8}, "utilisation_down"),
        ({"signals_to_agree": 4}, "signals_to_agree"),
    ],
)
def test_bad_configs_are_refused(over: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        cfg(**over)

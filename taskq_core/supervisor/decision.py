"""The autoscaler's decision: a pure, deterministic function of the signals and the time.

Nothing here reads a clock, the broker or the machine: :func:`decide` takes the figures of
one reading (:class:`Inputs`), the time of that reading, the configuration and the state
left by the previous reading, and returns the :class:`Decision` and the new state. The
same sequence of readings always gives the same decisions, so the rule is tested with
scripted signals and a clock the test controls (``tests/supervisor/test_decision.py``).

The rule (docs/autoscaling.md explains it at length):

* Three *load signals* vote ``up``, ``down`` or nothing: the backlog (priority-weighted
  seconds of waiting work per slot), the age of the oldest waiting task, and the
  utilisation of the slots (busy / slots).
* Scale up by ``step_up`` when at least ``signals_to_agree`` signals vote up (and more vote
  up than down) for ``readings_up`` readings in a row, ``cooldown_up`` seconds after the
  last scale-up — unless the error rate is high (more workers would only feed a failing
  dependency) or one more step of processes would not fit in the machine's memory.
* Scale down by ``step_down`` when at least ``signals_to_agree`` signals vote down and none
  votes up for ``readings_down`` readings in a row, ``cooldown_down`` seconds after any
  scaling, and only if the slots left would stay below ``utilisation_up`` (so a scale-down
  never calls for the scale-up that undoes it).
* Always within ``[min, max]``; with ``cluster_max_processes``, ``max`` is this
  supervisor's share of the cluster's maximum among the live supervisors.
* With ``adaptive``, ``utilisation_up`` and ``max_error_rate`` move by ``adaptive_step``
  according to what the last scale-up achieved and to the usual error rate, never more than
  ``adaptive_bound`` away from their configured values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..settings import SupervisorSettings

Action = Literal["up", "down", "hold"]
Vote = Literal["up", "down", "-"]

#: the load signals, in the order they are reported
SIGNALS = ("backlog", "wait", "utilisation")


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """One queue's waiting tasks, its priority weight and its tasks' mean run time."""

    name: str
    ready: int
    weight: float = 1.0
    mean_runtime: float | None = None  # seconds per task; None until one has been measured


@dataclass(frozen=True, slots=True)
class Inputs:
    """The figures of one reading. Counts of slots and busy slots are cluster-wide (every
    worker serving these queues); ``processes`` is this supervisor's own."""

    processes: int  # this supervisor's processes, starting ones included
    concurrency: int = 1  # slots of one of its processes
    queues: tuple[QueueLoad, ...] = ()
    oldest_wait: float = 0.0  # seconds the oldest ready task has waited; 0 when none waits
    busy: float = 0  # slots running a task (this supervisor's: the mean since its last reading)
    slots: int = 0  # slots in all
    executions: int = 0  # executions that reached an outcome within the error window
    errors: int = 0  # of which raised (retried, failed or dead-lettered)
    rss_mb: float = 0.0  # mean resident memory of one of this supervisor's processes
    available_mb: float | None = None  # memory the machine has available; None: unknown
    supervisors: int = 1  # live supervisors sharing cluster_max_processes
    rank: int = 0  # this supervisor's place among them (their ids sorted)

    @property
    def backlog(self) -> int:
        """Ready tasks of every queue."""
        return sum(q.ready for q in self.queues)

    @property
    def weighted_backlog(self) -> float:
        """Ready tasks, each counted with its queue's weight."""
        return sum(q.ready * q.weight for q in self.queues)

    def work_seconds(self, assumed_runtime: float) -> float:
        """Priority-weighted seconds of work waiting (a queue's mean run time, else
        ``assumed_runtime``, per task)."""
        return sum(
            q.ready * q.weight * (q.mean_runtime if q.mean_runtime is not None else assumed_runtime)
            for q in self.queues
        )

    @property
    def utilisation(self) -> float | None:
        """Busy share of the slots; None without any slot."""
        return min(1.0, self.busy / self.slots) if self.slots > 0 else None

    @property
    def error_rate(self) -> float | None:
        """Share of executions that raised; None without any."""
        return self.errors / self.executions if self.executions > 0 else None


@dataclass(frozen=True, slots=True)
class ScalerConfig:
    """The knobs of the rule (the ``supervisor`` settings, with min and max resolved)."""

    min_processes: int = 1
    max_processes: int = 4
    cluster_max_processes: int | None = None
    readings_up: int = 2
    readings_down: int = 5
    cooldown_up: float = 10.0
    cooldown_down: float = 60.0
    step_up: int = 1
    step_down: int = 1
    signals_to_agree: int = 2
    backlog_seconds_up: float = 10.0
    assumed_runtime: float = 1.0
    max_wait_up: float = 10.0
    utilisation_up: float = 0.85
    utilisation_down: float = 0.3
    max_error_rate: float = 0.5
    error_min_executions: int = 10
    memory_reserve_mb: float = 256.0
    adaptive: bool = False
    adaptive_step: float = 0.05
    adaptive_bound: float = 0.15

    def __post_init__(self) -> None:
        if not 1 <= self.min_processes <= self.max_processes:
            raise ValueError(
                f"min_processes ({self.min_processes}) must be at least 1 and at most "
                f"max_processes ({self.max_processes})"
            )
        if not 0 <= self.utilisation_down < self.utilisation_up <= 1:
            raise ValueError(
                f"need 0 <= utilisation_down ({self.utilisation_down}) < utilisation_up "
                f"({self.utilisation_up}) <= 1"
            )
        if not 1 <= self.signals_to_agree <= len(SIGNALS):
            raise ValueError(f"signals_to_agree must be 1 to {len(SIGNALS)}")

    @classmethod
    def from_settings(
        cls, s: SupervisorSettings, *, min_processes: int, max_processes: int
    ) -> ScalerConfig:
        """The rule's knobs from the ``supervisor`` settings and the resolved bounds."""
        return cls(
            min_processes=min_processes,
            max_processes=max_processes,
            cluster_max_processes=s.cluster_max_processes,
            readings_up=s.readings_up,
            readings_down=s.readings_down,
            cooldown_up=s.cooldown_up,
            cooldown_down=s.cooldown_down,
            step_up=s.step_up,
            step_down=s.step_down,
            signals_to_agree=s.signals_to_agree,
            backlog_seconds_up=s.backlog_seconds_up,
            assumed_runtime=s.assumed_runtime,
            max_wait_up=s.max_wait_up,
            utilisation_up=s.utilisation_up,
            utilisation_down=s.utilisation_down,
            max_error_rate=s.max_error_rate,
            error_min_executions=s.error_min_executions,
            memory_reserve_mb=s.memory_reserve_mb,
            adaptive=s.adaptive,
            adaptive_step=s.adaptive_step,
            adaptive_bound=s.adaptive_bound,
        )


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What one reading leaves for the next."""

    up_streak: int = 0  # consecutive readings whose signals called for more processes
    down_streak: int = 0
    last_up: float | None = None  # time of the last scale-up
    last_down: float | None = None
    # adaptive thresholds (None: the configured value) and what they learn from
    utilisation_up: float | None = None
    error_limit: float | None = None
    error_baseline: float | None = None  # moving average of the error rate in normal times
    judge_at: float | None = None  # when to judge what the last scale-up achieved


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one reading: what to do, how many processes to aim for, and why."""

    action: Action
    target: int
    reason: str
    votes: dict[str, Vote] = field(default_factory=dict)
    #: the derived figures (pressure, utilisation, error rate...) and thresholds in force
    signals: dict[str, Any] = field(default_factory=dict)
    min: int = 1
    max: int = 1


def bounds(config: ScalerConfig, supervisors: int, rank: int) -> tuple[int, int]:
    """This supervisor's ``(min, max)``.

    With ``cluster_max_processes`` = M shared by n live supervisors, the one of rank r (ids
    sorted) may run ``M // n`` processes, plus one when ``r < M % n``: the shares add up to
    exactly M, so the supervisors together never exceed it, and each computes its share
    from the same published figures without talking to the others. A supervisor's own
    minimum still wins over its share.
    """
    lo, hi = config.min_processes, config.max_processes
    if config.cluster_max_processes is not None:
        n = max(1, supervisors)
        m = config.cluster_max_processes
        share = m // n + (1 if rank < m % n else 0)
        hi = max(lo, min(hi, share))
    return lo, hi


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _adapt(
    config: ScalerConfig,
    state: ScalerState,
    inputs: Inputs,
    now: float,
    pressure: float,
) -> ScalerState:
    """Move the adaptive thresholds by what this reading shows (bounded)."""
    util_up = state.utilisation_up if state.utilisation_up is not None else config.utilisation_up
    limit = state.error_limit if state.error_limit is not None else config.max_error_rate
    baseline = state.error_baseline
    judge_at = state.judge_at
    rate = inputs.error_rate
    if rate is not None and inputs.executions >= config.error_min_executions and rate <= limit:
        # only normal readings teach the baseline: a failing dependency must not raise its
        # own limit
        baseline = rate if baseline is None else 0.9 * baseline + 0.1 * rate
        base, bound = config.max_error_rate, config.adaptive_bound
        limit = _clamp(2 * baseline + 0.1, max(0.0, base - bound), min(1.0, base + bound))
    util = inputs.utilisation
    if judge_at is not None and now >= judge_at and util is not None:
        if util <= config.utilisation_down:
            util_up += config.adaptive_step  # overshoot: the last step added idle slots
        elif util >= util_up and pressure >= config.backlog_seconds_up:
            util_up -= config.adaptive_step  # undershoot: still saturated with work waiting
        base, bound = config.utilisation_up, config.adaptive_bound
        low = max(base - bound, config.utilisation_down + config.adaptive_step)
        util_up = _clamp(util_up, min(low, base), min(1.0, base + bound))
        judge_at = None
    return replace(
        state,
        utilisation_up=util_up,
        error_limit=limit,
        error_baseline=baseline,
        judge_at=judge_at,
    )


def decide(
    config: ScalerConfig, state: ScalerState, inputs: Inputs, now: float
) -> tuple[Decision, ScalerState]:
    """One reading: the decision and the state for the next reading. ``now`` is any
    monotonic time in seconds (the supervisor's clock, or a test's)."""
    assumed = config.assumed_runtime
    slots = max(1, inputs.slots)
    work = inputs.work_seconds(assumed)
    pressure = work / slots
    if config.adaptive:
        state = _adapt(config, state, inputs, now, pressure)
    util_up = state.utilisation_up if state.utilisation_up is not None else config.utilisation_up
    limit = state.error_limit if state.error_limit is not None else config.max_error_rate
    util = inputs.utilisation
    rate = inputs.error_rate
    lo, hi = bounds(config, inputs.supervisors, inputs.rank)
    p = inputs.processes

    votes: dict[str, Vote] = {
        "backlog": (
            "up"
            if pressure >= config.backlog_seconds_up
            else "down"
            if inputs.weighted_backlog == 0
            else "-"
        ),
        "wait": (
            "up"
            if inputs.oldest_wait >= config.max_wait_up
            else "down"
            if inputs.backlog == 0
            else "-"
        ),
        "utilisation": (
            "-"
            if util is None
            else "up"
            if util >= util_up
            else "down"
            if util <= config.utilisation_down
            else "-"
        ),
    }
    ups = sum(v == "up" for v in votes.values())
    downs = sum(v == "down" for v in votes.values())
    signals: dict[str, Any] = {
        "backlog": inputs.backlog,
        "weighted_backlog": round(inputs.weighted_backlog, 3),
        "work_seconds": round(work, 3),
        "pressure": round(pressure, 3),
        "oldest_wait": round(inputs.oldest_wait, 3),
        "busy": round(inputs.busy, 3),
        "slots": inputs.slots,
        "utilisation": None if util is None else round(util, 4),
        "executions": inputs.executions,
        "error_rate": None if rate is None else round(rate, 4),
        "rss_mb": round(inputs.rss_mb, 1),
        "available_mb": None if inputs.available_mb is None else round(inputs.available_mb, 1),
        "supervisors": inputs.supervisors,
        "utilisation_up": round(util_up, 4),
        "max_error_rate": round(limit, 4),
        "mean_runtime": {
            q.name: None if q.mean_runtime is None else round(q.mean_runtime, 6)
            for q in inputs.queues
        },
    }

    def out(
        action: Action, target: int, reason: str, new: ScalerState
    ) -> tuple[Decision, ScalerState]:
        return Decision(action, target, reason, votes, signals, lo, hi), new

    def scaled_up(target: int, new: ScalerState) -> ScalerState:
        judge = now + max(config.cooldown_up, 0.0) if config.adaptive else new.judge_at
        return replace(new, up_streak=0, down_streak=0, last_up=now, judge_at=judge)

    # bounds first: they need no agreement (a crash or a new supervisor moved them)
    if p < lo:
        new = scaled_up(lo, state)
        return out("up", lo, f"{p} process(es), below the minimum of {lo}", new)
    if p > hi:
        new = replace(state, up_streak=0, down_streak=0, last_down=now)
        share = (
            f" (this supervisor's share of cluster_max_processes="
            f"{config.cluster_max_processes} among {inputs.supervisors} supervisor(s))"
            if config.cluster_max_processes is not None
            else ""
        )
        return out("down", hi, f"{p} process(es), above the maximum of {hi}{share}", new)

    want_up = ups >= config.signals_to_agree and ups > downs
    want_down = downs >= config.signals_to_agree and ups == 0
    state = replace(
        state,
        up_streak=state.up_streak + 1 if want_up else 0,
        down_streak=state.down_streak + 1 if want_down else 0,
    )
    agreeing = ", ".join(f"{k}" for k, v in votes.items() if v == ("up" if want_up else "down"))

    if want_up:
        if rate is not None and inputs.executions >= config.error_min_executions and rate > limit:
            return out(
                "hold",
                p,
                f"{agreeing} call for more processes, but the error rate {rate:.0%} is above "
                f"{limit:.0%}: more workers would only feed a failing dependency",
                state,
            )
        if inputs.available_mb is not None:
            need = inputs.rss_mb * config.step_up
            if inputs.available_mb - need < config.memory_reserve_mb:
                return out(
                    "hold",
                    p,
                    f"{agreeing} call for more processes, but {config.step_up} more of "
                    f"{inputs.rss_mb:.0f} MB would leave less than "
                    f"{config.memory_reserve_mb:.0f} MB of {inputs.available_mb:.0f} MB "
                    "available",
                    state,
                )
        if p >= hi:
            return out("hold", p, f"{agreeing} call for more processes; at the maximum", state)
        if state.up_streak < config.readings_up:
            return out(
                "hold",
                p,
                f"{agreeing} call for more processes "
                f"({state.up_streak}/{config.readings_up} readings)",
                state,
            )
        if state.last_up is not None and now - state.last_up < config.cooldown_up:
            left = config.cooldown_up - (now - state.last_up)
            return out(
                "hold",
                p,
                f"{agreeing} call for more processes; cooling down after the last scale-up "
                f"({left:.1f}s left)",
                state,
            )
        target = min(hi, p + config.step_up)
        return out(
            "up",
            target,
            f"{agreeing} call for more processes for {state.up_streak} readings "
            f"(pressure {pressure:.1f}s/slot, oldest wait {inputs.oldest_wait:.1f}s, "
            f"utilisation {_pct(util)})",
            scaled_up(target, state),
        )

    if want_down:
        if p <= lo:
            return out("hold", p, f"{agreeing} call for fewer processes; at the minimum", state)
        if state.down_streak < config.readings_down:
            return out(
                "hold",
                p,
                f"{agreeing} call for fewer processes "
                f"({state.down_streak}/{config.readings_down} readings)",
                state,
            )
        last = max((t for t in (state.last_up, state.last_down) if t is not None), default=None)
        if last is not None and now - last < config.cooldown_down:
            left = config.cooldown_down - (now - last)
            return out(
                "hold",
                p,
                f"{agreeing} call for fewer processes; cooling down after the last scaling "
                f"({left:.1f}s left)",
                state,
            )
        target = max(lo, p - config.step_down)
        left_slots = inputs.slots - (p - target) * inputs.concurrency
        if inputs.busy > 0 and (left_slots <= 0 or inputs.busy / left_slots >= util_up):
            return out(
                "hold",
                p,
                f"{agreeing} call for fewer processes, but the {inputs.busy} busy slot(s) "
                f"would leave the rest above {util_up:.0%} utilisation",
                state,
            )
        return out(
            "down",
            target,
            f"{agreeing} call for fewer processes for {state.down_streak} readings "
            f"(backlog {inputs.backlog}, utilisation {_pct(util)})",
            replace(state, up_streak=0, down_streak=0, last_down=now),
        )

    up_names = [k for k, v in votes.items() if v == "up"]
    down_names = [k for k, v in votes.items() if v == "down"]
    if not up_names and not down_names:
        reason = f"steady (utilisation {_pct(util)}, backlog {inputs.backlog})"
    else:
        reason = (
            "signals do not agree (up: "
            + (", ".join(up_names) or "none")
            + "; down: "
            + (", ".join(down_names) or "none")
            + ")"
        )
    return out("hold", p, reason, state)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0%}"


class Autoscaler:
    """:func:`decide` with its state kept between readings."""

    def __init__(self, config: ScalerConfig, state: ScalerState | None = None) -> None:
        self.config = config
        self.state = state or ScalerState()

    def decide(self, inputs: Inputs, now: float) -> Decision:
        """The decision of one reading taken at ``now`` (seconds, monotonic)."""
        decision, self.state = decide(self.config, self.state, inputs, now)
        return decision

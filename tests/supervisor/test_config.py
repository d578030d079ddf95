"""The supervisor's settings section, the hard_timeout task option, and how the process
bounds are resolved: bad values are refused with errors naming the key."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from taskq_core import InvalidOption, TaskQueue
from taskq_core.config import load_settings
from taskq_core.errors import ConfigurationError
from taskq_core.settings import Settings
from taskq_core.supervisor import resolve_bounds
from taskq_core.supervisor.decision import ScalerConfig


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [
        ({"interval": 0}, "supervisor.interval", "greater than 0"),
        ({"readings_up": 0}, "supervisor.readings_up", "greater than or equal to 1"),
        ({"cooldown_down": -1}, "supervisor.cooldown_down", "greater than or equal to 0"),
        ({"utilisation_up": 1.5}, "supervisor.utilisation_up", "less than or equal to 1"),
        (
            {"utilisation_up": 0.5, "utilisation_down": 0.6},
            "supervisor.utilisation_down",
            "must be below supervisor.utilisation_up",
        ),
        (
            {"min_processes": 4, "max_processes": 2},
            "supervisor.max_processes",
            "below supervisor.min_processes",
        ),
        ({"signals_to_agree": 4}, "supervisor.signals_to_agree", "less than or equal to 3"),
        ({"max_memory_mb": 1}, "supervisor.max_memory_mb", "greater than or equal to 16"),
        (
            {"max_tasks_per_process": 0},
            "supervisor.max_tasks_per_process",
            "greater than or equal to 1",
        ),
        ({"hard_timeout": 0}, "supervisor.hard_timeout", "greater than 0"),
        ({"queue_weights": {"high": 0}}, "supervisor.queue_weights", "must be above 0"),
        ({"queue_weights": {"a b": 1}}, "supervisor.queue_weights", "queue name"),
        (
            {"restart_backoff": 5, "restart_backoff_max": 1},
            "supervisor.restart_backoff_max",
            "below supervisor.restart_backoff",
        ),
        ({"procesess": 2}, "supervisor.procesess", "unknown key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    section: dict[str, object], key: str, text: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(supervisor=section)
    message = str(info.value)
    assert key in message
    assert text in message


def test_environment_values_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(os.path.dirname(__file__))  # no configuration file here
    monkeypatch.setenv("TASKQ_SUPERVISOR__COOLDOWN_UP", "-3")
    with pytest.raises(ConfigurationError) as info:
        load_settings(None)
    assert "supervisor.cooldown_up" in str(info.value)
    assert "TASKQ_SUPERVISOR__COOLDOWN_UP" in str(info.value)


def test_every_setting_feeds_the_decision_rule() -> None:
    s = Settings(supervisor={"readings_up": 7, "cooldown_down": 12.5, "adaptive": True})
    c = ScalerConfig.from_settings(s.supervisor, min_processes=2, max_processes=5)
    assert (c.readings_up, c.cooldown_down, c.adaptive) == (7, 12.5, True)
    assert (c.min_processes, c.max_processes) == (2, 5)


def test_hard_timeout_task_option(make_app: Callable[..., TaskQueue]) -> None:
    app = make_app("memory", supervisor={"hard_timeout": 30.0}, task_timeout=5.0)

    @app.task
    def default() -> None: ...

    @app.task(hard_timeout=2.5, timeout=1.0)
    def own() -> None: ...

    assert default.hard_timeout == 30.0
    assert own.hard_timeout == 2.5
    assert own.options(queue="high").hard_timeout == 2.5
    with pytest.raises(InvalidOption, match="hard_timeout must be a finite number"):
        app.task(hard_timeout=0)(lambda: None)
    with pytest.raises(InvalidOption, match=r"hard_timeout \(1s\) must be longer than the soft"):
        app.task(name="x.y", hard_timeout=1.0, timeout=2.0)(lambda: None)


def test_resolve_bounds() -> None:
    s = Settings(supervisor={"min_processes": 2, "max_processes": 6}).supervisor
    assert resolve_bounds(s, 3, None, None) == (3, 3)
    assert resolve_bounds(s, None, None, None) == (2, 6)
    assert resolve_bounds(s, None, 1, 4) == (1, 4)
    default = Settings().supervisor
    assert resolve_bounds(default, None, None, None) == (1, max(1, os.cpu_count() or 1))
    with pytest.raises(InvalidOption, match=r"max_processes \(2\) is below min_processes \(3\)"):
        resolve_bounds(s, None, 3, 2)
    with pytest.raises(InvalidOption, match="processes must be at least 1"):
        resolve_bounds(s, 0, None, None)

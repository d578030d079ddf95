"""One way to build a TaskQueue reads the configuration, TaskQueue.from_config(); one built
otherwise while TASKQ_* variables are set warns, naming them (they used to be ignored in
silence: TASKQ_WORKER__GRACE_PERIOD seemed to have no effect), and so does
``taskq worker --app`` for an application built that way."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from taskq_core import Settings, TaskQueue
from taskq_core.config import load_settings
from taskq_core.errors import UnusedConfigWarning

ROOT = Path(__file__).resolve().parents[2]


def test_a_taskqueue_built_in_code_names_the_variables_it_ignores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKQ_WORKER__GRACE_PERIOD", "3")
    monkeypatch.setenv("TASKQ_KEY_PREFIX", "elsewhere")
    with pytest.warns(UnusedConfigWarning) as caught:
        tq = TaskQueue("memory://")
    [w] = caught
    assert str(w.message).startswith(
        "TASKQ_KEY_PREFIX, TASKQ_WORKER__GRACE_PERIOD are set but ignored: this TaskQueue was "
        "built without TaskQueue.from_config()"
    )
    assert w.filename == __file__  # it points at the line that built the TaskQueue
    assert tq.settings.worker.grace_period == 10.0
    with pytest.warns(UnusedConfigWarning, match="TASKQ_WORKER__GRACE_PERIOD"):
        TaskQueue(settings=Settings(broker_url="memory://"))


def test_from_config_reads_them_and_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_WORKER__GRACE_PERIOD", "3")
    monkeypatch.setenv("TASKQ_BROKER_URL", "memory://")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tq = TaskQueue.from_config()
        assert tq.settings.worker.grace_period == 3.0
        assert TaskQueue(settings=load_settings()).settings.worker.grace_period == 3.0


def test_taskqs_own_variables_are_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_SUPERVISOR_ID", "sup-1")  # set by the supervisor
    monkeypatch.setenv("TASKQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskQueue("memory://")


CODE_APP = """
from taskq_core import TaskQueue

tq = TaskQueue("memory://")  # built in code: TASKQ_* variables do not reach it
"""
CONFIG_APP = """
from taskq_core import TaskQueue

tq = TaskQueue.from_config()
"""


@pytest.mark.parametrize(("source", "warned"), [(CODE_APP, True), (CONFIG_APP, False)])
def test_taskq_worker_app_says_which_variables_it_ignores(
    tmp_path: Path, source: str, warned: bool
) -> None:
    (tmp_path / "someapp.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TASKQ_")}
    env.update(
        PYTHONPATH=str(ROOT),
        TASKQ_BROKER_URL="memory://",
        TASKQ_WORKER__GRACE_PERIOD="3",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "taskq_core.cli", "worker", "--app", "someapp:tq", "--burst"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = (
        "warning: TASKQ_BROKER_URL, TASKQ_WORKER__GRACE_PERIOD are set but ignored: "
        "--app someapp:tq was built without TaskQueue.from_config()"
    )
    assert (expected in proc.stderr) is warned, proc.stderr
    assert proc.stderr.count("set but ignored") == int(warned)
    assert "UnusedConfigWarning" not in proc.stderr  # one plain line, not a Python warning

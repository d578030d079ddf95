"""``taskq worker --capabilities``: one process and the supervisor's processes run the
tasks that require what they have (taskq_core/capabilities.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from taskq_core import TaskQueue
from tests.cli.conftest import Cli


@pytest.mark.slow
def test_the_cli_worker_and_supervised_processes_take_capabilities(
    cli: Cli, tmp_path: Path, procs: Any
) -> None:
    (tmp_path / "capapp.py").write_text(
        "import os\n"
        "from taskq_core import TaskQueue\n"
        "tq = TaskQueue.from_config()\n"
        "@tq.task(name='cap.where', requires={'gpu'})\n"
        "def where():\n"
        "    return os.getpid()\n"
    )
    bad = cli("--app", "capapp:tq", "worker", "--capabilities", "g pu", "--burst")
    assert bad.code == 2
    assert "capability 'g pu'" in bad.err
    tq = TaskQueue.from_config(
        broker_url=cli.env["TASKQ_BROKER_URL"], key_prefix=cli.env["TASKQ_KEY_PREFIX"]
    )
    try:
        where = tq.task(name="cap.where", requires={"gpu"})(os.getpid)
        plain = procs(cli.popen("--app", "capapp:tq", "worker", "--burst"))
        assert plain.wait(30) == 0
        handles = [where.enqueue() for _ in range(4)]
        # a worker without the capability leaves them alone
        assert cli("--app", "capapp:tq", "worker", "--burst").code == 0
        assert all(h.status() == "queued" for h in handles)
        sup = procs(
            cli.popen("--app", "capapp:tq", "worker", "--processes", "2", "--capabilities", "gpu")
        )
        pids = {h.result(timeout=30) for h in handles}
        assert sup.pid not in pids
        assert len(pids) >= 1
        sup.terminate()
        assert sup.wait(30) == 0
    finally:
        tq.close()

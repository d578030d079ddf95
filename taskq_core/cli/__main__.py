"""``python -m taskq_core.cli``: the same as the ``taskq`` console script."""

from __future__ import annotations

from . import main

main(prog_name="taskq")

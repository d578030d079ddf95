"""``python -m taskq_core.config --markdown``: print docs/configuration.md."""

from __future__ import annotations

from .docs import main

raise SystemExit(main())

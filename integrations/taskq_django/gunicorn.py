"""gunicorn hook: ``post_fork = taskq_django.gunicorn.post_fork`` (see docs/integrations/django.md).

taskq already starts each worker process's embedded workers by itself, ``--preload`` or not;
this hook says it explicitly in ``gunicorn.conf.py`` and does no harm next to that.
"""

from __future__ import annotations

from taskq_core.prefork import post_fork

__all__ = ["post_fork"]

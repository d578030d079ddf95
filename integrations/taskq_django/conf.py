"""``settings.TASKQ``, read at call time, and the TaskQueue it names or describes."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from taskq_core import TaskQueue
from taskq_core.config import InvalidConfiguration
from taskq_core.errors import ConfigurationError
from taskq_core.http import AuthCallable
from taskq_core.wsgi import HostOptions, config_error, host_options

from .dbconn import CloseOldConnections

#: keys of ``TASKQ`` that belong to the Django app rather than to taskq's settings
OWN = ("APP", "AUTH", "DEFER_ENQUEUE", "EMBEDDED_WORKERS")


def key_name(key: str) -> str:
    """How a key is spelled in the settings: ``TASKQ['DEFER_ENQUEUE']``."""
    return f"TASKQ[{key.upper()!r}]"


@dataclass(frozen=True, slots=True)
class Conf:
    """``settings.TASKQ`` split into the app's own keys and taskq's settings."""

    app: TaskQueue | str | None
    auth: AuthCallable | str | None
    options: HostOptions
    #: taskq's settings, keys lower-cased as :class:`~taskq_core.Settings` names them
    core: dict[str, Any] = field(default_factory=dict)


def raw_settings() -> Mapping[str, Any]:
    """``settings.TASKQ`` (empty when unset); raises if it is not a dict of string keys."""
    raw = getattr(settings, "TASKQ", None)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"settings.TASKQ must be a dict, got {type(raw).__name__}")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise ConfigurationError(f"settings.TASKQ keys must be strings, got {bad[0]!r}")
    return raw


def read_conf() -> Conf:
    """The current ``settings.TASKQ``, validated (raises :class:`ConfigurationError`)."""
    raw = raw_settings()
    upper = {k.upper(): v for k, v in raw.items()}
    own = {k.lower(): upper[k] for k in ("DEFER_ENQUEUE", "EMBEDDED_WORKERS") if k in upper}
    return Conf(
        app=upper.get("APP"),
        auth=upper.get("AUTH"),
        options=host_options(own, key_name),
        core={k.lower(): v for k, v in upper.items() if k not in OWN},
    )


def load_object(spec: str, key: str) -> Any:
    """The object ``spec`` names (``"module:attribute"`` or ``"module.attribute"``)."""
    try:
        return import_string(spec.replace(":", "."))
    except ImportError as exc:
        raise ConfigurationError(f"{key_name(key)} = {spec!r} cannot be imported: {exc}") from None


# -- the TaskQueue

_lock = threading.RLock()
#: TaskQueues built from settings, by their configuration
_built: dict[str, TaskQueue] = {}
#: TaskQueues already given the Django task middleware and the hooks
_installed: weakref.WeakSet[TaskQueue] = weakref.WeakSet()
_hooks: list[Callable[[TaskQueue], None]] = []


def get_taskqueue() -> TaskQueue:
    """The TaskQueue that ``settings.TASKQ`` names (``APP``) or describes.

    A described one is built once per distinct configuration and kept, so changing the
    settings (``override_settings``) switches TaskQueue and switching back finds the first
    one again. Either way its tasks close stale database connections around each run.
    """
    conf = read_conf()
    if conf.app is not None:
        if conf.core:
            keys = ", ".join(key_name(k) for k in sorted(conf.core))
            raise ConfigurationError(
                f"{key_name('APP')} names a TaskQueue, so {keys} would be ignored: "
                "configure that TaskQueue instead"
            )
        found = load_object(conf.app, "APP") if isinstance(conf.app, str) else conf.app
        if not isinstance(found, TaskQueue):
            raise ConfigurationError(
                f"{key_name('APP')} must name a TaskQueue, got {type(found).__name__}"
            )
        tq = found
    else:
        key = json.dumps(conf.core, sort_keys=True, default=repr)
        with _lock:
            built = _built.get(key)
            if built is None:
                try:
                    built = _built[key] = TaskQueue.from_config(**conf.core)
                except InvalidConfiguration as exc:
                    raise config_error(exc, key_name) from None
        tq = built
    if tq not in _installed:
        _install(tq)
    return tq


def _install(tq: TaskQueue) -> None:
    with _lock:
        if tq in _installed:
            return
        if not any(isinstance(m, CloseOldConnections) for m in tq.middleware):
            tq.middleware.append(CloseOldConnections())
        from .transactional import install

        install(tq)  # PostgreSQL broker: enqueues in atomic() join Django's transaction
        for hook in _hooks:
            hook(tq)
        _installed.add(tq)


def on_taskqueue(hook: Callable[[TaskQueue], None]) -> None:
    """Call ``hook(tq)`` for every TaskQueue this app serves, now and as they appear (the
    ``django.tasks`` backend registers its tasks this way)."""
    with _lock:
        _hooks.append(hook)
        for tq in list(_installed):
            hook(tq)


def get_auth() -> AuthCallable | None:
    """The ``AUTH`` callable of ``settings.TASKQ`` (None when unset)."""
    auth = read_conf().auth
    if auth is None:
        return None
    found = load_object(auth, "AUTH") if isinstance(auth, str) else auth
    if not callable(found):
        raise ConfigurationError(f"{key_name('AUTH')} must be callable, got {type(found).__name__}")
    result: AuthCallable = found
    return result


__all__ = [
    "OWN",
    "Conf",
    "get_auth",
    "get_taskqueue",
    "key_name",
    "load_object",
    "on_taskqueue",
    "raw_settings",
    "read_conf",
]

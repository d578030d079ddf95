"""Loading settings from every source, and saying exactly what is wrong with bad ones.

Sources, lowest precedence first:

1. built-in defaults (the :class:`~taskq_core.settings.Settings` model);
2. one configuration file: the file named by ``--config`` / ``TASKQ_CONFIG``, else
   ``taskq.toml``, ``taskq.yaml`` (or ``taskq.yml``) in the working directory, else the
   ``[tool.taskq]`` table of ``pyproject.toml`` there;
3. ``TASKQ_*`` environment variables, nested keys joined by ``__``
   (``TASKQ_WORKER__CONCURRENCY=16``);
4. explicit arguments (``TaskQueue.from_config(worker={"concurrency": 4})``).

pydantic-settings reads and merges the sources (``TomlConfigSettingsSource``,
``YamlConfigSettingsSource``, ``PyprojectTomlConfigSettingsSource``, its environment
source). This module adds what it lacks: where each value came from (file and line,
variable, argument), so that ``taskq config show`` can print it and every validation error
names key, value, source and what is allowed. ``python -m taskq_core.config --markdown``
prints docs/configuration.md, generated from the model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.exceptions import SettingsError

from ..errors import ConfigurationError
from ..redact import redact_text
from ..settings import EXTRA_SOURCES, Settings, redact_setting
from .docs import markdown
from .files import (
    FILE_NAMES,
    ConfigFile,
    display_path,
    find_config_file,
    read_config_file,
    toml_key_lines,
    yaml_key_lines,
)
from .keys import (
    CONFIG_ENV,
    ENV_PREFIX,
    RESERVED_ENV,
    RESERVED_ENV_PREFIXES,
    KeyDoc,
    describe_path,
    describe_schema,
    env_name,
    known_keys,
    settings_keys,
    suggest,
)
from .origins import (
    ARGUMENT,
    DEFAULT,
    InvalidConfiguration,
    Layer,
    Origin,
    Path_,
    Problem,
    Sources,
    flatten,
    shown_value,
)

#: the sources of the load in progress, so that Settings' validation errors can name them
_SOURCES: ContextVar[Sources | None] = ContextVar("taskq_config_sources", default=None)


def explain(exc: ValidationError) -> InvalidConfiguration:
    """Turn pydantic's errors about :class:`Settings` into one :class:`ConfigurationError`."""
    sources = _SOURCES.get()
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        key_path = tuple(p for p in loc if not p.isdigit())
        key = ".".join(f"[{p}]" if p.isdigit() else p for p in loc).replace(".[", "[")
        # Settings(...) called directly (TaskQueue(...)) has no other source than arguments
        origin = sources.origin(key_path) if sources is not None else ARGUMENT
        value = shown_value(loc, err.get("input"))
        if err["type"] == "extra_forbidden":
            known = known_keys(key_path[:-1])
            hint = suggest(key_path[-1], known)
            message = "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
            allowed = f"keys of {'.'.join(key_path[:-1]) or 'the top level'}: {', '.join(known)}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            described = describe_path(key_path)
            allowed = described.allowed if described else ""
        problems.append(Problem(key, value, origin, redact_text(message), allowed))
    return InvalidConfiguration(problems)


# -- environment and arguments


def _env_names() -> dict[str, str]:
    """Upper-cased name -> real name of every ``TASKQ_*`` variable (matching ignores case)."""
    return {k.upper(): k for k in os.environ if k.upper().startswith(ENV_PREFIX)}


def _variable(path: Path_, names: dict[str, str]) -> str:
    for n in range(len(path), 0, -1):
        candidate = ENV_PREFIX + "__".join(path[:n]).upper()
        if candidate in names:
            return names[candidate]
    return ENV_PREFIX + "__".join(path).upper()


def _env_layer(problems: list[Problem]) -> Layer:
    names = _env_names()
    fields = Settings.model_fields
    for upper, real in sorted(names.items()):
        if upper in RESERVED_ENV or upper.startswith(RESERVED_ENV_PREFIXES):
            continue
        parts = tuple(p.lower() for p in upper[len(ENV_PREFIX) :].split("__"))
        if parts[0] not in fields:
            hint = suggest(parts[0], list(fields))
            problems.append(
                Problem(
                    ".".join(parts),
                    shown_value(parts, os.environ[real]),
                    Origin("env", variable=real),
                    "unknown key" + (f" (did you mean {env_name(hint)}?)" if hint else ""),
                    f"TASKQ_ followed by a key, nested keys joined by __ "
                    f"(e.g. TASKQ_WORKER__CONCURRENCY), or {CONFIG_ENV}",
                )
            )
    try:
        data = EnvSettingsSource(Settings)()
    except SettingsError as exc:
        m = re.search(r'field "(\w+)"', str(exc))
        name = m.group(1) if m else "?"
        variable = _variable((name,), names)
        described = describe_path((name,))
        problems.append(
            Problem(
                name,
                shown_value((name,), os.environ.get(variable)),
                Origin("env", variable=variable),
                f"not valid JSON ({exc.__cause__ or exc})",
                (described.allowed if described else "") + ", written as JSON",
            )
        )
        return Layer({})
    return Layer({path: Origin("env", variable=_variable(path, names)) for path in flatten(data)})


def _argument_layer(overrides: Mapping[str, Any]) -> Layer:
    return Layer(dict.fromkeys(flatten(overrides), ARGUMENT))


# -- loading


@dataclass(slots=True)
class Loaded:
    """Validated settings and where each of their values came from."""

    settings: Settings
    sources: Sources

    def items(self) -> list[tuple[str, Any, Origin]]:
        """``(dotted key, value as it may be shown, origin)`` of every key."""
        data = self.settings.model_dump(mode="json")
        out = []
        for doc in settings_keys():
            value: Any = data
            for part in doc.path:
                value = value.get(part) if isinstance(value, dict) else None
            shown = redact_setting(doc.path[-1], value, doc.field)
            out.append((doc.key, shown, self.sources.origin(doc.path)))
        return out


def load(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Loaded:
    """Read every source and validate; raises :class:`InvalidConfiguration` (a
    :class:`ConfigurationError`) listing every problem, each with key, value, source and
    what is allowed."""
    overrides = dict(overrides or {})
    path = find_config_file(config_file)
    cfile = read_config_file(path) if path is not None else None
    problems: list[Problem] = []
    sources = Sources(
        [
            *([cfile.layer()] if cfile else []),
            _env_layer(problems),
            _argument_layer(overrides),
        ],
        file=path,
    )
    file_sources = (cfile.source,) if cfile else ()

    def extra(cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        return file_sources

    if any(p.message.startswith("not valid JSON") for p in problems):
        # pydantic-settings would stop at the same variable: report what is known now
        raise InvalidConfiguration(problems)
    token = _SOURCES.set(sources)
    extra_token = EXTRA_SOURCES.set(extra)
    try:
        settings = Settings(**overrides)
    except InvalidConfiguration as exc:
        raise InvalidConfiguration(problems + exc.problems) from None
    except SettingsError as exc:  # pragma: no cover - every known case is caught above
        raise ConfigurationError(f"invalid configuration: {redact_text(str(exc))}") from None
    finally:
        EXTRA_SOURCES.reset(extra_token)
        _SOURCES.reset(token)
    if problems:
        raise InvalidConfiguration(problems)
    settings.mark_from_config()
    return Loaded(settings, sources)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < configuration file < ``TASKQ_*`` environment < ``overrides``."""
    return load(config_file, overrides).settings


__all__ = [
    "ARGUMENT",
    "CONFIG_ENV",
    "DEFAULT",
    "ENV_PREFIX",
    "FILE_NAMES",
    "RESERVED_ENV",
    "RESERVED_ENV_PREFIXES",
    "ConfigFile",
    "InvalidConfiguration",
    "KeyDoc",
    "Loaded",
    "Origin",
    "Problem",
    "Sources",
    "describe_schema",
    "display_path",
    "explain",
    "find_config_file",
    "load",
    "load_settings",
    "markdown",
    "read_config_file",
    "settings_keys",
    "toml_key_lines",
    "yaml_key_lines",
]

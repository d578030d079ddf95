"""Where each configuration value came from, and the problems found in them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError
from ..redact import redact_text
from ..settings import is_secret_field, redact_setting

Path_ = tuple[str, ...]


# -- where a value came from


@dataclass(frozen=True, slots=True)
class Origin:
    """The source of one value: a default, a file (and line), a variable or an argument."""

    kind: Literal["default", "file", "env", "argument"]
    file: str | None = None
    line: int | None = None
    variable: str | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.file}, line {self.line}" if self.line else str(self.file)
        if self.kind == "env":
            return f"environment variable {self.variable}"
        return self.kind


DEFAULT = Origin("default")
ARGUMENT = Origin("argument")


@dataclass(slots=True)
class Layer:
    """One source's values, flattened to dotted paths, each with its origin."""

    origins: dict[Path_, Origin]

    def find(self, path: Path_) -> Origin | None:
        """The origin of ``path`` in this layer, or None if the layer does not set it."""
        if path in self.origins:
            return self.origins[path]
        for n in range(len(path) - 1, 0, -1):
            if path[:n] in self.origins:  # given whole, as a table or a JSON variable
                return self.origins[path[:n]]
        for key, origin in self.origins.items():
            if key[: len(path)] == path:  # given in parts (an error about a whole section)
                return origin
        return None


@dataclass(slots=True)
class Sources:
    """The layers, lowest precedence first, and the file that was read."""

    layers: list[Layer] = field(default_factory=list)
    file: Path | None = None

    def origin(self, path: Path_) -> Origin:
        """Where the effective value of ``path`` came from: the highest layer setting it."""
        for layer in reversed(self.layers):
            found = layer.find(path)
            if found is not None:
                return found
        return DEFAULT


#: the sources of the load in progress, so that Settings' validation errors can name them
# -- errors


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration."""

    key: str
    value: str | None  # shown redacted; None when there is no value to show
    origin: Origin
    message: str
    allowed: str = ""

    def __str__(self) -> str:
        shown = f"{self.key} = {self.value}" if self.value is not None else self.key
        text = f"{shown} (from {self.origin}): {self.message}"
        return f"{text}; allowed: {self.allowed}" if self.allowed else text

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``taskq config check --json``."""
        return {
            "key": self.key,
            "value": self.value,
            "source": str(self.origin),
            "message": self.message,
            "allowed": self.allowed,
        }


class InvalidConfiguration(ConfigurationError):
    """A :class:`ConfigurationError` listing every problem found at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = f"invalid configuration: {problems[0]}"
        else:
            lines = "".join(f"\n  - {p}" for p in problems)
            text = f"invalid configuration ({len(problems)} problems):{lines}"
        super().__init__(text)


def shown_value(path: Path_, value: Any) -> str:
    """``value`` of the key at ``path`` as an error may show it: JSON, redacted, clipped."""
    name = next((p for p in reversed(path) if not p.isdigit()), "")
    # an entry of a table of secrets (security.signing_keys.<id>) is a secret too
    secret = next((p for p in path if is_secret_field(p)), None)
    safe = redact_setting(secret or name, value)
    text = json.dumps(safe, default=str) if not isinstance(safe, str) else json.dumps(safe)
    return redact_text(text if len(text) <= 200 else text[:197] + "...")


def flatten(data: Mapping[str, Any], path: Path_ = ()) -> Iterator[Path_]:
    """The paths of the leaves of nested tables (an empty table is a leaf)."""
    for key, value in data.items():
        sub = (*path, str(key))
        if isinstance(value, Mapping) and value:
            yield from flatten(value, sub)
        else:
            yield sub


__all__ = [
    "ARGUMENT",
    "DEFAULT",
    "InvalidConfiguration",
    "Layer",
    "Origin",
    "Path_",
    "Problem",
    "Sources",
    "flatten",
    "shown_value",
]

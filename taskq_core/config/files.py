"""Finding and reading the configuration file, and the line of each of its keys."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic_settings import (
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from ..errors import ConfigurationError
from ..settings import Settings
from .keys import CONFIG_ENV
from .origins import Layer, Origin, Path_, flatten

FILE_NAMES = ("taskq.toml", "taskq.yaml", "taskq.yml")


# -- reading the file


@dataclass(slots=True)
class ConfigFile:
    """A configuration file, read: its pydantic-settings source and the line of each key."""

    path: Path
    kind: Literal["toml", "yaml", "pyproject"]
    source: PydanticBaseSettingsSource
    data: dict[str, Any]
    lines: dict[Path_, int]

    def layer(self) -> Layer:
        """The file's values with their origin (this file and the line of each key)."""
        shown = display_path(self.path)
        origins: dict[Path_, Origin] = {}
        for path in flatten(self.data):
            line = next(
                (self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines),
                None,
            )
            origins[path] = Origin("file", file=shown, line=line)
        return Layer(origins)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_config_file(config_file: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: ``config_file``, else ``TASKQ_CONFIG``, else one found in the
    working directory (``taskq.toml``, ``taskq.yaml``/``.yml``, ``pyproject.toml`` with a
    ``[tool.taskq]`` table). A named file that does not exist is an error."""
    named = config_file or os.environ.get(CONFIG_ENV) or None
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            origin = "--config" if config_file else f"environment variable {CONFIG_ENV}"
            raise ConfigurationError(f"configuration file {str(named)!r} (from {origin}) not found")
        return path.resolve()
    cwd = Path.cwd()
    found = [cwd / n for n in FILE_NAMES if (cwd / n).is_file()]
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise ConfigurationError(
            f"both {names} are in {cwd}: keep one, or choose with --config / {CONFIG_ENV}"
        )
    if found:
        return found[0]
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and "taskq" in read_toml(pyproject).get("tool", {}):
        return pyproject
    return None


def read_config_file(path: Path) -> ConfigFile:
    """Parse ``path`` (``.toml``, ``.yaml``/``.yml``, or a ``pyproject.toml``)."""
    text = path.read_text(encoding="utf-8")
    if path.name == "pyproject.toml":
        tool = read_toml(path).get("tool", {})
        table = tool.get("taskq", {}) if isinstance(tool, dict) else {}
        _require_table(path, table, "[tool.taskq]")
        # PyprojectTomlConfigSettingsSource takes its table only from model_config, where
        # pydantic-settings warns about it whenever that source is not in use (every
        # TaskQueue built in code); the TOML source with a table header reads the same table
        source: PydanticBaseSettingsSource = TomlConfigSettingsSource(
            Settings, toml_file=path, toml_table_header=("tool", "taskq")
        )
        return ConfigFile(path, "pyproject", source, table, toml_key_lines(text, ("tool", "taskq")))
    if path.suffix == ".toml":
        data = read_toml(path)
        return ConfigFile(
            path,
            "toml",
            TomlConfigSettingsSource(Settings, toml_file=path),
            data,
            toml_key_lines(text),
        )
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
            lines = yaml_key_lines(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{display_path(path)} is not valid YAML: {exc}") from None
        data = {} if data is None else data
        _require_table(path, data, "the top level")
        source = YamlConfigSettingsSource(Settings, yaml_file=path)
        return ConfigFile(path, "yaml", source, data, lines)
    raise ConfigurationError(
        f"configuration file {display_path(path)} must end in .toml, .yaml or .yml "
        "(or be a pyproject.toml)"
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file; a syntax error becomes a ConfigurationError naming the file and line."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{display_path(path)} is not valid TOML: {exc}") from None


def _require_table(path: Path, data: object, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{display_path(path)}: {where} must be a table of settings, got {type(data).__name__}"
        )


_TABLE = re.compile(r"^\s*\[(?!\[)(?P<name>[^\]]+)\]\s*(?:#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*(?P<key>{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_DOTTED = re.compile(_KEY_PART)


def _key_parts(key: str) -> Path_:
    return tuple(p.strip("\"'") for p in _DOTTED.findall(key))


def toml_key_lines(text: str, header: Path_ = ()) -> dict[Path_, int]:
    """The 1-based line of each key of a TOML document (dotted paths), under ``header``.

    tomllib keeps no positions; this scan knows tables, dotted and quoted keys, and skips
    multi-line strings, which is all a configuration file uses.
    """
    lines: dict[Path_, int] = {}
    table: Path_ = ()
    in_string: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if m := _TABLE.match(line):
            table = _key_parts(m.group("name"))
            path = table
        elif _ARRAY_TABLE.match(line):
            table = ("\0",)  # arrays of tables hold no settings of ours
            continue
        elif m := _KEY.match(line):
            path = table + _key_parts(m.group("key"))
            rest = line[m.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
        else:
            continue
        if path[: len(header)] == header and len(path) > len(header):
            lines.setdefault(path[len(header) :], n)
    return lines


def yaml_key_lines(text: str) -> dict[Path_, int]:
    """The 1-based line of each key of a YAML document, from the composer's node marks."""
    lines: dict[Path_, int] = {}

    def walk(node: yaml.Node, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    sub = (*path, str(key.value))
                    lines.setdefault(sub, key.start_mark.line + 1)
                    walk(value, sub)

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


__all__ = [
    "FILE_NAMES",
    "ConfigFile",
    "display_path",
    "find_config_file",
    "read_config_file",
    "read_toml",
    "toml_key_lines",
    "yaml_key_lines",
]

"""Every key of the settings model: its dotted name, variable, default, allowed values."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..settings import Settings, redact_setting
from .origins import Path_

ENV_PREFIX = "TASKQ_"
#: names the configuration file (as ``--config`` does)
CONFIG_ENV = "TASKQ_CONFIG"
#: ``TASKQ_*`` variables that are not settings (the supervisor names itself to its workers
#: with the second); every other one must name a key, so that a typo (``TASKQ_CONCURENCY``)
#: is an error instead of being silently ignored
RESERVED_ENV = (CONFIG_ENV, "TASKQ_SUPERVISOR_ID")
#: variables of taskq's own test suite
RESERVED_ENV_PREFIXES = ("TASKQ_TEST_",)


# -- describing the keys (docs/configuration.md, `config show`, error messages)


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """One setting: its dotted key, default, variable, what is allowed and what it means."""

    path: Path_
    field: FieldInfo
    default: Any
    allowed: str
    description: str

    @property
    def key(self) -> str:
        """The dotted key, ``worker.concurrency``."""
        return ".".join(self.path)

    @property
    def env(self) -> str:
        """The environment variable of the key."""
        return env_name(self.key)


def env_name(key: str) -> str:
    """``worker.concurrency`` -> ``TASKQ_WORKER__CONCURRENCY``."""
    return ENV_PREFIX + key.replace(".", "__").upper()


def section_model(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a section field (``worker``), None for a plain key."""
    ann = info.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def settings_keys(model: type[BaseModel] = Settings, path: Path_ = ()) -> list[KeyDoc]:
    """Every leaf setting of ``model``, sections expanded, in declaration order."""
    schema = model.model_json_schema()
    props: dict[str, Any] = schema.get("properties", {})
    out: list[KeyDoc] = []
    for name, info in model.model_fields.items():
        section = section_model(info)
        if section is not None:
            out += settings_keys(section, (*path, name))
            continue
        default = info.get_default(call_default_factory=True, validated_data={})
        out.append(
            KeyDoc(
                (*path, name),
                info,
                redact_setting(name, default, info),
                describe_schema(props.get(name, {})),
                info.description or "",
            )
        )
    return out


def known_keys(section: Path_) -> list[str]:
    """The keys of a section (``()``: the top level)."""
    model: type[BaseModel] = Settings
    for part in section:
        info = model.model_fields.get(part)
        sub = section_model(info) if info is not None else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def describe_path(path: Path_) -> KeyDoc | None:
    """The key that ``path`` is, or is inside of (a list item, a table's entry)."""
    for doc in settings_keys():
        if doc.path == path[: len(doc.path)]:
            return doc
    return None


def describe_schema(schema: Mapping[str, Any]) -> str:
    """What a JSON-schema fragment allows, in words (``an integer from 1 to 10000``)."""
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        text = " or ".join(describe_schema(s) for s in options)
        return text + (" or none" if len(options) < len(schema["anyOf"]) else "")
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "$ref" in schema:
        return "a table of settings"
    kind = schema.get("type")
    if kind == "array":
        items = describe_schema(schema.get("items", {}))
        text = "a list" + (f" of {_plural(items)}" if items != "a value" else "")
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if lo is not None:
            text += f", at least {lo} item{'s' if lo != 1 else ''}"
        if hi is not None:
            text += f", at most {hi} items"
        return text
    names = {
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "boolean": "true or false",
        "object": "a table",
    }
    text = names.get(str(kind), "a value")
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None and hi is not None:
        text += f" from {_num(lo)} to {_num(hi)}"
    else:
        bounds = []
        if lo is not None:
            bounds.append(f">= {_num(lo)}")
        if "exclusiveMinimum" in schema:
            bounds.append(f"> {_num(schema['exclusiveMinimum'])}")
        if hi is not None:
            bounds.append(f"<= {_num(hi)}")
        if "exclusiveMaximum" in schema:
            bounds.append(f"< {_num(schema['exclusiveMaximum'])}")
        if bounds:
            text += " " + " and ".join(bounds)
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    if "minLength" in schema or "maxLength" in schema:
        text += f", {schema.get('minLength', 0)} to {schema.get('maxLength', '...')} characters"
    return text


def _plural(text: str) -> str:
    for one, many in (
        ("an integer", "integers"),
        ("a number", "numbers"),
        ("a string", "strings"),
        ("a table", "tables"),
    ):
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value}"


def suggest(name: str, known: list[str]) -> str | None:
    """The key a typo most likely meant: one it begins, else the closest spelling."""
    starts = [k for k in known if k.startswith(name) or name.startswith(k)]
    if starts:
        return starts[0]
    close = difflib.get_close_matches(name, known, n=1)
    return close[0] if close else None


__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "RESERVED_ENV",
    "RESERVED_ENV_PREFIXES",
    "KeyDoc",
    "describe_path",
    "describe_schema",
    "env_name",
    "known_keys",
    "section_model",
    "settings_keys",
    "suggest",
]

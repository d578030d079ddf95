"""A small parser of Dockerfile instructions: enough to check what a Dockerfile names.

It reads instructions (comments and parser directives skipped, ``\\`` continuations
joined), stages (``FROM ... AS name``), ``ARG`` defaults, ``ENV`` pairs, exec-form (JSON)
arguments and ``HEALTHCHECK`` options. It does not build anything; Docker's own parser
is the reference (https://docs.docker.com/reference/dockerfile/). Written here rather than
taking ``dockerfile-parse`` as a dependency: the checks need a tenth of it, and a parse error
must name the file and line (docs/dependencies.md).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

KNOWN = frozenset(
    (
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
        "WORKDIR",
    )
)  # fmt: skip
_VAR = re.compile(r"\$(?:\{(\w+)(?::[-+][^}]*)?\}|(\w+))")


class DockerfileError(ValueError):
    """The Dockerfile cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: its keyword (upper case), the rest of it, its first line, its stage."""

    keyword: str
    value: str
    line: int
    stage: int


@dataclass(slots=True)
class Stage:
    """One ``FROM`` and what follows it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions of ``keyword``."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        """The instruction of ``keyword`` that counts (the last one), if any."""
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass(slots=True)
class Dockerfile:
    """A parsed Dockerfile: global ``ARG`` defaults and its stages."""

    name: str
    args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise DockerfileError(f"{self.name}: no stage {name!r}")

    @property
    def final(self) -> Stage:
        """The stage ``docker build`` makes an image of by default: the last one."""
        return self.stages[-1]

    def variables(self, stage: Stage) -> dict[str, str]:
        """``ARG`` defaults (global, then the stage's) and ``ENV`` values of ``stage``."""
        out = dict(self.args)
        for i in stage.instructions:
            if i.keyword == "ARG":
                out.update(arg_default(i))
            elif i.keyword == "ENV":
                out.update(env_pairs(self.name, i))
        return out


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse ``text``; :class:`DockerfileError` names ``name`` and the line of a problem."""
    stages: list[Stage] = []
    args: dict[str, str] = {}
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment and empty lines, inside continuations too
        if not buf:
            start = no
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(part for part in buf if part)
        buf = []
        keyword, _, value = joined.partition(" ")
        keyword = keyword.upper()
        if keyword not in KNOWN:
            raise DockerfileError(f"{name}:{start}: unknown instruction {keyword!r}")
        inst = Instruction(keyword, value.strip(), start, len(stages) - 1)
        if keyword == "FROM":
            # FROM sees the global ARGs only (those before the first FROM)
            parts = expand(inst.value, args).split()
            if not parts:
                raise DockerfileError(f"{name}:{start}: FROM names no image")
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], alias))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(f"{name}:{start}: {keyword} before the first FROM")
            args.update(arg_default(inst))
        else:
            stages[-1].instructions.append(inst)
    if buf:
        raise DockerfileError(f"{name}: the last instruction ends with a continuation '\\'")
    if not stages:
        raise DockerfileError(f"{name}: no FROM instruction")
    return Dockerfile(name, args, stages)


def arg_default(inst: Instruction) -> dict[str, str]:
    """``ARG NAME=default`` -> ``{NAME: default}`` (``ARG NAME``: an empty default)."""
    key, _, value = inst.value.partition("=")
    return {key.strip(): _unquote(value.strip())}


def env_pairs(name: str, inst: Instruction) -> dict[str, str]:
    """``ENV A=1 B="two words"`` -> ``{A: "1", B: "two words"}``."""
    out: dict[str, str] = {}
    for token in shlex.split(inst.value):
        key, eq, value = token.partition("=")
        if not eq:
            raise DockerfileError(f"{name}:{inst.line}: ENV {token!r} is not NAME=value")
        out[key] = value
    return out


def exec_form(name: str, inst: Instruction, value: str | None = None) -> list[str]:
    """The JSON argument list of an exec-form instruction (``CMD ["taskq", "worker"]``)."""
    text = inst.value if value is None else value
    try:
        argv = json.loads(text)
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise DockerfileError(
            f"{name}:{inst.line}: {inst.keyword} is not in exec form (a JSON list of strings): "
            f"{text[:80]!r}"
        )
    return argv


def healthcheck(name: str, inst: Instruction) -> tuple[dict[str, str], list[str]]:
    """The options (``--interval`` ...) and the command of a ``HEALTHCHECK``."""
    options: dict[str, str] = {}
    rest = inst.value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    word, _, command = rest.partition(" ")
    if word.upper() != "CMD":
        raise DockerfileError(f"{name}:{inst.line}: HEALTHCHECK without CMD: {rest[:80]!r}")
    return options, exec_form(name, inst, command.strip())


def expand(text: str, variables: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by their values; unknown ones left as they are."""
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value

"""What the deployment files name, gathered in one shape, and the checks of each reference.

Every container the files describe (the Dockerfile's default command, each compose service,
each Kubernetes container) becomes a :class:`Container`: where it is written, its command,
its environment, its health-check commands, the HTTP paths probed, its ports, its stop
timeout. Each ``check_*`` function returns problems as lines that name the file (and the
service or container) and the bad reference, so a failing test says what to fix.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import yaml

from taskq_core import TaskQueue
from taskq_core.cli import main as taskq_main
from taskq_core.config import load_settings
from taskq_core.config.keys import ENV_PREFIX, RESERVED_ENV, settings_keys
from taskq_core.errors import ConfigurationError
from taskq_core.http.routes import HttpError, RouteTable
from taskq_core.settings import Settings
from taskq_core.supervisor.process import KILL_AFTER

from . import dockerfile as df

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
#: seconds the supervisor adds to worker.grace_period before its second SIGTERM
SUPERVISOR_MARGIN = 2.0


def rel(path: Path) -> str:
    """``path`` as the repository names it."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


@dataclass(slots=True)
class Container:
    """One process the deployment files start, and everything they say about it."""

    where: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    probes: list[list[str]] = field(default_factory=list)
    #: (path, port) of each HTTP probe; port is a number or a container port's name
    http: list[tuple[str, int | str]] = field(default_factory=list)
    #: container port name (or its number as text) -> number
    ports: dict[str, int] = field(default_factory=dict)
    stop_seconds: float | None = None


# -- reading the files


def load_yaml(text: str, name: str) -> list[Any]:
    """Every document of a YAML file; an error names the file."""
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise AssertionError(f"{name}: not valid YAML: {exc}") from None


def dockerfile_container(d: df.Dockerfile) -> Container:
    """The final stage's default command, environment, health check and ports."""
    stage = d.final
    variables = d.variables(stage)
    env = {}
    for inst in stage.all("ENV"):
        env.update(df.env_pairs(d.name, inst))
    cmd = stage.last("CMD")
    argv = df.exec_form(d.name, cmd) if cmd else []
    probes = []
    check = stage.last("HEALTHCHECK")
    if check is not None:
        probes.append(df.healthcheck(d.name, check)[1])
    ports: dict[str, int] = {}
    for inst in stage.all("EXPOSE"):
        for token in df.expand(inst.value, variables).split():
            number = token.split("/")[0]
            if not number.isdigit():
                raise AssertionError(f"{d.name}:{inst.line}: EXPOSE {token!r} is not a port")
            ports[number] = int(number)
    return Container(f"{d.name} (final stage)", argv, env, probes, [], ports)


def _env_dict(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    raise AssertionError(f"{where}: environment is neither a mapping nor a list")


def _argv(raw: Any, where: str) -> list[str]:
    if isinstance(raw, str):
        return shlex.split(raw)
    if isinstance(raw, list) and all(isinstance(a, str | int | float) for a in raw):
        return [str(a) for a in raw]
    raise AssertionError(f"{where}: a command is neither a string nor a list of strings")


def duration(text: str | int | float, where: str) -> float:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise AssertionError(f"{where}: {text!r} is not a duration such as 30s or 1m30s")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


_URL = re.compile(r"https?://[^\s'\"]+")


def _http_in(argv: list[str]) -> list[tuple[str, int | str]]:
    """The (path, port) of every URL written in a command (a probe made with curl/python)."""
    out: list[tuple[str, int | str]] = []
    for url in _URL.findall(" ".join(argv)):
        parts = urlsplit(url)
        out.append((parts.path or "/", parts.port or 80))
    return out


def compose_containers(doc: dict[str, Any], default: Container, name: str) -> list[Container]:
    """One :class:`Container` per service of a compose file."""
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        raise AssertionError(f"{name}: no services")
    out = []
    for svc, spec in services.items():
        where = f"{name} service {svc}"
        built = "build" in spec
        argv = _argv(spec["command"], where) if "command" in spec else []
        if not argv and built:
            argv = list(default.argv)
        env = {**(default.env if built else {}), **_env_dict(spec.get("environment"), where)}
        probes: list[list[str]] = []
        test = (spec.get("healthcheck") or {}).get("test")
        if test is None and built:
            probes = [list(p) for p in default.probes]
        elif isinstance(test, list) and test and test[0] == "CMD":
            probes.append([str(a) for a in test[1:]])
        elif isinstance(test, list) and test and test[0] == "CMD-SHELL":
            probes.append(["sh", "-c", str(test[1])])
        elif isinstance(test, str):
            probes.append(["sh", "-c", test])
        elif test is not None:
            raise AssertionError(f"{where}: healthcheck.test is not CMD or CMD-SHELL: {test!r}")
        ports: dict[str, int] = {}
        for entry in spec.get("ports") or []:
            target = entry.get("target") if isinstance(entry, dict) else str(entry).split(":")[-1]
            number = str(target).split("/")[0]
            if not number.isdigit():
                raise AssertionError(f"{where}: port {entry!r} has no container port")
            ports[number] = int(number)
        stop = spec.get("stop_grace_period")
        out.append(
            Container(
                where,
                argv,
                env,
                probes,
                [h for p in probes for h in _http_in(p)],
                ports,
                duration(stop, where) if stop is not None else 10.0,  # compose's default
            )
        )
    return out


def _k8s_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]], where: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref is not None:
            if ref not in config_maps:
                raise AssertionError(f"{where}: envFrom names ConfigMap {ref!r}, not in deploy/k8s")
            env.update(config_maps[ref])
    for item in container.get("env") or []:
        # valueFrom (a Secret) has no value here; only the name is checked
        env[str(item["name"])] = str(item.get("value", ""))
    return env


def k8s_containers(
    manifests: list[tuple[str, dict[str, Any]]], default: Container
) -> list[Container]:
    """One :class:`Container` per container of every Deployment."""
    config_maps = {
        m["metadata"]["name"]: {str(k): str(v) for k, v in (m.get("data") or {}).items()}
        for _, m in manifests
        if m.get("kind") == "ConfigMap"
    }
    out = []
    for name, m in manifests:
        if m.get("kind") != "Deployment":
            continue
        pod = m["spec"]["template"]["spec"]
        for c in pod["containers"]:
            where = f"{name} Deployment {m['metadata']['name']} container {c['name']}"
            argv = [*(c.get("command") or []), *(c.get("args") or [])] or list(default.argv)
            probes: list[list[str]] = []
            http: list[tuple[str, int | str]] = []
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.get(kind)
                if not probe:
                    continue
                if "exec" in probe:
                    probes.append([str(a) for a in probe["exec"]["command"]])
                if "httpGet" in probe:
                    http.append((str(probe["httpGet"]["path"]), probe["httpGet"]["port"]))
            ports = {}
            for p in c.get("ports") or []:
                ports[str(p["containerPort"])] = int(p["containerPort"])
                if "name" in p:
                    ports[str(p["name"])] = int(p["containerPort"])
            out.append(
                Container(
                    where,
                    [str(a) for a in argv],
                    _k8s_env(c, config_maps, where),
                    probes,
                    http,
                    ports,
                    float(pod.get("terminationGracePeriodSeconds", 30)),  # Kubernetes' default
                )
            )
    return out


def k8s_manifests() -> list[tuple[str, dict[str, Any]]]:
    """``(file, manifest)`` for every Kubernetes object in deploy/k8s (Helm values skipped)."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml(path.read_text(), rel(path)):
            if isinstance(doc, dict) and "kind" in doc:
                out.append((rel(path), doc))
    return out


# -- commands


def shell_words(argv: list[str], env: dict[str, str], where: str) -> list[str]:
    """``argv``, with a ``sh -c "exec ..."`` wrapper opened and its variables expanded."""
    if len(argv) >= 3 and Path(argv[0]).name in ("sh", "bash") and argv[1] == "-c":
        script = argv[2]
        for var in re.findall(r"\$\{?(\w+)\}?", script):
            if var not in env:
                raise AssertionError(f"{where}: the command uses ${var}, which is not set")
        words = shlex.split(df.expand(script, env))
        return words[1:] if words and words[0] == "exec" else words
    return argv


def taskq_args(c: Container) -> list[list[str]]:
    """The arguments of every ``taskq`` command the container runs (command and probes)."""
    out = []
    for argv in [c.argv, *c.probes]:
        words = shell_words(argv, c.env, c.where)
        if words and Path(words[0]).name == "taskq":
            out.append(words[1:])
    return out


def check_taskq(where: str, args: list[str]) -> list[str]:
    """``taskq ARGS`` parses: the command exists, and so does each option, with a valid
    value (click's own parser, as ``taskq`` would run it, without running it)."""
    shown = " ".join(["taskq", *args])
    try:
        ctx = taskq_main.make_context("taskq", list(args))
        cmd: click.Command = taskq_main
        while isinstance(cmd, click.Group):
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                return [f"{where}: {shown}: names no command"]
            name, sub, rest = cmd.resolve_command(ctx, rest)
            assert sub is not None
            assert name is not None
            ctx = sub.make_context(name, rest, parent=ctx)
            cmd = sub
    except click.ClickException as exc:
        return [f"{where}: {shown}: {exc.format_message()}"]
    return []


def option_values(args: list[str], option: str) -> list[str]:
    """The values given to ``option`` (``--app X`` and ``--app=X``)."""
    out = []
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(option + "="):
            out.append(a.split("=", 1)[1])
    return out


def python_refs(c: Container) -> list[str]:
    """Every ``module`` or ``module:attr`` the container names: ``--app``, the ASGI/WSGI app
    of uvicorn or gunicorn, ``APP_MODULE`` and the modules of ``TASKQ_IMPORTS``."""
    refs = []
    for args in taskq_args(c):
        refs += option_values(args, "--app")
    words = shell_words(c.argv, c.env, c.where)
    if words and Path(words[0]).name in ("uvicorn", "gunicorn"):
        positional = [w for w in words[1:] if ":" in w and not w.startswith("-")]
        refs += positional[:1]
    if "APP_MODULE" in c.env:
        refs.append(c.env["APP_MODULE"])
    if c.env.get("TASKQ_IMPORTS"):
        refs += json.loads(c.env["TASKQ_IMPORTS"])
    return refs


def check_import(where: str, ref: str) -> list[str]:
    """``module`` imports, and ``module:attr`` names an attribute of it."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return [f"{where}: {ref}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"]
    if attr and not hasattr(module, attr):
        return [f"{where}: {ref}: module {module_name!r} has no attribute {attr!r}"]
    return []


def listen_ports(c: Container) -> list[int]:
    """Ports the container's server is told to listen on (``--port``, ``--bind host:port``)."""
    words = shell_words(c.argv, c.env, c.where)
    out = [int(p) for p in option_values(words, "--port") if p.isdigit()]
    for bind in option_values(words, "--bind") + option_values(words, "-b"):
        port = bind.rsplit(":", 1)[-1]
        if port.isdigit():
            out.append(int(port))
    return out


# -- settings


def known_variables() -> set[str]:
    """Every ``TASKQ_*`` variable taskq reads: one per key, one per section (as JSON), and
    the reserved ones (``TASKQ_CONFIG``)."""
    names = {doc.env for doc in settings_keys()}
    names |= {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return names | set(RESERVED_ENV)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with no ``TASKQ_*`` variable but ``values`` (restored after)."""
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.upper().startswith(ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_settings(where: str, env: dict[str, str]) -> list[str]:
    """Every ``TASKQ_*`` variable in ``env`` is a setting, and together they are valid."""
    taskq = {k: v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
    known = known_variables()
    unknown = [
        f"{where}: {k} is not a taskq setting" for k in sorted(taskq) if k.upper() not in known
    ]
    if unknown:
        return unknown
    with environment(taskq):
        try:
            load_settings(None)
        except ConfigurationError as exc:
            return [f"{where}: invalid TASKQ_* settings: {exc}"]
    return []


def grace_period(env: dict[str, str]) -> float:
    """``worker.grace_period`` with the container's variables (they are valid: checked)."""
    with environment({k: v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}):
        return load_settings(None).worker.grace_period


def shutdown_seconds(env: dict[str, str]) -> float:
    """The longest a ``taskq worker``/``scheduler`` takes to stop after SIGTERM: the grace
    period, the supervisor's margin before its second SIGTERM, and the wait before it kills a
    process that is still there (taskq_core/supervisor/process.py)."""
    return grace_period(env) + SUPERVISOR_MARGIN + KILL_AFTER


# -- HTTP paths


def route_table() -> RouteTable:
    """The core route table at the default prefix (``http.prefix``: ``/tasks``)."""
    return RouteTable(TaskQueue("memory://"))


def check_path(where: str, path: str, table: RouteTable) -> list[str]:
    """``path`` (with the prefix) is a GET route of taskq's route table."""
    prefix = table.prefix
    if not path.startswith(prefix + "/"):
        return [f"{where}: probe path {path!r} is not under taskq's prefix {prefix!r}"]
    try:
        table.match("GET", path[len(prefix) :])
    except HttpError as exc:
        return [f"{where}: probe path {path!r}: {exc.message}"]
    return []


def check_port(where: str, port: int | str, c: Container, what: str) -> list[str]:
    """``port`` (a number or a port name) is one the container declares."""
    if str(port) not in c.ports:
        return [f"{where}: {what} port {port!r} is not a port of the container {sorted(c.ports)}"]
    return []


def dockerignored(path: str, patterns: list[str]) -> str | None:
    """The ``.dockerignore`` pattern that excludes ``path`` (or one of its parents), if any."""
    from fnmatch import fnmatchcase

    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        pattern = raw.strip().strip("/")
        if not pattern or pattern.startswith("#") or pattern.startswith("!"):
            continue
        bare = pattern[3:] if pattern.startswith("**/") else None
        for p in prefixes:
            if fnmatchcase(p, pattern) or (bare and fnmatchcase(Path(p).name, bare)):
                return raw.strip()
    return None

"""The deployment files (Dockerfile, .dockerignore, deploy/compose.yaml, deploy/k8s/) name
only things that exist, and agree with each other and with taskq.

Docker and Kubernetes do not run here, so this is what can be checked without them: the files
parse; every ``taskq`` command and option parses with the real CLI; every module they name
imports; ports agree; probed paths are routes of the core table; every ``TASKQ_*`` variable
is a valid setting; stop timeouts cover taskq's shutdown; the HPA's metric is one taskq
exports; the HEALTHCHECK command answers against a real Redis; and (``slow``) the build
stage's commands make a wheel that installs and runs. docs/deployment.md describes the files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskq_core import TaskQueue
from taskq_core.observability.prometheus import TaskqCollector

from . import checks
from . import dockerfile as df
from .checks import COMPOSE, DOCKERFILE, DOCKERIGNORE, ROOT, Container, rel

BIN = Path(sys.executable).parent


# -- the files, parsed once


def read_dockerfile() -> df.Dockerfile:
    return df.parse(DOCKERFILE.read_text(), rel(DOCKERFILE))


def compose_doc() -> dict[str, Any]:
    (doc,) = checks.load_yaml(COMPOSE.read_text(), rel(COMPOSE))
    assert isinstance(doc, dict)
    return doc


def containers() -> list[Container]:
    default = checks.dockerfile_container(read_dockerfile())
    return [
        default,
        *checks.compose_containers(compose_doc(), default, rel(COMPOSE)),
        *checks.k8s_containers(checks.k8s_manifests(), default),
    ]


def app_src() -> Path:
    d = read_dockerfile()
    return ROOT / d.variables(d.stage("runtime"))["APP_SRC"]


def assert_no_problems(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- parsing


def test_every_file_parses() -> None:
    d = read_dockerfile()
    assert [s.name for s in d.stages] == ["build", "runtime"]
    assert d.final.base == d.args["PYTHON_IMAGE"] == "python:3.12-slim"
    assert set(compose_doc()["services"]) == {"redis", "web", "worker", "scheduler"}
    kinds = sorted(m["kind"] for _, m in checks.k8s_manifests())
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
    ]
    for path in sorted(checks.K8S.glob("*.yaml")):
        assert checks.load_yaml(path.read_text(), rel(path)), f"{rel(path)} is empty"


def test_runtime_stage_is_slim_non_root_and_builds_nothing() -> None:
    d = read_dockerfile()
    runtime = d.stage("runtime")
    user = runtime.last("USER")
    assert user is not None, "Dockerfile: the runtime stage runs as root (no USER)"
    # numeric: Kubernetes' runAsNonRoot cannot verify a user name
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user.value), f"Dockerfile: USER {user.value!r}"
    runs = " ".join(i.value for i in runtime.all("RUN"))
    for compiler in ("gcc", "build-essential", "clang", "apt-get install", "python3-dev"):
        assert compiler not in runs, f"Dockerfile: the runtime stage installs {compiler}"
    assert "--only-binary=:all:" in runs
    assert "pip wheel" in " ".join(i.value for i in d.stage("build").all("RUN"))
    assert runtime.last("HEALTHCHECK") is not None
    cmd = runtime.last("CMD")
    assert cmd is not None
    assert df.exec_form(d.name, cmd)[:2] == ["sh", "-c"]
    # exec: taskq must be PID 1 to receive SIGTERM (a shell would swallow it)
    assert df.exec_form(d.name, cmd)[2].startswith("exec taskq worker --app ")


def test_copy_sources_exist_and_are_not_dockerignored() -> None:
    d = read_dockerfile()
    patterns = DOCKERIGNORE.read_text().splitlines()
    problems = []
    for stage in d.stages:
        variables = d.variables(stage)
        for inst in stage.all("COPY"):
            if "--from=" in inst.value:
                continue
            *sources, _dest = df.expand(inst.value, variables).split()
            for src in sources:
                path = src.rstrip("/")
                if not (ROOT / path).exists():
                    problems.append(f"{d.name}:{inst.line}: COPY {src}: no such path")
                elif pattern := checks.dockerignored(path, patterns):
                    problems.append(
                        f"{d.name}:{inst.line}: COPY {src} is excluded by .dockerignore {pattern!r}"
                    )
    assert_no_problems(problems)


# -- references


def test_every_taskq_command_and_option_exists() -> None:
    seen = []
    problems = []
    for c in containers():
        for args in checks.taskq_args(c):
            seen.append(args[0])
            problems += checks.check_taskq(c.where, args)
    assert_no_problems(problems)
    assert {"worker", "scheduler", "health"} <= set(seen)


def test_every_python_module_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    # the image's working directory is the application's code: it is on the import path
    monkeypatch.syspath_prepend(str(app_src()))
    problems = []
    refs = set()
    for c in containers():
        for ref in checks.python_refs(c):
            refs.add(ref)
            problems += checks.check_import(c.where, ref)
    assert_no_problems(problems)
    assert {"starlette_shop.tasks:tq", "starlette_shop.app:app", "starlette_shop.periodic"} <= refs


def test_ports_agree() -> None:
    all_containers = containers()
    exposed = set(all_containers[0].ports.values())
    assert exposed == {8000}
    problems = []
    for c in all_containers:
        for port in checks.listen_ports(c):
            if port not in exposed:
                problems.append(f"{c.where}: listens on {port}, not an EXPOSE port {exposed}")
            if c.ports and port not in c.ports.values():
                problems.append(f"{c.where}: listens on {port}, not a declared port")
        for number in c.ports.values():
            if number not in exposed:
                problems.append(f"{c.where}: port {number} is not an EXPOSE port {exposed}")
        for path, probed in c.http:
            # a compose health check runs in the container: it must reach the server's port
            if isinstance(probed, int) and c.where.startswith(rel(COMPOSE)):
                if probed not in checks.listen_ports(c):
                    problems.append(f"{c.where}: health check of {path} on port {probed}")
            elif not isinstance(probed, int) or c.ports:
                problems += checks.check_port(c.where, probed, c, f"probe of {path}")
    # every Service's targetPort is a port of the Deployment its selector picks
    manifests = checks.k8s_manifests()
    for name, svc in manifests:
        if svc["kind"] != "Service":
            continue
        selector = svc["spec"]["selector"]
        pods = [
            (f, m)
            for f, m in manifests
            if m["kind"] == "Deployment"
            and selector.items() <= m["spec"]["template"]["metadata"]["labels"].items()
        ]
        where = f"{name} Service {svc['metadata']['name']}"
        if not pods:
            problems.append(f"{where}: its selector {selector} picks no Deployment")
        for f, m in pods:
            by_name = {
                c.where.rsplit(" container ", 1)[1]: c
                for c in all_containers
                if c.where.startswith(f"{f} Deployment {m['metadata']['name']} ")
            }
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                if not any(str(target) in c.ports for c in by_name.values()):
                    problems.append(f"{where}: targetPort {target!r} is no container port")
                if int(p["port"]) not in exposed:
                    problems.append(f"{where}: port {p['port']} is not an EXPOSE port")
        for f, m in pods:
            annotations = m["spec"]["template"]["metadata"].get("annotations") or {}
            if (
                "prometheus.io/port" in annotations
                and int(annotations["prometheus.io/port"]) not in exposed
            ):
                problems.append(f"{f}: prometheus.io/port is not an EXPOSE port")
    assert_no_problems(problems)


def test_every_probed_path_is_a_core_route() -> None:
    table = checks.route_table()
    probed = set()
    problems = []
    for c in containers():
        for path, _port in c.http:
            probed.add(path)
            problems += checks.check_path(c.where, path, table)
    for name, m in checks.k8s_manifests():
        annotations = (
            m.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        )
        if "prometheus.io/path" in annotations:
            path = annotations["prometheus.io/path"]
            probed.add(path)
            problems += checks.check_path(f"{name} prometheus.io/path", path, table)
    assert_no_problems(problems)
    assert {"/tasks/health/live", "/tasks/health/ready", "/tasks/metrics/prometheus"} <= probed


def test_every_taskq_variable_is_a_valid_setting() -> None:
    problems = []
    named = set()
    for c in containers():
        named |= {k for k in c.env if k.startswith("TASKQ_")}
        problems += checks.check_settings(c.where, c.env)
    assert_no_problems(problems)
    assert {"TASKQ_BROKER_URL", "TASKQ_WORKER__GRACE_PERIOD", "TASKQ_IMPORTS"} <= named


def test_stop_timeouts_cover_taskqs_shutdown() -> None:
    problems = []
    for c in containers():
        # the worker's stop is bounded by the grace period; the scheduler stops at once
        commands = [args[0] for args in checks.taskq_args(c) if args]
        if c.stop_seconds is None or commands[:1] != ["worker"]:
            continue
        needed = checks.shutdown_seconds(c.env)
        if c.stop_seconds <= needed:
            problems.append(
                f"{c.where}: stops after {c.stop_seconds:g} s, but taskq may take {needed:g} s "
                "(worker.grace_period + 2 s + 10 s before the supervisor kills a process)"
            )
    assert_no_problems(problems)


def test_hpa_scales_on_a_metric_taskq_exports(redis_url: str, prefix: str) -> None:
    tq = TaskQueue(redis_url, key_prefix=prefix)
    try:
        exported = {s.name for fam in TaskqCollector(tq).collect() for s in fam.samples}
    finally:
        tq.close()
    hpa = [m for _, m in checks.k8s_manifests() if m["kind"] == "HorizontalPodAutoscaler"]
    named = {
        metric["external"]["metric"]["name"]
        for m in hpa
        for metric in m["spec"]["metrics"]
        if metric["type"] == "External"
    }
    adapter = (checks.K8S / "prometheus-adapter-values.yaml").read_text()
    named |= set(re.findall(r"\btaskq_\w+", adapter))
    assert named, "hpa.yaml names no taskq metric"
    unknown = sorted(named - exported)
    assert not unknown, f"deploy/k8s: metrics {unknown} are not exported by TaskqCollector"
    # the adapter's rule serves the metric under the name the HPA asks for
    rules = checks.load_yaml(adapter, "prometheus-adapter-values.yaml")[0]["rules"]["external"]
    assert {r["name"]["as"] for r in rules} >= named & {"taskq_queue_depth"}


# -- the health check, run


def test_healthcheck_command_answers_against_real_redis(redis_url: str, prefix: str) -> None:
    commands = {tuple(p) for c in containers() for p in c.probes if p[0] == "taskq"}
    assert commands == {("taskq", "health")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(TASKQ_BROKER_URL=redis_url, TASKQ_KEY_PREFIX=prefix)
    for argv in commands:
        exe = [str(BIN / argv[0]), *argv[1:]]
        ok = subprocess.run(exe, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0, (argv, ok.stdout, ok.stderr)
        env["TASKQ_BROKER_URL"] = f"redis://127.0.0.1:{_closed_port()}/0"
        down = subprocess.run(exe, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert down.returncode == 1, (argv, down.stdout, down.stderr)
        assert down.stdout.startswith("not ready: ")


def run_env(c: Container, redis_url: str, prefix: str) -> dict[str, str]:
    """The container's environment for a process here: its own variables (compose's
    ``${...}`` interpolations left empty), on the test's Redis and key prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update({k: "" if v.startswith("${") else v for k, v in c.env.items()})
    env.update(TASKQ_BROKER_URL=redis_url, TASKQ_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1")
    return env


def local(argv: list[str], port: int) -> list[str]:
    """``argv`` run here: programs from this environment, loopback only, port ``port``."""
    out = []
    for i, word in enumerate(argv):
        a = word
        if i == 0 and a in ("python", "uvicorn", "taskq"):
            a = sys.executable if a == "python" else str(BIN / a)
        elif i and argv[i - 1] == "--port":
            a = str(port)
        elif i and argv[i - 1] == "--host":
            a = "127.0.0.1"
        out.append(re.sub(r"(https?://127\.0\.0\.1):\d+", rf"\g<1>:{port}", a))
    return out


def test_web_command_serves_every_probe_and_passes_its_health_check(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """compose's web command as a real server: every path the files probe answers 200, and
    compose's health check passes while it serves and fails once it is gone."""
    (web,) = [c for c in containers() if c.where.endswith("service web")]
    assert len(web.probes) == 1
    port = _closed_port()
    env = run_env(web, redis_url, prefix)
    paths = {p for c in containers() for p, _ in c.http} | {"/tasks/metrics/prometheus"}
    log = tmp_path / "web.log"  # a file: a pipe nobody reads could fill up
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(
            local(web.argv, port), cwd=app_src(), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    check = local(web.probes[0], port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the web server did not answer in 60 s"
                try:
                    client.get("/tasks/health/live")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)  # the port is not open yet: nothing to wait on but time
            for path in sorted(paths):
                r = client.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
        ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.terminate()
        server.wait(30)
    down = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode != 0, "compose's web health check passes with no server"


def test_scheduler_command_finds_its_schedules(redis_url: str, prefix: str) -> None:
    """Without a schedule ``taskq scheduler`` exits 1: each scheduler's command, with its
    container's variables (TASKQ_IMPORTS), lists at least one."""
    schedulers = [
        c for c in containers() if any(a[:1] == ["scheduler"] for a in checks.taskq_args(c))
    ]
    assert len(schedulers) == 2  # compose and Kubernetes
    for c in schedulers:
        argv = [*local(c.argv, 0), "--list", "--json"]
        r = subprocess.run(
            argv,
            cwd=app_src(),
            env=run_env(c, redis_url, prefix),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, f"{c.where}: {r.stderr}"
        schedules = json.loads(r.stdout)["schedules"]
        assert schedules, f"{c.where}: the scheduler finds no schedule"


# -- each check fails, naming the file and the bad reference


def test_a_bad_command_or_option_is_named() -> None:
    (problem,) = checks.check_taskq("compose.yaml service w", ["wroker"])
    assert problem.startswith("compose.yaml service w: taskq wroker: No such command 'wroker'")
    (problem,) = checks.check_taskq("f.yaml", ["worker", "--proceses", "2"])
    assert problem.startswith("f.yaml: taskq worker --proceses 2: No such option '--proceses'")
    (problem,) = checks.check_taskq("f.yaml", ["worker", "--processes", "lots"])
    assert "'lots' is not a number of processes" in problem


def test_a_bad_module_path_variable_or_port_is_named() -> None:
    (problem,) = checks.check_import("web.yaml", "starlette_shop.nope:app")
    assert problem.startswith("web.yaml: starlette_shop.nope:app: cannot import")
    (problem,) = checks.check_import("web.yaml", "taskq_core.cli:mian")
    assert (
        problem == "web.yaml: taskq_core.cli:mian: module 'taskq_core.cli' has no attribute 'mian'"
    )
    table = checks.route_table()
    (problem,) = checks.check_path("web.yaml", "/tasks/health/alive", table)
    assert problem.startswith("web.yaml: probe path '/tasks/health/alive': no route")
    assert checks.check_path("web.yaml", "/health/live", table) == [
        "web.yaml: probe path '/health/live' is not under taskq's prefix '/tasks'"
    ]
    assert checks.check_settings("compose.yaml service web", {"TASKQ_APP": "shop:tq"}) == [
        "compose.yaml service web: TASKQ_APP is not a taskq setting"
    ]
    (problem,) = checks.check_settings("cm.yaml", {"TASKQ_WORKER__GRACE_PERIOD": "-1"})
    assert problem.startswith("cm.yaml: invalid TASKQ_* settings")
    assert "worker.grace_period" in problem
    c = Container("web.yaml container web", [], ports={"http": 8000, "8000": 8000})
    assert checks.check_port(c.where, "metrics", c, "probe of /x") == [
        "web.yaml container web: probe of /x port 'metrics' is not a port of the container "
        "['8000', 'http']"
    ]


def test_a_bad_dockerfile_is_named() -> None:
    with pytest.raises(df.DockerfileError, match=r"^Dockerfile:3: unknown instruction 'RUNN'"):
        df.parse("FROM python:3.12-slim\n# a comment\nRUNN pip install x\n")
    bad = df.parse("FROM python:3.12-slim\nCMD taskq worker\n")
    cmd = bad.final.last("CMD")
    assert cmd is not None
    with pytest.raises(df.DockerfileError, match=r"^Dockerfile:2: CMD is not in exec form"):
        df.exec_form(bad.name, cmd)
    assert checks.dockerignored("docs/x.md", ["# c", "docs"]) == "docs"
    assert checks.dockerignored("taskq_core/__pycache__", ["**/__pycache__"]) == "**/__pycache__"
    assert checks.dockerignored("taskq_core/app.py", ["**/__pycache__", "tests"]) is None


def test_a_short_stop_timeout_is_named() -> None:
    c = Container(
        "compose.yaml service worker",
        ["taskq", "worker"],
        {"TASKQ_WORKER__GRACE_PERIOD": "25"},
        stop_seconds=30,
    )
    assert checks.shutdown_seconds(c.env) == 37
    assert checks.duration("1m30s", "x") == 90


# -- the build stage, run (slow)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_build_stage_makes_a_wheel_that_installs_and_runs(tmp_path: Path) -> None:
    """The build stage's COPY and RUN, in a clean virtual environment; then the runtime
    stage's install command with its default EXTRAS, and ``taskq --help`` from the result."""
    d = read_dockerfile()
    build = d.stage("build")
    workdir = build.last("WORKDIR")
    assert workdir is not None
    src = tmp_path / "src"
    src.mkdir()
    for inst in build.all("COPY"):
        *sources, dest = inst.value.split()
        for s in sources:
            target = src / dest / Path(s).name if dest.endswith("/") else src / dest
            origin = ROOT / s
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    build_env = tmp_path / "build-venv"
    venv.create(build_env, with_pip=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{build_env / 'bin'}{os.pathsep}{env['PATH']}"
    for inst in build.all("RUN"):
        r = subprocess.run(
            ["sh", "-c", inst.value], cwd=src, env=env, capture_output=True, text=True, check=False
        )
        assert r.returncode == 0, f"Dockerfile:{inst.line}: RUN {inst.value}\n{r.stdout}{r.stderr}"
    wheels = sorted((src / "dist").glob("taskq-*.whl"))
    assert len(wheels) == 1, f"Dockerfile: the build stage made {wheels}, not one taskq wheel"

    # the runtime stage's install, with its ARG defaults, into a fresh environment
    runtime = d.stage("runtime")
    variables = d.variables(runtime)
    (install,) = [i for i in runtime.all("RUN") if "pip install" in i.value]
    script = install.value.replace("/tmp/wheels", str(src / "dist"))
    run_env = tmp_path / "runtime-venv"
    venv.create(run_env, with_pip=True)
    env.update(
        PATH=f"{run_env / 'bin'}{os.pathsep}{os.environ['PATH']}",
        EXTRAS=variables["EXTRAS"],
        APP_PACKAGES=variables["APP_PACKAGES"],
    )
    r = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"Dockerfile:{install.line}: RUN pip install\n{r.stdout}{r.stderr}"
    r = subprocess.run(
        [str(run_env / "bin" / "taskq"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "health" in r.stdout
    assert "worker" in r.stdout
    probe = "import taskq_starlette, uvicorn, json; print(json.dumps(taskq_starlette.__name__))"
    r = subprocess.run(
        [str(run_env / "bin" / "python"), "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == "taskq_starlette"

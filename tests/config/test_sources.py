"""Loading each source, the precedence of the sources key by key, and errors that name the
key, the value, the source (file and line, variable, argument) and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskq_core import ConfigurationError, Settings, TaskQueue
from taskq_core.config import (
    InvalidConfiguration,
    Origin,
    load,
    load_settings,
    settings_keys,
    toml_key_lines,
    yaml_key_lines,
)
from taskq_core.errors import UnusedConfigWarning

from .conftest import FILE_NAME, FILE_SOURCES, SOURCES, Put, line_of


def get(settings: Settings, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def origin_text(source: str, tmp_path: Path, key: str) -> str:
    """How an error or ``config show`` names ``key`` coming from ``source``."""
    if source in FILE_SOURCES:
        path = tmp_path / FILE_NAME[source]
        return f"{FILE_NAME[source]}, line {line_of(path, key.rsplit('.', maxsplit=1)[-1])}"
    if source == "env":
        return "environment variable TASKQ_" + key.replace(".", "__").upper()
    return "argument"


# -- each source on its own


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_is_read(source: str, put: Put, tmp_path: Path) -> None:
    values = {
        "key_prefix": f"from-{source}",
        "queues": ["urgent", "default"],
        "worker.concurrency": 7,
        "retry.jitter": 0.25,
        "worker.log_level": "DEBUG",
    }
    overrides = put(source, values)
    loaded = load(overrides=overrides)
    for key, value in values.items():
        assert get(loaded.settings, key) == value, key
        assert str(loaded.sources.origin(tuple(key.split(".")))) == origin_text(
            source, tmp_path, key
        )
    # keys no source sets keep their default, and say so
    assert loaded.settings.worker.grace_period == 10.0
    assert loaded.sources.origin(("worker", "grace_period")) == Origin("default")


def test_nothing_set_gives_the_defaults() -> None:
    loaded = load()
    assert loaded.settings == Settings()
    assert loaded.sources.file is None
    assert {str(origin) for _, _, origin in loaded.items()} == {"default"}


def test_taskq_config_and_explicit_file_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    other = tmp_path / "conf" / "prod.yml"
    other.write_text("worker:\n  concurrency: 3\n")
    (tmp_path / "taskq.toml").write_text("[worker]\nconcurrency = 9\n")
    monkeypatch.setenv("TASKQ_CONFIG", str(other))
    assert load_settings().worker.concurrency == 3  # TASKQ_CONFIG beats the working directory
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("[worker]\nconcurrency = 5\n")
    assert load_settings(explicit).worker.concurrency == 5  # --config beats TASKQ_CONFIG
    monkeypatch.setenv("TASKQ_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match=r"missing\.toml.*TASKQ_CONFIG.*not found"):
        load_settings()
    with pytest.raises(ConfigurationError, match=r"nope\.yaml.*--config.*not found"):
        load_settings("nope.yaml")


def test_file_discovery_rules(tmp_path: Path) -> None:
    # a pyproject.toml without [tool.taskq] is not configuration
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load().sources.file is None
    (tmp_path / "taskq.toml").write_text('key_prefix = "t"\n')
    (tmp_path / "taskq.yaml").write_text("key_prefix: y\n")
    with pytest.raises(ConfigurationError, match=r"both taskq\.toml and taskq\.yaml"):
        load()
    (tmp_path / "taskq.yaml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.taskq]\nkey_prefix = "p"\n')
    assert load_settings().key_prefix == "t"  # taskq.toml wins over pyproject.toml


def test_unparsable_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "taskq.toml").write_text("[worker\nconcurrency = 1\n")
    with pytest.raises(ConfigurationError, match=r"taskq\.toml is not valid TOML.*line 1"):
        load()
    (tmp_path / "taskq.toml").unlink()
    (tmp_path / "taskq.yaml").write_text("worker: [1, 2\n")
    with pytest.raises(ConfigurationError, match=r"taskq\.yaml is not valid YAML"):
        load()
    (tmp_path / "taskq.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigurationError, match=r"must be a table of settings, got list"):
        load()


def test_complex_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_QUEUES", '["a", "b"]')
    monkeypatch.setenv("TASKQ_WORKER", '{"concurrency": 2}')
    monkeypatch.setenv("taskq_key_prefix", "lower-case-name")
    loaded = load()
    assert loaded.settings.queues == ["a", "b"]
    assert loaded.settings.worker.concurrency == 2
    assert loaded.settings.key_prefix == "lower-case-name"
    # a whole section given as JSON is the source of each of its keys
    assert str(loaded.sources.origin(("worker", "concurrency"))) == (
        "environment variable TASKQ_WORKER"
    )
    assert str(loaded.sources.origin(("key_prefix",))) == "environment variable taskq_key_prefix"


# -- precedence, key by key

#: (key, value in the file, in the environment, as an argument): every kind of value
PRECEDENCE = [
    ("key_prefix", "f", "e", "a"),
    ("queues", ["f1", "f2"], ["e1"], ["a1", "a2", "a3"]),
    ("max_payload_bytes", 2048, 4096, 8192),
    ("result_ttl", 10.5, 20.5, 30.5),
    ("task_timeout", 1.0, 2.0, 3.0),
    ("broker.socket_timeout", 1.5, 2.5, 3.5),
    ("worker.concurrency", 3, 4, 5),
    ("worker.log_level", "DEBUG", "WARNING", "ERROR"),
    ("worker.queues", ["f"], ["e"], ["a"]),
    ("retry.max_retries", 0, 7, 9),
    ("retry.jitter", 0.1, 0.2, 0.3),
]


@pytest.mark.parametrize("file_source", FILE_SOURCES)
@pytest.mark.parametrize(("key", "in_file", "in_env", "in_arg"), PRECEDENCE, ids=str)
def test_precedence_key_by_key(
    file_source: str,
    key: str,
    in_file: Any,
    in_env: Any,
    in_arg: Any,
    put: Put,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = get(Settings(), key)
    path = tuple(key.split("."))
    # a neighbour set only in the file must survive every higher layer (merges are per key)
    neighbour = "worker.grace_period" if key != "worker.grace_period" else "worker.max_deliveries"
    put(file_source, {key: in_file, neighbour: 42})

    loaded = load()
    assert (get(loaded.settings, key), get(loaded.settings, neighbour)) == (in_file, 42)
    assert loaded.sources.origin(path).kind == "file"

    put("env", {key: in_env})
    loaded = load()
    assert (get(loaded.settings, key), get(loaded.settings, neighbour)) == (in_env, 42)
    assert loaded.sources.origin(path).kind == "env"

    loaded = load(overrides=put("argument", {key: in_arg}))
    assert (get(loaded.settings, key), get(loaded.settings, neighbour)) == (in_arg, 42)
    assert loaded.sources.origin(path) == Origin("argument")
    assert loaded.sources.origin(tuple(neighbour.split("."))).kind == "file"

    # and back down: without the environment the argument still wins; without both, the file
    monkeypatch.delenv("TASKQ_" + key.replace(".", "__").upper())
    assert get(load_settings(overrides=put("argument", {key: in_arg})), key) == in_arg
    (tmp_path / FILE_NAME[file_source]).unlink()
    assert get(load_settings(), key) == default


def test_from_config_uses_every_source(put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    put("toml", {"worker.concurrency": 3, "broker_url": "memory://"})
    monkeypatch.setenv("TASKQ_RETRY__MAX_RETRIES", "8")
    tq = TaskQueue.from_config(key_prefix="from-arg")
    try:
        s = tq.settings
        assert (s.worker.concurrency, s.retry.max_retries, s.key_prefix) == (3, 8, "from-arg")
    finally:
        tq.close()
    # TaskQueue(...) built in code reads neither files nor the environment, and says so
    with pytest.warns(UnusedConfigWarning, match="TASKQ_RETRY__MAX_RETRIES"):
        tq = TaskQueue("memory://")
    try:
        assert (tq.settings.worker.concurrency, tq.settings.retry.max_retries) == (16, 3)
    finally:
        tq.close()


# -- errors: unknown key, wrong type, out of range, in every source

PROBLEMS = {
    # kind: (key, bad value, what the message must say)
    "unknown key": ("worker.lease", 3, "unknown key (did you mean 'lease_seconds'?)"),
    "wrong type": ("worker.concurrency", "lots", "Input should be a valid integer"),
    "out of range": ("worker.concurrency", 0, "Input should be greater than or equal to 1"),
}
ALLOWED = {
    "unknown key": "allowed: keys of worker: concurrency, sync_threads, prefetch",
    "wrong type": "allowed: an integer from 1 to 10000",
    "out of range": "allowed: an integer from 1 to 10000",
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_bad_value_names_key_value_source_and_what_is_allowed(
    source: str, kind: str, put: Put, tmp_path: Path
) -> None:
    key, value, says = PROBLEMS[kind]
    overrides = put(source, {key: value, "worker.grace_period": 1.0})
    with pytest.raises(ConfigurationError) as info:
        load(overrides=overrides)
    message = str(info.value)
    # environment variables are text: their values are shown quoted
    shown = f'"{value}"' if source == "env" or isinstance(value, str) else str(value)
    assert f"{key} = {shown} (from {origin_text(source, tmp_path, key)}): {says}" in message
    assert ALLOWED[kind] in message
    assert isinstance(info.value, InvalidConfiguration)
    assert [p.key for p in info.value.problems] == [key]


def test_unknown_top_level_key_in_each_file(put: Put, tmp_path: Path) -> None:
    for source in FILE_SOURCES:
        put(source, {"concurency": 4})
        with pytest.raises(ConfigurationError) as info:
            load()
        line = line_of(tmp_path / FILE_NAME[source], "concurency")
        where = f"{FILE_NAME[source]}, line {line}"
        assert f"concurency = 4 (from {where}): unknown key" in str(info.value)
        (tmp_path / FILE_NAME[source]).unlink()


def test_unknown_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_CONCURENCY", "4")
    with pytest.raises(ConfigurationError) as info:
        load()
    assert 'concurency = "4" (from environment variable TASKQ_CONCURENCY): unknown key' in str(
        info.value
    )
    # the test suite's variables and the supervisor's are not settings
    monkeypatch.delenv("TASKQ_CONCURENCY")
    monkeypatch.setenv("TASKQ_TEST_ANYTHING", "x")
    monkeypatch.setenv("TASKQ_SUPERVISOR_ID", "host:1234")  # set for a supervisor's workers
    assert load().settings == Settings()


def test_bad_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_QUEUES", "high,low")
    with pytest.raises(ConfigurationError) as info:
        load()
    message = str(info.value)
    assert 'queues = "high,low" (from environment variable TASKQ_QUEUES): not valid JSON' in message
    assert "a list of strings" in message


def test_every_problem_is_listed_at_once(put: Put, monkeypatch: pytest.MonkeyPatch) -> None:
    put("yaml", {"worker.concurrency": 0, "retry.jitter": 5, "bogus": True})
    monkeypatch.setenv("TASKQ_BROKER__SOCKET_TIMEOUT", "slow")
    with pytest.raises(InvalidConfiguration) as info:
        load(overrides={"result_ttl": -1})
    problems = {p.key: str(p.origin) for p in info.value.problems}
    assert problems == {
        "worker.concurrency": "taskq.yaml, line 3",
        "retry.jitter": "taskq.yaml, line 5",
        "bogus": "taskq.yaml, line 6",
        "broker.socket_timeout": "environment variable TASKQ_BROKER__SOCKET_TIMEOUT",
        "result_ttl": "argument",
    }
    assert str(info.value).startswith("invalid configuration (5 problems):")


def test_cross_field_rule_names_the_key(put: Put) -> None:
    put("toml", {"worker.lease_seconds": 6, "worker.renew_interval": 10})
    with pytest.raises(ConfigurationError, match=r"worker\.renew_interval = 10 \(from taskq\.toml"):
        load()


def test_settings_built_in_code_raise_configuration_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        TaskQueue("memory://", worker={"concurrency": 0}, bogus=1)
    message = str(info.value)
    assert "worker.concurrency = 0 (from argument)" in message
    assert "bogus = 1 (from argument): unknown key" in message


def test_list_items_are_named_with_their_index(put: Put) -> None:
    put("toml", {"queues": ["ok", "bad name!"]})
    with pytest.raises(ConfigurationError, match=r"queues\[1\] = \"bad name!\"|queues = \["):
        load()


# -- the line scanners


def test_toml_key_lines_follow_tables_dotted_and_quoted_keys() -> None:
    text = """\
# comment = 1
key_prefix = "a"   # trailing
description = \"\"\"
worker = "not a key"
\"\"\"
queues = [
  "high",
  "low",
]
retry.max_retries = 2
"broker".socket_timeout = 3.0

[worker]
concurrency = 4
'log_level' = "INFO"

[[plugins]]
name = "x"

[tool.taskq.worker]
grace_period = 1
"""
    lines = toml_key_lines(text)
    assert lines[("key_prefix",)] == 2
    assert lines[("queues",)] == 6
    assert lines[("retry", "max_retries")] == 10
    assert lines[("broker", "socket_timeout")] == 11
    assert lines[("worker",)] == 13
    assert lines[("worker", "concurrency")] == 14
    assert lines[("worker", "log_level")] == 15
    assert ("worker", "not a key") not in lines
    assert ("plugins", "name") not in lines
    assert toml_key_lines(text, ("tool", "taskq")) == {
        ("worker",): 20,
        ("worker", "grace_period"): 21,
    }


def test_yaml_key_lines() -> None:
    text = "# top\nkey_prefix: a\nworker:\n  concurrency: 4\n  queues: [a, b]\nretry: {jitter: 1}\n"
    assert yaml_key_lines(text) == {
        ("key_prefix",): 2,
        ("worker",): 3,
        ("worker", "concurrency"): 4,
        ("worker", "queues"): 5,
        ("retry",): 6,
        ("retry", "jitter"): 6,
    }


def test_every_key_has_a_description_and_an_environment_name() -> None:
    docs = settings_keys()
    assert len(docs) >= 20
    for d in docs:
        assert d.description, f"{d.key} has no description"
        assert d.env == "TASKQ_" + "__".join(d.path).upper()
        assert d.allowed

"""The password of the broker URL (and every secret key) appears in no repr, no log line and
no exception message of the configuration code. The command line's own output is checked
in tests/cli/test_secrets.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from taskq_core import ConfigurationError, Settings, TaskQueue
from taskq_core.config import load, settings_keys
from taskq_core.settings import is_secret_field, redact_setting

from .conftest import Put

PASSWORD = "hunter2-Sup3r-secret"
URL = f"redis://app:{PASSWORD}@127.0.0.1:6379/0"


def test_repr_and_str_hide_the_password() -> None:
    s = Settings(broker_url=URL)
    for text in (repr(s), str(s), repr(TaskQueue(settings=s).broker)):
        assert PASSWORD not in text
    assert "redis://app:***@127.0.0.1:6379/0" in repr(s)


@pytest.mark.parametrize("source", ["toml", "yaml", "env", "argument"])
def test_errors_never_show_the_password(source: str, put: Put) -> None:
    # another key is wrong: the message lists it, never the URL's password
    overrides = put(source, {"broker_url": URL, "worker.concurrency": 0})
    with pytest.raises(ConfigurationError) as info:
        load(overrides=overrides)
    assert "worker.concurrency" in str(info.value)
    assert PASSWORD not in str(info.value)
    # the URL itself is wrong: its value is shown, without the password
    overrides = put(source, {"broker_url": f"http://app:{PASSWORD}@example.com/"})
    with pytest.raises(ConfigurationError) as info:
        load(overrides=overrides)
    message = str(info.value)
    assert "broker_url" in message
    assert "http://app:***@example.com/" in message
    assert PASSWORD not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_settings_built_in_code_hide_the_password_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        TaskQueue(f"ftp://:{PASSWORD}@host/0")
    assert PASSWORD not in str(info.value)
    assert "ftp://***@host/0" in str(info.value)


def test_loaded_items_hide_the_password(put: Put) -> None:
    put("env", {"broker_url": URL})
    items = {key: value for key, value, _ in load().items()}
    assert items["broker_url"] == "redis://app:***@127.0.0.1:6379/0"
    assert PASSWORD not in repr(items)


def test_secret_keys_are_masked_whole() -> None:
    assert is_secret_field("auth_token")
    assert is_secret_field("password")
    assert not is_secret_field("concurrency")
    assert redact_setting("auth_token", "abc") == "***"
    assert redact_setting("endpoints", [URL]) == ["redis://app:***@127.0.0.1:6379/0"]
    assert redact_setting("headers", {"api_key": "k", "x": 1}) == {"api_key": "***", "x": 1}
    # every key the model marks secret is masked by config show and the docs
    for d in settings_keys():
        if not is_secret_field(d.path[-1], d.field):
            continue
        assert redact_setting(d.path[-1], "https://hook.example/t0ken", d.field) == "***"


def test_no_log_line_shows_the_password(
    caplog: pytest.LogCaptureFixture, put: Put, tmp_path: Path
) -> None:
    put("toml", {"broker_url": URL, "worker.concurrency": 2})
    caplog.set_level(logging.DEBUG)
    tq = TaskQueue.from_config()
    try:
        logging.getLogger("taskq.test").info("configured %r with %s", tq, tq.settings)
        assert tq.settings.worker.concurrency == 2
    finally:
        tq.close()
    assert caplog.records
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()

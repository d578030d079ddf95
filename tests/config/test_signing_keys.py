"""security.signing_keys from every source, the first key signing; its secrets never shown
(repr, config show, errors), its key ids are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskq_core import ConfigurationError, TaskQueue
from taskq_core.config import load
from tests.config.conftest import SOURCES, Put

NEW = "n3w-secret-0123456789abcdef"
OLD = "0ld-secret-0123456789abcdef"


TOML_TABLE = f"""
[{{table}}security.signing_keys]
"2026-12" = "{NEW}"
"2026-06" = "{OLD}"
"""


@pytest.mark.parametrize("source", SOURCES)
def test_signing_keys_from_every_source_first_one_signs(
    source: str, put: Put, tmp_path: Path
) -> None:
    keys = {"2026-12": NEW, "2026-06": OLD}
    if source == "toml":  # a table of its own (the shared writer writes scalars and lists)
        (tmp_path / "taskq.toml").write_text(TOML_TABLE.format(table=""))
        overrides: dict[str, Any] = {}
    elif source == "pyproject":
        text = '[project]\nname = "shop"\n' + TOML_TABLE.format(table="tool.taskq.")
        (tmp_path / "pyproject.toml").write_text(text)
        overrides = {}
    else:
        overrides = put(source, {"security.signing_keys": keys})
    loaded = load(overrides=overrides)
    signing = loaded.settings.security.signing_keys
    assert list(signing) == ["2026-12", "2026-06"]
    assert signing["2026-06"].get_secret_value() == OLD
    tq = TaskQueue(settings=loaded.settings)
    try:
        assert tq.signer is not None
        assert tq.signer.key_id == "2026-12"
        shown = repr(loaded.settings) + repr(loaded.items()) + repr(tq.signer)
        assert NEW not in shown
        assert OLD not in shown
        assert ("security.signing_keys", {"2026-12": "***", "2026-06": "***"}) in [
            (k, v) for k, v, _ in loaded.items()
        ]
    finally:
        tq.close()


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"k1": "short-secret"}, "the secret must be at least 16 characters, got 12"),
        ({"bad id": NEW}, "key id 'bad id' must be 1 to 64 letters"),
        ({"k1": 12345}, "Input should be a valid string"),
    ],
)
def test_bad_signing_keys_are_named_without_their_secret(
    keys: dict[str, object], problem: str, put: Put
) -> None:
    put("env", {"security.signing_keys": keys})
    with pytest.raises(ConfigurationError, match=problem) as info:
        load()
    assert "TASKQ_SECURITY__SIGNING_KEYS" in str(info.value)
    for secret in ("short-secret", NEW, "12345"):
        assert secret not in str(info.value)


def test_signing_is_off_without_keys() -> None:
    tq = TaskQueue("memory://")
    try:
        assert tq.signer is None
    finally:
        tq.close()

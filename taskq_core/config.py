"""Loading settings from every source: files, ``TASKQ_*`` environment variables, arguments."""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from .settings import EXTRA_SOURCES, Settings


def load_settings(
    config_file: str | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Defaults < config file < environment < ``overrides``."""

    def files(cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        return ()

    token = EXTRA_SOURCES.set(files)
    try:
        return Settings(**(overrides or {}))
    finally:
        EXTRA_SOURCES.reset(token)

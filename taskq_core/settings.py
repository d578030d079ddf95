"""The settings object: one validated model for every knob taskq has.

Sources, lowest precedence first: built-in defaults < ``taskq.toml`` / ``taskq.yaml`` /
``[tool.taskq]`` in ``pyproject.toml`` < ``TASKQ_*`` environment variables (nested keys
with ``__``, e.g. ``TASKQ_WORKER__CONCURRENCY=16``) < explicit arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .redact import redact_url
from .validation import MAX_QUEUE_NAME, check_queue_name

#: set by config.load_settings: builds the file sources below the environment
EXTRA_SOURCES: ContextVar[
    Callable[[type[BaseSettings]], tuple[PydanticBaseSettingsSource, ...]] | None
] = ContextVar("taskq_extra_sources", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BrokerSettings(_Section):
    """Connection to the broker."""

    max_connections: int = Field(
        64, ge=1, le=10_000, description="Connections in the pool of each process."
    )
    socket_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds before a Redis call times out."
    )


class WorkerSettings(_Section):
    """One worker process."""

    concurrency: int = Field(
        16, ge=1, le=10_000, description="Tasks run at once by one worker process."
    )
    sync_threads: int | None = Field(
        None, ge=1, le=1000, description="Threads for sync tasks; default: concurrency."
    )
    lease_seconds: float = Field(
        15.0, ge=1, le=3600, description="How long a fetched task stays leased without renewal."
    )
    renew_interval: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Seconds between lease renewals; default: lease_seconds / 3.",
    )
    grace_period: float = Field(
        10.0, ge=0, le=86_400, description="Seconds running tasks get to finish after SIGTERM."
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        le=1000,
        description="Deliveries without an outcome before a task is dead-lettered as poison.",
    )
    queues: list[str] | None = Field(
        None,
        description="Queues a worker serves, highest first; default: the top-level queues.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Worker log level."
    )
    log_format: Literal["console", "json"] = Field("console", description="Worker log format.")

    @model_validator(mode="after")
    def _renew_below_lease(self) -> WorkerSettings:
        if self.renew_interval is not None and self.renew_interval >= self.lease_seconds:
            raise ValueError(
                f"worker.renew_interval ({self.renew_interval}) must be shorter than "
                f"worker.lease_seconds ({self.lease_seconds})"
            )
        return self

    @property
    def renew_every(self) -> float:
        return self.renew_interval if self.renew_interval is not None else self.lease_seconds / 3


class RetrySettings(_Section):
    """Default retry policy of every task (each task may override it)."""

    max_retries: int = Field(3, ge=0, le=1000, description="Retries after the first failure.")
    backoff: float = Field(
        1.0,
        ge=0,
        le=86_400,
        description="Delay before the first retry, in seconds; doubles each time.",
    )
    backoff_max: float = Field(
        600.0, ge=0, le=7 * 86_400, description="Cap on one retry delay, in seconds."
    )
    jitter: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fraction of each delay drawn at random (0: none, 1: full jitter).",
    )


class Settings(BaseSettings):
    """Every setting of taskq; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="TASKQ_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        validate_assignment=True,
    )

    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="redis://, rediss:// or memory:// URL."
    )
    key_prefix: str = Field(
        "taskq", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Prefix of every Redis key."
    )
    queues: list[str] = Field(
        default_factory=lambda: ["high", "default", "low"],
        min_length=1,
        description="Known queues, highest priority first.",
    )
    default_queue: str = Field("default", description="Queue of tasks that name none.")
    imports: list[str] = Field(
        default_factory=list, description="Modules imported at worker start to register tasks."
    )
    max_payload_bytes: int = Field(
        512 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest encoded task message."
    )
    result_ttl: float = Field(
        86_400.0, gt=0, le=365 * 86_400, description="Seconds results and errors are kept."
    )
    idempotency_ttl: float = Field(
        86_400.0, gt=0, le=365 * 86_400, description="Seconds an idempotency key is remembered."
    )
    task_timeout: float | None = Field(
        None,
        gt=0,
        le=7 * 86_400,
        description="Default soft time limit of a task, in seconds; none by default.",
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: list[str]) -> list[str]:
        for q in value:
            check_queue_name(q)
        if len(set(value)) != len(value):
            raise ValueError("queues must not repeat a name")
        return value

    @field_validator("default_queue")
    @classmethod
    def _default_queue(cls, value: str) -> str:
        return check_queue_name(value)

    @field_validator("broker_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise ValueError(
                f"broker_url must start with redis://, rediss://, unix:// or memory://, "
                f"got {redact_url(value)!r}"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) alone takes defaults and its arguments; config.load_settings adds the
        # environment and files, so a TaskQueue built in code is never changed by stray
        # TASKQ_* variables
        extra = EXTRA_SOURCES.get()
        if extra is None:
            return (init_settings,)
        return (init_settings, env_settings, *extra(settings_cls))

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "broker_url" else value)

    def worker_queues(self) -> list[str]:
        return list(self.worker.queues or self.queues)


__all__ = ["MAX_QUEUE_NAME", "BrokerSettings", "RetrySettings", "Settings", "WorkerSettings"]
